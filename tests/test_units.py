"""One byte format (binary units, labelled KiB/MiB/GiB) and one duration format for the page and the CLI."""

import pytest

from gapdemo.units import format_bytes, format_duration


@pytest.mark.parametrize("count, text", [
    (512, "512 bytes"), (2048, "2 KiB"), (20 * 2**20, "20 MiB"), (26528972, "25.3 MiB"), (500 * 2**20, "500 MiB"),
    (20 * 2**30, "20 GiB"), (22869018214, "21.3 GiB"), (9_800_000_000, "9.1 GiB"), (3 * 2**40, "3 TiB"),
])
def test_bytes_are_shown_in_binary_units(count, text):
    assert format_bytes(count) == text


@pytest.mark.parametrize("seconds, text", [
    (None, ""), (float("nan"), ""), (-1, ""), (0, "0 s"), (42.4, "42 s"), (59.6, "1 min 00 s"), (125, "2 min 05 s"),
    (4000, "66 min 40 s"),
])
def test_durations_are_shown_in_minutes_and_seconds(seconds, text):
    assert format_duration(seconds) == text
