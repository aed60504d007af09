"""The sidebar's word on the image cache: is the current data choice cached, how big is the cache, Clear cache."""

from __future__ import annotations

import os

import streamlit as st

from dashboard.visitor import served_rules_apply
from gapdemo.config import DataConfig
from gapdemo.data.cache import cache_root, clear_cache
from gapdemo.data.sources import cache_status
from gapdemo.units import format_bytes

STATUS_SECONDS = 10  # how long a status is reused: it scans the folder (a stat per file) or opens TFDS


@st.cache_data(ttl=STATUS_SECONDS, show_spinner="Checking the image cache…")
def _cache_status(dataset: str, data_dir: str | None, image_size: int, train_size: int | None, seed: int,
                  cache_dir: str | None, cache_changed: int):
    """cache_status for these settings; cache_changed (the cache folder's mtime) renews it when entries come or go."""
    return cache_status(DataConfig(dataset=dataset, data_dir=data_dir, image_size=image_size,
                                   train_size=train_size, seed=seed, cache_dir=cache_dir))


def _modified_ns(folder) -> int:
    try:
        return os.stat(folder).st_mtime_ns  # an entry renamed in or removed changes it
    except OSError:
        return 0


# Whether config's decoded images are cached and the cache's size, with a Clear cache button; draws only.
def cache_widget(config: DataConfig, problems: list[str]) -> None:
    if config.dataset == "synthetic" or problems:  # synthetic pets are drawn, not cached; a bad choice says why
        return
    status = _cache_status(config.dataset, config.data_dir, config.image_size, config.train_size, config.seed,
                           config.cache_dir, _modified_ns(cache_root(config.cache_dir)))
    served = served_rules_apply()  # served to others: no server paths shown, and no visitor clears the cache
    where = "" if served else f" in {status.root}"
    if status.cached:
        st.caption(f"Image cache: this choice is cached ({format_bytes(status.entry_bytes)}), so it opens in about "
                   f"a second; the cache holds {format_bytes(status.total_bytes)}{where}.")
    elif not status.writable:
        st.caption(f"Image cache: its folder{where} cannot be written, so every Start decodes the images again; "
                   "set GAPDEMO_CACHE_DIR to a writable folder.")
    else:
        st.caption("Image cache: not cached yet; the first Start decodes every image once, later ones open in "
                   f"about a second. The cache holds {format_bytes(status.total_bytes)}{where}.")
    if not served and st.button("Clear cache", key="clear_cache", disabled=status.total_bytes == 0,
                                help="Delete every cached data set; runs in progress keep theirs until they end."):
        freed = clear_cache(config.cache_dir)
        _cache_status.clear()
        st.session_state["notice"] = f"Cleared the image cache ({format_bytes(freed)} freed)."
        st.rerun()
