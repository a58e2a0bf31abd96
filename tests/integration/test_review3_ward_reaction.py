"""Review 3 (ward): a reaction's onset could not be given (the API refused onset_at as an unknown field, the form had
no field), so a reaction seen at 03:10 and written up at 04:00 read as 04:00; and the API silently cut free text
(a description past 4000 characters answered 201 with the end lost; locations, couriers, reasons likewise) where the
forms refuse it. The onset is now optional on the form and the API (not in the future, not before the infusion
started) and shown on the infusion page; the API refuses text too long with 422 naming the field."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from mscbatch.custody import infusions
from mscbatch.custody.models import Infusion, InfusionReaction
from mscbatch.site import site_config
from tests.conftest import api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

TERM = "Infusion related reaction"


def _running(app, db_session, started_minutes_ago: int = 0):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    infusion = infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id, wristband=ward.wristband, bag_scan=ward.token,
                                        label_key=KEY)
    inf_id = infusion.id
    db_session.rollback()
    if started_minutes_ago:  # the infusion began a while ago (written here: the start is always "now")
        with app.extensions["mscbatch.db"].engine.begin() as connection:
            connection.execute(update(Infusion.__table__).where(Infusion.__table__.c.id == inf_id).values(
                started_at=datetime.now(UTC) - timedelta(minutes=started_minutes_ago)))
    return inf_id, {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}


def _fields(answer) -> set[str]:  # type: ignore[no-untyped-def]
    """The fields a 422 names (a schema's and a service's alike, by field)."""
    return set(answer.get_json().get("errors") or {})


def _post(app, inf_id, headers, **body):  # type: ignore[no-untyped-def]
    return app.test_client().post(f"/api/v1/custody/infusions/{inf_id}/reactions", headers=headers,
                                  json={"ctcae_term": TERM, "grade": 3, **body})


def test_a_long_description_is_refused_naming_the_field_never_cut(app, users, db_session):
    inf_id, headers = _running(app, db_session)
    note = "rigors, then hypotension 80/40; " * 130  # ~4300 characters
    answer = _post(app, inf_id, headers, description=note)
    assert answer.status_code == 422 and "description" in _fields(answer)
    assert db_session.query(InfusionReaction).count() == 0
    db_session.rollback()
    assert _post(app, inf_id, headers, description="x" * 4000).status_code == 201


def test_the_api_refuses_custody_text_too_long_naming_the_field(app, users, db_session):
    ward = prescribed_bag(db_session, state="received")
    db_session.rollback()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    for body, name in (({"kind": "thawed", "location": "W" * 121}, "location"),
                       ({"kind": "returned", "reason": "r" * 2001}, "reason")):
        answer = app.test_client().post("/api/v1/custody/events", headers=headers,
                                        json={"bag_id": ward.bag_id, **body})
        assert answer.status_code == 422 and name in _fields(answer), answer.get_json()
    tech = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    courier = app.test_client().post("/api/v1/custody/events", headers=tech, json={
        "kind": "dispatched", "bag_id": ward.bag_id, "courier": "C" * 121, "shipper": "S",
        "temperature_logger_id": "T"})
    assert courier.status_code == 422 and "courier" in _fields(courier)


def test_the_onset_reported_is_recorded_and_checked(app, users, db_session, client_as):
    inf_id, headers = _running(app, db_session, started_minutes_ago=90)
    onset = (datetime.now(UTC) - timedelta(minutes=50)).replace(microsecond=0)
    answer = _post(app, inf_id, headers, onset_at=onset.isoformat())
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["onset_at"].startswith(onset.strftime("%Y-%m-%dT%H:%M"))
    row = db_session.query(InfusionReaction).one()
    assert abs((row.onset_at - onset).total_seconds()) < 1 and row.recorded_at > row.onset_at
    db_session.rollback()

    future = _post(app, inf_id, headers, onset_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    before = _post(app, inf_id, headers, onset_at=(datetime.now(UTC) - timedelta(hours=3)).isoformat())
    naive = _post(app, inf_id, headers, onset_at=datetime.now().replace(microsecond=0).isoformat())
    for refused in (future, before, naive):
        assert refused.status_code == 422 and "onset_at" in _fields(refused), refused.get_json()
    assert "in the future" in future.get_json()["detail"] and "before the infusion started" in before.get_json()["detail"]

    # the form: local time of the site; the infusion page shows the onset
    local = (datetime.now(UTC) - timedelta(minutes=20)).astimezone(site_config().tz)
    nurse = client_as("nurse")
    posted = nurse.post(f"/ward/infusions/{inf_id}/reactions", data={
        "ctcae_term": "Fever", "grade": "1", "onset_at": local.strftime("%Y-%m-%dT%H:%M")})
    assert posted.status_code == 302
    page = nurse.get(f"/ward/infusions/{inf_id}").get_data(as_text=True)
    assert local.strftime("%Y-%m-%d %H:%M") in page and 'class="reaction-onset"' in page
    too_early = nurse.post(f"/ward/infusions/{inf_id}/reactions", data={
        "ctcae_term": "Fever", "grade": "1",
        "onset_at": (local - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")})
    assert too_early.status_code == 422 and "before the infusion started" in too_early.get_data(as_text=True)
