"""Bounds for what a query string or a form can ask for, so that extreme values are refused or read as "no bound"
instead of overflowing Python's dates or the database's integers (a 500; issue 9 review).

Dates: 0001-01-01 and 9999-12-31 are what a date picker lets anyone type, but shifting them by a time zone or a
day leaves Python's date range. No record of the unit lies outside FIRST_DAY..LAST_DAY, so a search bound beyond
them means the same as the nearest one. Keyset pagination ids beyond a column's range mean the first page.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time

FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9000, 12, 31)
MAX_ROW_ID = 2**31 - 1  # INTEGER primary keys (PostgreSQL)
MAX_SEQ = 2**63 - 1  # BIGINT (the audit trail's sequence)


def filter_day(day: date | None) -> date | None:
    """A search bound moved into FIRST_DAY..LAST_DAY (None stays None)."""
    return None if day is None else min(max(day, FIRST_DAY), LAST_DAY)


def plausible_day(day: date) -> bool:
    """A day a record may carry (a planned infusion, a harvest): within FIRST_DAY..LAST_DAY."""
    return FIRST_DAY <= day <= LAST_DAY


def whole_number(text: str, largest: int = MAX_ROW_ID) -> int | None:
    """Typed text as a number 1..largest, else None. Plain ASCII digits only, and at most as many as `largest` has:
    str.isdigit() is true for "²", and int() of 5 000 digits raises past Python's 4 300-digit limit (each a 500)."""
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(largest))):
        return None
    number = int(text)
    return number if 0 < number <= largest else None


def keyset(before: int | None, largest: int = MAX_ROW_ID) -> int | None:
    """A page's `before` id: itself when 1..largest, else None (the first page)."""
    return before if before is not None and 0 < before <= largest else None


FIRST_INSTANT = datetime.combine(FIRST_DAY, time(), UTC)


def plausible_instant(when: datetime) -> bool:
    """An aware instant a manufacturing record may carry: not before FIRST_DAY (year 1 at +14:00 leaves Python's
    range when moved to the site's zone)."""
    return when >= FIRST_INSTANT
