"""A course refused only for the DMSO already given in the 24 hours before it is told from when it may be planned
("Plan this course later: ... so from 2026-12-07 09:13 none of the 22.00 g already given counts"). That moment was
cut to its minute: for a bag started at 09:12:30 it said 09:12, when the bag's DMSO still counts (for 30 seconds),
and a course planned at the minute advised was refused again. It is now the next whole minute, never before the end
of the 24 hours; the limit itself was and is judged on the exact grams and the exact instants."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import update

from mscbatch.core.dosing import DmsoGiven
from mscbatch.custody.models import Infusion
from mscbatch.site import site_config
from tests.integration.test_dmso_per_day import _api, _stopped_after_first_bag

PARIS = ZoneInfo("Europe/Paris")
ADVICE = "Plan this course later: DMSO counts for 24 hours from the start of its infusion, so from {at} none of the "


def test_the_advised_moment_is_never_before_the_end_of_the_24_hours() -> None:
    def advice(start: datetime) -> str | None:
        return DmsoGiven(Decimal(22), ("09:12",), last_start=start).later_words

    assert advice(datetime(2026, 12, 5, 9, 12, 30, tzinfo=PARIS)).startswith(ADVICE.format(at="2026-12-06 09:13"))
    assert advice(datetime(2026, 12, 5, 9, 12, 0, 1, tzinfo=PARIS)).startswith(ADVICE.format(at="2026-12-06 09:13"))
    assert advice(datetime(2026, 12, 5, 9, 12, tzinfo=PARIS)).startswith(ADVICE.format(at="2026-12-06 09:12"))
    # the last minute of a day: the advice names the next day, the day the dose page must be given
    assert advice(datetime(2026, 12, 5, 23, 59, 30, tzinfo=PARIS)).startswith(ADVICE.format(at="2026-12-07 00:00"))


def test_a_course_planned_at_the_advised_minute_is_allowed_and_a_minute_earlier_refused(app, users, db_session):
    pid, _at, started = _stopped_after_first_bag(db_session)
    start = (started - timedelta(minutes=2)).replace(second=30, microsecond=0)  # in the past, half a minute in
    with app.extensions["mscbatch.db"].engine.begin() as connection:
        connection.execute(update(Infusion.__table__).where(Infusion.__table__.c.patient_id == pid)
                           .values(started_at=start))
    api, headers = _api(app)
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["refusal_code"] == "dmso_limit", dry
    advised = (start.astimezone(UTC) + timedelta(hours=24, seconds=30)).astimezone(site_config().tz)  # the next whole minute
    assert dry["refusal_later"].startswith(ADVICE.format(at=f"{advised:%Y-%m-%d %H:%M}")), dry["refusal_later"]

    planned = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers,
                       json={"planned_at": advised.isoformat()}).get_json()
    assert planned["allowed"] is True, planned  # the advice holds: at that minute none of it counts
    assert Decimal(planned["calculation"]["dmso_given_g"]) == 0
    earlier = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers,
                       json={"planned_at": (advised - timedelta(minutes=1)).isoformat()}).get_json()
    assert earlier["refusal_code"] == "dmso_limit", earlier  # a minute before it, the bag's DMSO still counts
