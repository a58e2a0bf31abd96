"""S40 (clinician's review, patient safety): a clinician stops the course (or cancels the prescription) while one of
its bags is being infused, e.g. for a fever. The infusion page, its STOP polls (stop.json, watch.json) and the ward's
"Infusions running now" said nothing: the nurse was never told. custody.checks.stop_running, the one rule all of them
use, now says STOP THE INFUSION NOW with the prescriber's words, and the one-reason end accepts it. A course whose
last bag runs and was not stopped says nothing. And a reaction's confirmation asks only a nurse to tell the clinician;
grade 3 or higher says to report it as a serious adverse event."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.custody import handover, infusions
from mscbatch.custody.infusion_views import SERIOUS_REACTION, WATCH_HEADER
from mscbatch.custody.models import Infusion
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Allocation, Prescription
from mscbatch.site import local_and_utc
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, Ward, checked_and_confirmed, prescribed_bag, token_of

pytestmark = pytest.mark.usefixtures("users")


def _running(app: Any, **kwargs: Any) -> tuple[Any, int, int]:
    """A bag of a three-bag course running; returns the ward bag, the infusion's id, the prescription's id."""
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session, **kwargs)
        checked_and_confirmed(session, ward)
        infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        rx_id = session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == ward.bag_id))
        return ward, infusion.id, rx_id


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _row(page: str, infusion_id: int) -> str:
    found = re.search(rf'<tr id="running-{infusion_id}"[^>]*>(.*?)</tr>', page, re.S)
    assert found, page[:4000]
    return _text(found.group(1))


def _stop_course(client: Any, rx_id: int, reason: str = "fever") -> None:
    answer = client.post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": reason})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:3000]


def _stopped_at(app: Any, rx_id: int) -> str:
    with app.extensions["mscbatch.db"].new_session() as session:
        prescription = session.get(Prescription, rx_id)
        assert prescription.status == "stopped"
        return local_and_utc(prescription.cancelled_at)


def test_a_course_stopped_while_its_bag_runs_says_stop_everywhere(app, client_as):  # type: ignore[no-untyped-def]
    ward, infusion_id, rx_id = _running(app)
    other, other_id, _other_rx = _running(app)  # another patient's bag, still fit
    nurse = client_as("nurse")
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert 'id="stop-running"' not in page
    assert nurse.get(f"/ward/infusions/{infusion_id}/stop.json").get_json()["stop_now"] is False
    token = html.unescape(re.search(r'data-watch-token="([^"]+)"', page).group(1))

    _stop_course(client_as("clinician"), rx_id, "fever")  # "Cancel the prescription / stop the course"
    words = (f"STOPPED THE COURSE at {_stopped_at(app, rx_id)} (fever): stop this bag and call the prescriber.")

    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    shown = _text(page)
    assert 'id="stop-running"' in page and "STOP THE INFUSION NOW" in shown
    assert "The prescriber" in shown and words in shown
    assert '<p id="end-stopped">' in page  # the one-reason end is offered
    polled = nurse.get(f"/ward/infusions/{infusion_id}/stop.json").get_json()
    assert polled["stop_now"] is True and any(words in reason for reason in polled["reasons"])
    assert polled["end_reason"] == infusions.STOPPED_BY_SYSTEM
    watched = app.test_client().get(f"/ward/infusions/{infusion_id}/watch.json", headers={WATCH_HEADER: token})
    assert watched.get_json()["stop_now"] is True  # the signed-out watch says it too

    for listed in (nurse.get("/ward").get_data(as_text=True), nurse.get("/ward/running").get_data(as_text=True)):
        assert "STOP THE INFUSION NOW" in _row(listed, infusion_id) and words in _row(listed, infusion_id)
        assert "STOP" not in _row(listed, other_id)
        # STOP first, although started before the other one
        assert listed.index(f'id="running-{infusion_id}"') < listed.index(f'id="running-{other_id}"')
    assert other.bag_id != ward.bag_id


def test_the_one_reason_end_is_accepted_on_the_prescribers_stop(app, client_as):  # type: ignore[no-untyped-def]
    _ward, infusion_id, rx_id = _running(app)
    nurse = client_as("nurse")
    refused = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "5", "stopped": "1"})
    assert refused.status_code == 422  # no STOP yet: the preset is refused
    _stop_course(client_as("clinician"), rx_id, "fever 39.2 C")
    asked = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "5"})
    assert asked.status_code == 422  # a plain end of 5 of 25 mL still asks why
    ended = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "5", "stopped": "1"})
    assert ended.status_code == 302, _text(ended.get_data(as_text=True))[:3000]
    with app.extensions["mscbatch.db"].new_session() as session:
        row = session.get(Infusion, infusion_id)
        assert row.ended_at is not None and row.volume_reason == infusions.STOPPED_BY_SYSTEM
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert 'id="stop-running"' not in page  # ended: no STOP any more
    assert 'id="running-' + str(infusion_id) not in nurse.get("/ward/running").get_data(as_text=True)


def test_a_cancelled_course_with_its_bag_ended_before_says_nothing(app, client_as):  # type: ignore[no-untyped-def]
    """A stop recorded after the bag's infusion ended concerns the bags not given: no STOP on the ended infusion."""
    _ward, infusion_id, rx_id = _running(app)
    nurse = client_as("nurse")
    assert nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "25"}).status_code == 302
    _stop_course(client_as("clinician"), rx_id, "fever")
    assert 'id="stop-running"' not in nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert nurse.get(f"/ward/infusions/{infusion_id}/stop.json").get_json()["stop_now"] is False


