"""Who is looking at the page, and whether others can reach it: the page's side of serving safely.

gapdemo never imports streamlit, so the page reads streamlit's bind address, the request's headers
and the session here and passes plain values down: served (bool) to the gate (gapdemo.validation)
and the jobs, the visitor's id as the owner of the runs, sweeps and claims jobs they start.
"""

from __future__ import annotations

import secrets

import streamlit as st

from gapdemo.jobs.scheduler import KIND_WORDS
from gapdemo.serving import page_counts_as_served

VISITOR_KEY = "visitor_id"  # in st.session_state


def page_is_served() -> bool:
    """True when others can reach the page: it listens beyond loopback, this session's request came
    through a proxy or from another host, or GAPDEMO_SERVED=1 (gapdemo.serving.page_counts_as_served)."""
    return page_counts_as_served(st.get_option("server.address"), _request_headers())


def _request_headers() -> dict:
    """The headers of the request that opened this session; {} where there is none (a test run)."""
    try:
        return dict(st.context.headers)
    except Exception:  # no session context: nothing says the request came from afar
        return {}


def visitor_id() -> str:
    """An opaque id of this browser session: the owner of the runs it starts (a reload starts a new one).

    A random token kept in the session's state rather than streamlit's session id, which every
    AppTest session shares ("test session id"), so tests can be two visitors as a browser is.
    """
    return st.session_state.setdefault(VISITOR_KEY, secrets.token_urlsafe(16))


def shown_path(path, name: str = "the runs folder") -> str:
    """A server path as the page may show it: `path` on a local page, only its name when served."""
    return name if page_is_served() else f"`{path}`"


def whose(owner: str | None) -> str:
    """'yours' or "another visitor's"; nothing else about another visitor's run is shown."""
    return "yours" if owner == visitor_id() else "another visitor's"


def run_owner_note(snapshot) -> str:
    """' (yours)' / " (another visitor's)" after a run's name on a served page; '' on a local one (one user)."""
    return f" ({whose(snapshot.owner)})" if page_is_served() else ""


def ordinal(number: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def job_name(job) -> str:
    """'run `id`', 'claims job' or 'sweep `id`'; served, another visitor's job by its kind alone."""
    kind = KIND_WORDS.get(job.kind, job.kind)
    served = page_is_served()
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
