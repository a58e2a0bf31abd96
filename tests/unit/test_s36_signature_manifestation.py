"""A signature's manifestation (21 CFR 11.50: printed name, date-time, meaning) said the instant in UTC alone
("Qa, 2026-12-05 23:30 UTC, Approved"): read at the site it dated an evening signature to the next day and differed
from the pages, which say the site's local time with UTC beside it (site.local_and_utc). It says it as the pages do
now, and the recall report's PDF prints it (signed_words) instead of writing the same line a second time."""
from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from mscbatch import site
from mscbatch.recall.report import signed_words
from mscbatch.signatures.models import Signature


def _signature(at: datetime) -> Signature:
    return Signature(printed_name="Qa", signed_at=at, meaning="Approved")


def test_the_manifestation_says_the_sites_local_time_with_utc_beside() -> None:
    # 23:30 UTC on New Year's Eve is already 1 January in Paris (config/site.toml)
    signature = _signature(datetime(2026, 12, 31, 23, 30, tzinfo=UTC))
    assert signature.manifestation() == "Qa, 2027-01-01 00:30 CET (2026-12-31 23:30 UTC), “Approved”"


@pytest.mark.parametrize(("zone", "expected"), [
    ("America/New_York", "Qa, 2026-12-05 15:54 EST (20:54 UTC), “Approved”"),
    ("Asia/Kolkata", "Qa, 2026-12-06 02:24 IST (2026-12-05 20:54 UTC), “Approved”")])
def test_another_sites_zone_reaches_the_manifestation_and_the_recall_pdf(monkeypatch: pytest.MonkeyPatch, zone: str,
                                                                         expected: str) -> None:
    monkeypatch.setattr(site, "site_config", lambda: SimpleNamespace(tz=ZoneInfo(zone)))
    signature = _signature(datetime(2026, 12, 5, 20, 54, 7, tzinfo=UTC))
    assert signature.manifestation() == expected
    assert signed_words(signature) == f"Signed: {expected}"  # the PDF's line is the manifestation


def test_no_signature_is_said_in_utc_alone() -> None:
    words = _signature(datetime(2026, 7, 1, 9, 5, tzinfo=UTC)).manifestation()
    assert words == "Qa, 2026-07-01 11:05 CEST (09:05 UTC), “Approved”"
    assert "09:05 UTC," not in words
