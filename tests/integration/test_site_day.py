"""Calendar days are the site's (config/site.toml: Europe/Paris), not the server's (UTC on this machine).

Between 23:00 and 24:00 UTC it is already the next day in Paris. A server that took its own date would refuse
a weight measured after local midnight as "in the future" and would count a weight one day younger than it is,
so a weight eight days old would pass a seven-day rule. Each test sets the site's clock to 23:30 UTC.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from mscbatch import site
from mscbatch.patients import services
from mscbatch.patients.models import WeightMeasurement
from mscbatch.site import site_day, site_today
from tests.conftest import api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user


def test_the_site_day_of_an_instant_is_its_date_in_the_site_time_zone() -> None:
    assert site_day(datetime(2026, 12, 3, 22, 59, tzinfo=UTC)) == date(2026, 12, 3)
    assert site_day(datetime(2026, 12, 3, 23, 30, tzinfo=UTC)) == date(2026, 12, 4)  # CET, UTC+1
    assert site_day(datetime(2026, 7, 3, 22, 30, tzinfo=UTC)) == date(2026, 7, 4)  # CEST, UTC+2


@pytest.fixture
def after_paris_midnight(monkeypatch: pytest.MonkeyPatch) -> date:
    """The site's clock at 23:30 UTC today, 00:30 tomorrow in Paris; returns the Paris day."""
    moment = datetime.combine(datetime.now(UTC).date(), time(23, 30), UTC)
    monkeypatch.setattr(site, "utcnow", lambda: moment)
    assert site_today() == moment.date() + timedelta(days=1)
    return site_today()


def test_a_weight_measured_after_local_midnight_is_recorded_through_the_page(app, users, client_as,  # type: ignore[no-untyped-def]
                                                                              after_paris_midnight):
    session = app.extensions["mscbatch.db"].new_session()
    pid = patient(session, user(session, "clinician"), weight=None, enrol=False).id
    session.close()
    client = client_as("clinician")
    page = client.get(f"/patients/{pid}").get_data(as_text=True)
    assert f'value="{after_paris_midnight.isoformat()}"' in page  # the form offers the site's today
    answer = client.post(f"/patients/{pid}/weights",
                         data={"weight_kg": "62.5", "measured_on": after_paris_midnight.isoformat()})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalar(select(WeightMeasurement.measured_on).where(WeightMeasurement.patient_id == pid)) \
        == after_paris_midnight
    session.close()


def test_a_weight_measured_on_a_later_site_day_is_still_refused_as_future(app, users, client_as,  # type: ignore[no-untyped-def]
                                                                         after_paris_midnight):
    session = app.extensions["mscbatch.db"].new_session()
    pid = patient(session, user(session, "clinician"), weight=None, enrol=False).id
    session.close()
    tomorrow = (after_paris_midnight + timedelta(days=1)).isoformat()
    answer = client_as("clinician").post(f"/patients/{pid}/weights", data={"weight_kg": "62.5", "measured_on": tomorrow})
    assert answer.status_code == 422
    assert "The weight cannot be measured in the future." in answer.get_data(as_text=True)


def _weighed_patient_with_stock(app, *, measured_on: date) -> int:  # type: ignore[no-untyped-def]
    """An enrolled SLE patient weighing 62.5 kg on `measured_on`, and a released lot whose bags can dose them."""
    session = app.extensions["mscbatch.db"].new_session()
    try:
        clinician, tech = user(session, "clinician"), user(session, "technician")
        lot_with_bags(session, tech, donor(session, tech))
        pid = patient(session, clinician, weight=None).id
        services.record_weight(session, clinician, pid, weight_kg="62.5", measured_on=measured_on)
        return int(pid)
    finally:
        session.close()


def test_a_weight_eight_site_days_old_does_not_pass_the_seven_day_rule(app, users,  # type: ignore[no-untyped-def]
                                                                       after_paris_midnight):
    """Eight days before the Paris day is only seven days before the UTC day: the server's date would pass it."""
    pid = _weighed_patient_with_stock(app, measured_on=after_paris_midnight - timedelta(days=8))
    token = api_token_for(app, "clinician")
    answer = app.test_client().post(f"/api/v1/patients/{pid}/dose-calculation", json={},
                                    headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert not body["allowed"]
    assert body["refusal_code"] == "weight_stale", body
    assert "8 days ago" in body["refusal_reason"]


def test_an_infusion_planned_after_local_midnight_counts_the_weight_from_the_site_day(app, users):  # type: ignore[no-untyped-def]
    """Planned at 23:30 UTC in three days = 00:30 Paris in four: a weight measured four days ago is then eight
    days old at the infusion, though only seven by the UTC date of the planned instant."""
    today = site_today()
    pid = _weighed_patient_with_stock(app, measured_on=today - timedelta(days=4))
    token = api_token_for(app, "clinician")

    def dry_run(planned: datetime):  # type: ignore[no-untyped-def]
        return app.test_client().post(f"/api/v1/patients/{pid}/dose-calculation",
                                      json={"planned_at": planned.isoformat()},
                                      headers={"Authorization": f"Bearer {token}"}).get_json()

    before_midnight = dry_run(datetime.combine(today + timedelta(days=3), time(22, 30), UTC))  # 23:30 Paris
    assert before_midnight["allowed"], before_midnight
    after_midnight = dry_run(datetime.combine(today + timedelta(days=3), time(23, 30), UTC))
    assert after_midnight["refusal_code"] == "weight_stale", after_midnight
    assert f"before the planned infusion on {today + timedelta(days=4)}" in after_midnight["refusal_reason"]


def test_the_dose_page_judges_a_planned_day_as_the_sites_day(app, users, client_as):  # type: ignore[no-untyped-def]
    """Review finding: the page turned "planned on D" into 23:59 UTC, which is D + 1 in Paris, so a weight exactly
    seven days old on D was refused as eight days old."""
    today = site_today()
    pid = _weighed_patient_with_stock(app, measured_on=today - timedelta(days=7))
    page = client_as("clinician").get(f"/patients/{pid}/dose", query_string={"planned_on": today.isoformat()})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "125,000,000" in html, html[html.find("<main"):][:1500]
    assert "days before the planned infusion" not in html
