"""Who is looking at the page, and whether others can reach it: the page's side of serving safely.

gapdemo never imports streamlit, so the page reads streamlit's bind address, the request's headers
and the address's query parameters here and passes plain values down: served (bool) to the gate
(gapdemo.validation) and the jobs, the visitor's id as the owner of the runs, sweeps and claims jobs
they start. The id lives in the page's address (?visitor=...), so a reload and a bookmark keep a
visitor's jobs and a new tab without it is a new visitor: whoever has the link owns its runs.
"""

from __future__ import annotations

import re
import secrets

import streamlit as st

from gapdemo.jobs.scheduler import KIND_WORDS
from gapdemo.operator import OPERATOR_PARAMETER, OperatorAccess, announce
from gapdemo.serving import page_counts_as_served

VISITOR_PARAMETER = "visitor"  # the query parameter that carries a visitor's id
VISITOR_ID_BYTES = 16  # 128 random bits: nobody guesses another visitor's id
VISITOR_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")  # what secrets.token_urlsafe(16) makes
OPERATOR_KEY = "is_operator"  # in st.session_state: this tab opened the operator link


def page_is_served() -> bool:
    """True when others can reach the page: it listens beyond loopback, or this session's request does
    not name this machine alone (gapdemo.serving.page_counts_as_served; no headers count as served)."""
    return page_counts_as_served(st.get_option("server.address"), _request_headers())


def served_rules_apply() -> bool:
    """True when this visitor is held to a class's rules: the page is served and they are not its operator."""
    return page_is_served() and not visitor_is_operator()


def _request_headers() -> dict:
    """The headers of the request that opened this session; {} where there is none (a test run)."""
    try:
        return dict(st.context.headers)
    except Exception:  # no session context: no headers, which counts as served
        return {}


def visitor_id() -> str:
    """This visitor's opaque id from the page's address, made with secrets (and put there) when it is
    missing or not one the page could have made."""
    visitor = st.query_params.get(VISITOR_PARAMETER, "")
    if not VISITOR_ID_PATTERN.fullmatch(visitor):
        visitor = secrets.token_urlsafe(VISITOR_ID_BYTES)
        st.query_params[VISITOR_PARAMETER] = visitor
    return visitor


# One token per server process, announced (terminal and a private file) the first time the page is drawn.
# Whoever opens the link is the operator in that tab (its session), until the tab reloads or closes.
@st.cache_resource(show_spinner=False)
def operator_access() -> OperatorAccess:
    access = OperatorAccess()
    address = st.get_option("server.address") or ""
    host = address if address and address not in ("0.0.0.0", "::") else "localhost"
    host = f"[{host}]" if ":" in host else host  # an IPv6 address in a link
    port = int(st.get_option("server.port"))
    base_path = (st.get_option("server.baseUrlPath") or "").strip("/")
    announce(access, f"http://{host}:{port}/{base_path}", port)
    return access


def admit_operator() -> None:
    """Take an operator token out of the address at once; with the right one, this visitor is the operator."""
    access = operator_access()
    token = st.query_params.get(OPERATOR_PARAMETER)
    if token is None:
        return
    del st.query_params[OPERATOR_PARAMETER]
    if access.admits(token):
        # This session, not the visitor id: an address shown to a class must not make the class operators.
        st.session_state[OPERATOR_KEY] = True
        st.session_state["notice"] = "You are this server's operator in this tab; after a reload, open the link again."
    else:
        st.session_state["notice"] = "That operator link is not this server's (a new one is made at each start)."


def hide_error_details_when_served() -> None:
    """A served page shows no traceback (server paths, code), however the server was started. The option is
    the server's, not the session's: once a served visitor came, it stays off until the server stops."""
    if page_is_served():
        st.set_option("client.showErrorDetails", "none")


def visitor_is_operator() -> bool:
    return bool(st.session_state.get(OPERATOR_KEY))


def shown_path(path, name: str = "the runs folder") -> str:
    """A server path as the page may show it: `path` on a local page, only its name when served."""
    return name if served_rules_apply() else f"`{path}`"


def whose(owner: str | None) -> str:
    """'yours' or "another visitor's"; nothing else about another visitor's run is shown."""
    return "yours" if owner == visitor_id() else "another visitor's"


def run_owner_note(snapshot) -> str:
    """' (yours)' / " (another visitor's)" after a run's name on a served page; '' on a local one (one user)."""
    return f" ({whose(snapshot.owner)})" if served_rules_apply() else ""


def ordinal(number: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def job_name(job) -> str:
    """'run `id`', 'claims job' or 'sweep `id`'; served, another visitor's job by its kind alone."""
    kind = KIND_WORDS.get(job.kind, job.kind)
    if job.owner is None:  # the page's own work (measuring the pooled runs): nobody's
        return kind
    served = served_rules_apply()
    if served and whose(job.owner) != "yours":
        return f"another visitor's {kind}"
    name = getattr(job, "run_id", None) or getattr(job, "sweep_id", None)
    named = f"{kind} `{name}`" if name else kind
    return f"{named} (yours)" if served else named


def queue_caption(queued_jobs) -> str:
    """The waiting jobs of every kind in order, each with its place in line; served, another visitor's
    job shows as that and no more (not even its id)."""
    names = [f"{job_name(job)}, {ordinal(place)} in line" for place, job in enumerate(queued_jobs, start=1)]
    return "Waiting in the queue: " + "; ".join(names)
