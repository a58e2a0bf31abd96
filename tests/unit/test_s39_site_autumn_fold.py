"""Session 39: a wall-clock time the site's clocks show twice in autumn (Europe/Paris, 2026-10-25 02:00-02:59) was
read as summer time without a word, an hour off when the second was meant. site_time refuses it as it refuses a
spring time that does not exist, naming the field and both readings; zone_reading reads the time typed with the
zone's abbreviation (what the forms accept after such a refusal), and site_time takes that aware time as it is."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mscbatch.errors import ValidationFailed
from mscbatch.site import happens_twice, site_time, zone_reading


def test_an_autumn_time_shown_twice_is_refused_naming_the_field_and_both_readings() -> None:
    with pytest.raises(ValidationFailed) as refused:
        site_time(datetime(2026, 10, 25, 2, 30), "collection_at", "Collection time")
    assert refused.value.field == "collection_at"
    assert refused.value.message == (
        "Collection time: 02:30 happens twice on 2026-10-25 in Europe/Paris (the clocks went back): type 02:30 CEST "
        "for the first, before the change (00:30 UTC), or 02:30 CET for the second, an hour later (01:30 UTC), with "
        "the zone after the time, as in 2026-10-25T02:30 CET.")


@pytest.mark.parametrize("minute", [0, 1, 59])
def test_every_minute_of_the_hour_shown_twice_is_refused(minute: int) -> None:
    with pytest.raises(ValidationFailed, match=rf"type 02:{minute:02d} CEST .* or 02:{minute:02d} CET"):
        site_time(datetime(2026, 10, 25, 2, minute))


def test_the_times_either_side_of_the_autumn_change_are_read_as_typed() -> None:
    assert site_time(datetime(2026, 10, 25, 1, 59)).astimezone(UTC) == datetime(2026, 10, 24, 23, 59, tzinfo=UTC)
    assert site_time(datetime(2026, 10, 25, 3, 0)).astimezone(UTC) == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)


def test_the_zone_abbreviation_says_which_and_site_time_keeps_it() -> None:
    summer, winter = (zone_reading(datetime(2026, 10, 25, 2, 30), zone) for zone in ("CEST", "cet"))
    assert summer is not None and winter is not None
    assert site_time(summer).astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert site_time(winter).astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert winter.astimezone(UTC) - summer.astimezone(UTC) == timedelta(hours=1)
    assert happens_twice(summer) and not happens_twice(site_time(datetime(2026, 10, 25, 3, 30)))


@pytest.mark.parametrize(("typed", "zone"), [
    (datetime(2026, 10, 25, 2, 30), "UTC"),  # not the site's zone
    (datetime(2026, 7, 1, 10, 0), "CET"),  # the site is on summer time then
    (datetime(2026, 3, 29, 2, 30), "CET"),  # skipped in spring: no zone makes it a time of the site
    (datetime(2026, 3, 29, 2, 30), "CEST"),
])
def test_a_zone_the_site_does_not_use_at_that_time_reads_nothing(typed: datetime, zone: str) -> None:
    assert zone_reading(typed, zone) is None
