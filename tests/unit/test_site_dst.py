"""A wall-clock time typed in a form is the site's (config/site.toml: Europe/Paris), and the site's clocks change
twice a year (review C). A time they skipped in spring (2026-03-29 02:30) was accepted and stored, and shown, an
hour later (03:30): it is refused, naming the field and the time to type instead. A time they show twice in
autumn (2026-10-25 02:30) is refused too, naming both readings (s39: it was read as summer time without a word):
tests/unit/test_s39_site_autumn_fold.py."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mscbatch.errors import ValidationFailed
from mscbatch.site import site_time


def test_a_time_skipped_by_the_spring_clock_change_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationFailed) as refused:
        site_time(datetime(2026, 3, 29, 2, 30), "collection_at", "Collection time")
    assert refused.value.field == "collection_at"
    assert refused.value.message == (
        "Collection time: 2026-03-29 02:30 does not exist in Europe/Paris: the clocks went forward at 02:00. "
        "Type the time as the clock showed it (03:30).")


@pytest.mark.parametrize("minute", [0, 1, 59])
def test_every_minute_of_the_skipped_hour_is_refused(minute: int) -> None:
    with pytest.raises(ValidationFailed, match=rf"\(03:{minute:02d}\)"):
        site_time(datetime(2026, 3, 29, 2, minute))


def test_the_times_either_side_of_the_spring_change_are_read_as_typed() -> None:
    assert site_time(datetime(2026, 3, 29, 1, 59)).astimezone(UTC) == datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    assert site_time(datetime(2026, 3, 29, 3, 0)).astimezone(UTC) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    earlier, later = site_time(datetime(2026, 3, 29, 1, 59)), site_time(datetime(2026, 3, 29, 3, 0))
    # one minute apart as instants, the skipped hour in between (compared in UTC: two times of one zone subtract
    # as wall times)
    assert later.astimezone(UTC) - earlier.astimezone(UTC) == timedelta(minutes=1)


def test_no_time_stays_no_time() -> None:
    assert site_time(None, "onset_at", "Onset") is None


@pytest.mark.parametrize("typed", [datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59)])
def test_the_date_pickers_extremes_are_left_for_the_services_to_refuse(typed: datetime) -> None:
    assert site_time(typed, "harvested_at", "Harvest time").replace(tzinfo=None) == typed  # no OverflowError (a 500)
