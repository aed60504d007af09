"""A served page fails closed, a visitor's jobs survive a reload (their id lives in the address), and the
operator's link (a token, as Jupyter's) makes that tab the operator's: it stops anyone's job, and the token
never shows on the page or in a file."""

import io
import os
import stat

import pytest
from test_serving import bind_page_to, held_training, open_page, press  # noqa: F401 (fixtures)

from gapdemo.operator import OperatorAccess, announce, operator_file

served = bind_page_to("0.0.0.0")
local = bind_page_to("127.0.0.1")


def reopen(app, **extra):
    """The same address in a new session: what a reload or a bookmark does."""
    from streamlit.testing.v1 import AppTest

    again = AppTest.from_file("../app.py", default_timeout=120)
    for name, value in {**dict(app.query_params), **extra}.items():
        again.query_params[name] = value
    again.run()
    assert not again.exception, again.exception
    return again


def page_texts(app) -> str:
    """Every text the page shows, sidebar included."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "toast", "title", "header")
    return "\n".join(str(element.value) for kind in kinds for element in getattr(app, kind))


def operator_token() -> str:
    from streamlit import config

    link = operator_file(int(config.get_option("server.port"))).read_text().strip()
    return link.rsplit("operator=", 1)[1]


def show_served():
    import streamlit as st

    from dashboard.visitor import page_is_served, served_rules_apply

    st.write(f"served={page_is_served()} rules={served_rules_apply()}")


def test_a_session_without_headers_counts_as_served_unless_the_operator_says_alone(local, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("GAPDEMO_SERVED")
    app = AppTest.from_function(show_served)
    app.run()
    assert app.markdown[0].value == "served=True rules=True"  # AppTest sends no Host: nothing names this machine
    monkeypatch.setenv("GAPDEMO_SERVED", "0")
    app.run()
    assert app.markdown[0].value == "served=False rules=False"


def test_a_reload_keeps_a_visitors_jobs_and_the_operator_link_stops_anyones(served, held_training, runs_dir):  # noqa: F811
    from streamlit import config

    from dashboard.common import job_manager

    stranger = open_page()
    assert press(stranger, "start") == []  # runs, held in loading data
    alice = open_page()
    assert press(alice, "start") == []  # waits behind the stranger's run
    running, waiting = job_manager().latest(), job_manager().queued()[0]  # latest: the run training
    assert dict(alice.query_params)["visitor"] != dict(stranger.query_params)["visitor"]

    newcomer = open_page()  # a new tab without alice's address is a new visitor
    assert newcomer.button(key="stop").disabled
    alice_again = reopen(alice)  # same address, new session
    assert not alice_again.button(key="stop").disabled
    press(alice_again, "stop")
    assert waiting.state == "stopped" and running.state == "running"  # her own, not the stranger's

    guesser = reopen(newcomer, operator="not-the-token")
    assert "operator" not in dict(guesser.query_params) and guesser.button(key="stop").disabled

    token = operator_token()
    operator = reopen(newcomer, operator=token)
    assert "operator" not in dict(operator.query_params)  # taken out of the address at once
    assert any(caption.value.startswith("Operator:") for caption in operator.sidebar.caption)
    press(operator, "stop")
    assert running.state == "stopping"  # the operator stopped another visitor's run
    assert token not in page_texts(operator) and token not in page_texts(alice_again)
    assert config.get_option("client.showErrorDetails") == "none"  # a served page shows no traceback
    # The operator's address, shown to a class (or reloaded), makes nobody the operator: the tab was.
    operator_address = reopen(operator)
    assert not any(caption.value.startswith("Operator:") for caption in operator_address.sidebar.caption)
    assert operator_address.button(key="stop").disabled
    run_files = [path for path in runs_dir.parent.rglob("*") if path.is_file()]
    assert all(token.encode() not in path.read_bytes() for path in run_files)


def test_an_address_with_a_made_up_visitor_id_gets_a_new_one(served):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file("../app.py", default_timeout=120)
    app.query_params["visitor"] = "../x"
    app.run()
    visitor = dict(app.query_params)["visitor"]
    assert visitor != "../x" and len(visitor) == 22


def test_tokens_compare_whole_and_the_link_carries_one():
    access = OperatorAccess()
    assert len(access.token) >= 43 and access.token != OperatorAccess().token
    assert access.admits(access.token)
    assert not access.admits(access.token[:-1]) and not access.admits(access.token + "x")
    assert not access.admits("") and not access.admits("ü" * 43)
    assert access.link("http://localhost:8501/") == f"http://localhost:8501/?operator={access.token}"


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stream, link_shown", [(Terminal(), True), (io.StringIO(), False)])
def test_the_link_goes_to_a_private_file_and_to_a_terminal_never_to_a_log(stream, link_shown, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("GAPDEMO_OPERATOR_DIR", str(tmp_path / "state"))
    access = OperatorAccess()
    path = announce(access, "http://localhost:8600/", 8600, stream)
    assert path == tmp_path / "state" / "operator-8600.txt"
    assert path.read_text() == f"http://localhost:8600/?operator={access.token}\n"
    assert (access.token in stream.getvalue()) is link_shown
    assert str(path) in stream.getvalue() or link_shown
    if os.name == "posix":  # Windows has no group or other permission bits; a profile folder is private
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]  # no temporary file left
    announce(OperatorAccess(), "http://localhost:8600/", 8600, io.StringIO())  # a restart replaces the link
    assert access.token not in path.read_text()


def test_an_unwritable_operator_folder_leaves_the_page_up(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("GAPDEMO_OPERATOR_DIR", str(tmp_path / "file" / "below"))
    stream = io.StringIO()
    announce(OperatorAccess(), "http://localhost:8600/", 8600, stream)  # no exception: the page still draws
    assert "could not be written" in stream.getvalue() and "GAPDEMO_OPERATOR_DIR" in stream.getvalue()