def test_a_course_whose_last_bag_runs_is_not_a_stop(app, client_as):  # type: ignore[no-untyped-def]
    """Every bag of the course given, the last one running, the course not stopped: it runs to its end, no STOP; once
    ended, the completed course is closed and still no STOP anywhere."""
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        nurse_user = user(session, "nurse")
        ids = []
        for bag_id in [ward.bag_id, *ward.other_bag_ids]:
            bag = session.get(Bag, bag_id)
            if bag.status == "allocated":
                handover.dispatch(session, user(session, "technician"), bag.id, courier="C", shipper="S",
                                  temperature_logger_id="T")
                handover.receive(session, nurse_user, bag.id, location="Ward 3", scan=token_of(bag))
                handover.thaw(session, nurse_user, bag.id, location="Ward 3", scan=token_of(bag))
            one = Ward(bag.id, [], ward.patient_id, ward.wristband, token_of(bag), ward.lot_id, ward.donor_id)
            checked_and_confirmed(session, one)
            started = infusions.start_infusion(session, nurse_user, bag.id, wristband=ward.wristband,
                                               bag_scan=one.token, label_key=KEY)
            ids.append(started.id)
            if len(ids) < 3:  # each earlier bag given whole, as prescribed
                volume = session.scalar(select(Allocation.volume_ml).where(Allocation.bag_id == bag.id))
                infusions.end_infusion(session, nurse_user, started.id, volume_ml=str(volume))
        rx_id = session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == ward.bag_id))
    last = ids[-1]
    nurse = client_as("nurse")
    assert 'id="stop-running"' not in nurse.get(f"/ward/infusions/{last}").get_data(as_text=True)
    assert nurse.get(f"/ward/infusions/{last}/stop.json").get_json()["stop_now"] is False
    assert "STOP" not in _row(nurse.get("/ward/running").get_data(as_text=True), last)
    with app.extensions["mscbatch.db"].new_session() as session:
        volume = session.scalar(select(Allocation.volume_ml).where(Allocation.bag_id == session.get(
            Infusion, last).bag_id))
    assert nurse.post(f"/ward/infusions/{last}/end", data={"volume_ml": str(volume)}).status_code == 302
    clinician = client_as("clinician")
    assert "Close the completed course" in clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True)
    _stop_course(clinician, rx_id, "course completed")
    for infusion_id in ids:
        assert 'id="stop-running"' not in nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)


def _reaction(client: Any, infusion_id: int, grade: str) -> str:
    answer = client.post(f"/ward/infusions/{infusion_id}/reactions",
                         data={"ctcae_term": "Infusion related reaction", "grade": grade, "description": "chills"},
                         follow_redirects=True)
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def test_only_a_nurse_is_asked_to_tell_the_clinician(app, client_as):  # type: ignore[no-untyped-def]
    _ward, infusion_id, _rx = _running(app)
    by_nurse = _text(_reaction(client_as("nurse"), infusion_id, "1"))
    assert "Reaction recorded. Tell the clinician." in by_nurse and SERIOUS_REACTION not in by_nurse
    by_clinician = _text(_reaction(client_as("clinician"), infusion_id, "2"))
    assert "Reaction recorded." in by_clinician and "Tell the clinician" not in by_clinician
    assert SERIOUS_REACTION not in by_clinician


def test_a_grade_3_reaction_says_to_report_a_serious_adverse_event(app, client_as):  # type: ignore[no-untyped-def]
    _ward, infusion_id, _rx = _running(app)
    assert SERIOUS_REACTION == ("Grade 3 or higher: report it as a serious adverse event as the protocol requires.")
    mild = _reaction(client_as("nurse"), infusion_id, "2")
    assert 'class="flag serious-reaction"' not in mild
    page = _reaction(client_as("nurse"), infusion_id, "3")
    shown = _text(page)
    # the confirmation; on a running infusion (s41) it also says to stop it now (CTCAE: interrupt the infusion)
    assert f"Reaction recorded. STOP THE INFUSION NOW and call the clinician. {SERIOUS_REACTION}" in shown
    assert page.count('class="flag serious-reaction"') == 1  # beside the grade 3 reaction only, not the grade 2
    by_clinician = _text(_reaction(client_as("clinician"), infusion_id, "4"))
    assert f"Reaction recorded. STOP THE INFUSION NOW. {SERIOUS_REACTION}" in by_clinician
    assert "Tell the clinician" not in by_clinician  # the confirmation asks a clinician to call no one
    assert "Reaction recorded. STOP THE INFUSION NOW and call the clinician" not in by_clinician
    # on the page (no flash now): beside the grade 3 and the grade 4 reactions, not the grade 2
    assert _text(client_as("nurse").get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)).count(
        SERIOUS_REACTION) == 2
