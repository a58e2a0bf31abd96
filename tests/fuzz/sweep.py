"""Run Hypothesis over one route as one role against the shared seeded site, with the database's content before
and after each request (site.State; the state after one request is the state before the next).

Bounded for CI: the broad sweep runs on SQLite; PostgreSQL gets a smaller one (the same code paths, but its
own failure modes: integer overflow, NUL bytes refused in text, strict types). MSCBATCH_FUZZ_SCALE multiplies
the number of examples for a longer local run.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.checks import problems

SCALE = float(os.environ.get("MSCBATCH_FUZZ_SCALE", "1"))
# examples per (route, role): allowed roles reach the view; refused roles stop at the access check, which does the
# same on both databases (and is checked on both by test_access_matrix.py): none on PostgreSQL
EXAMPLES = {("sqlite", True): 8, ("sqlite", False): 1, ("postgresql", True): 3, ("postgresql", False): 0}


def examples(site: Any, allowed: bool) -> int:
    return round(EXAMPLES[(site.kind, allowed)] * SCALE)


def sweep(site: Any, endpoint: str, request: st.SearchStrategy[Any], send: Callable[[Any], Any],
          max_examples: int, read_only: bool = False, explicit: tuple[Any, ...] = ()) -> list[str]:
    """Send the `explicit` requests (bugs found before), then `max_examples` drawn ones; return the failures
    (one line each, with the request)."""
    failures: list[str] = []
    if max_examples < 1 and not explicit:
        return failures
    states = [site.state()]

    @given(drawn=request)
    @settings(max_examples=max(1, max_examples), deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit] + [Phase.generate] * (max_examples > 0),
              suppress_health_check=list(HealthCheck))
    def run(drawn: Any) -> None:
        before = states[-1]
        response = send(drawn)
        states[-1] = after = site.state(before)
        found = problems(site, endpoint, response, before, after, read_only)
        if found:
            failures.append(f"{endpoint}: {'; '.join(found)} <- {_short(drawn)}")

    for drawn in explicit:
        run = example(drawn=drawn)(run)
    run()
    return failures


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 400 else text[:400] + f"... ({len(text)} characters)"
