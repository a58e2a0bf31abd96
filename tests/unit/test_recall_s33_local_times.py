"""Tablet walkthrough, session 33: the recall page and report said "NOTIFY CLINICIAN: infused ... 20:54 UTC" beside
a column in the site's time (21:54 CET): QA phoning the clinician could be an hour off. The action says the site's
time first now, UTC beside it, as the rest of the page."""
from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from mscbatch.recall.report import _action


def test_the_notify_action_and_a_lifted_hold_say_the_sites_time_first() -> None:
    infused = datetime(2026, 12, 5, 20, 54, tzinfo=UTC)  # 21:54 in Paris (config/site.toml), winter time
    trace = SimpleNamespace(bag=SimpleNamespace(status="infused"), current_recipient=SimpleNamespace(
        received=True, infused_at=infused, patient=SimpleNamespace(code="SLE-UC-001")))
    kind, words = _action(trace, None, None)  # type: ignore[arg-type]
    assert kind == "notify" and words == "NOTIFY CLINICIAN: infused into patient SLE-UC-001 on 2026-12-05 21:54 CET (20:54 UTC)"
    held = SimpleNamespace(bag=SimpleNamespace(status="stored"), current_recipient=None)
    kind, lifted = _action(held, SimpleNamespace(lifted_at=infused), None)  # type: ignore[arg-type]
    assert kind == "hold_lifted" and lifted == "Hold lifted 2026-12-05 21:54 CET (20:54 UTC) (recall ended)"
