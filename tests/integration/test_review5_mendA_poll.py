"""The running infusion's STOP poll (stop.json, every 20 s) is the page's own doing, not a person's: it must not slide
the session's idle window (an unattended ward tablet idles out), and once the session has ended it answers 401 in
JSON, which the page's script says ("Signed out: ..."), not the sign-in page's redirect it cannot read (review 5)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from mscbatch.auth.models import AuthSession
from mscbatch.custody import infusions
from mscbatch.database import utcnow
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _last_seen(db_session, minutes_ago: int | None = None):  # type: ignore[no-untyped-def]
    if minutes_ago is not None:
        db_session.execute(update(AuthSession).where(AuthSession.ended_at.is_(None))
                           .values(last_seen_at=utcnow() - timedelta(minutes=minutes_ago)))
        db_session.commit()
    seen = db_session.scalars(select(AuthSession.last_seen_at).where(AuthSession.ended_at.is_(None))).all()
    db_session.rollback()
    return seen


@pytest.fixture()
def running(db_session):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    infusion = infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                        bag_scan=ward.token, label_key=KEY)
    db_session.rollback()
    return infusion.id


def test_the_stop_poll_does_not_keep_an_unattended_session_alive(app, db_session, client_as, running):  # type: ignore[no-untyped-def]
    nurse = client_as("nurse")
    assert nurse.get(f"/ward/infusions/{running}").status_code == 200
    idle = app.config["IDLE_TIMEOUT_MINUTES"]
    before = _last_seen(db_session, minutes_ago=idle - 2)
    assert nurse.get(f"/ward/infusions/{running}/stop.json").status_code == 200
    assert _last_seen(db_session) == before  # the poll is no activity: the idle window did not slide
    _last_seen(db_session, minutes_ago=idle + 1)
    answer = nurse.get(f"/ward/infusions/{running}/stop.json")
    assert answer.status_code == 401 and answer.is_json
    # S39: the page then goes on watching for STOP with its watch token (test_s39_infusion_stop_watch)
    assert answer.get_json()["message"] == "Signed out: sign in again to record anything."
    assert nurse.get("/ward").status_code == 302  # the session idled out, as said


def test_a_person_opening_a_page_still_slides_the_idle_window(app, db_session, client_as, running):  # type: ignore[no-untyped-def]
    nurse = client_as("nurse")
    before = _last_seen(db_session, minutes_ago=5)
    assert nurse.get(f"/ward/infusions/{running}").status_code == 200
    assert _last_seen(db_session) != before


def test_a_signed_out_poll_answers_401_json(app, running):  # type: ignore[no-untyped-def]
    answer = app.test_client().get(f"/ward/infusions/{running}/stop.json")
    assert answer.status_code == 401 and answer.get_json()["signed_out"] is True
