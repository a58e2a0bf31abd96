"""One way to say an instant: site.local_and_utc (plain text) and site.local_parts, which the pages' `local` filter
marks up and the recall report's PDF and words print. The filter (web.templating) and the report (recall.report
_local) each formatted it themselves, and could drift: a page saying "21:54 CET" and its PDF "20:54"."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from mscbatch import site
from mscbatch.recall.report import _action
from mscbatch.site import local_and_utc
from mscbatch.web.templating import local

#: winter, summer, both clock changes in Paris (config/site.toml), and a UTC day that is the next local day
INSTANTS = [datetime(2026, 12, 5, 20, 54, 7, tzinfo=UTC), datetime(2026, 7, 1, 9, 5, 59, tzinfo=UTC),
            datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
            datetime(2026, 12, 31, 23, 30, tzinfo=UTC)]


def _text(markup: str) -> str:
    return re.sub(r"<[^>]+>", "", str(markup))


def test_local_and_utc_says_the_sites_time_first_and_utc_in_brackets() -> None:
    assert local_and_utc(datetime(2026, 12, 5, 20, 54, 7, tzinfo=UTC)) == "2026-12-05 21:54 CET (20:54 UTC)"
    assert local_and_utc(datetime(2026, 7, 1, 9, 5, 59, tzinfo=UTC), seconds=True) == \
        "2026-07-01 11:05:59 CEST (09:05:59 UTC)"
    assert local_and_utc(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "2027-01-01 00:30 CET (2026-12-31 23:30 UTC)"
    assert local_and_utc(None) == "—"


def test_the_pages_filter_keeps_its_markup_and_says_the_same_words() -> None:
    assert str(local(datetime(2026, 12, 5, 20, 54, tzinfo=UTC))) == (
        '<span class="when"><span class="local">2026-12-05 21:54 CET</span> '
        '<span class="utc hint">(20:54 UTC)</span></span>')
    assert str(local(None)) == "—"
    for instant in INSTANTS:
        for seconds in (False, True):
            assert _text(local(instant, seconds)) == local_and_utc(instant, seconds), (instant, seconds)


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_the_page_and_the_recall_report_follow_one_function(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    """Another site's zone reaches the filter and the report alike: both go through site.local_parts (before, the
    report formatted with the site_config it imported itself, and kept Paris time here)."""
    monkeypatch.setattr(site, "site_config", lambda: SimpleNamespace(tz=ZoneInfo(zone)))
    infused = INSTANTS[0]
    expected = local_and_utc(infused)
    assert ("EST" if zone == "America/New_York" else "IST") in expected
    assert _text(local(infused)) == expected
    trace = SimpleNamespace(bag=SimpleNamespace(status="infused"), current_recipient=SimpleNamespace(
        received=True, infused_at=infused, patient=SimpleNamespace(code="SLE-UC-001")))
    assert _action(trace, None, None)[1] == f"NOTIFY CLINICIAN: infused into patient SLE-UC-001 on {expected}"  # type: ignore[arg-type]


def test_an_instant_given_with_another_offset_is_said_in_true_utc() -> None:
    """The UTC part was the instant's own clock labelled "UTC": 10:00+05:00 read "10:00 UTC", five hours off."""
    from datetime import timedelta, timezone

    assert local_and_utc(datetime(2026, 12, 5, 10, 0, tzinfo=timezone(timedelta(hours=5)))) == \
        "2026-12-05 06:00 CET (05:00 UTC)"
