"""S41 (nurse-reviewer, patient safety): a second bag of a patient could be checked, confirmed and started while the
first bag still ran, even after a grade 4 anaphylaxis was recorded during it; the check's page counted the running
bag as "given already". The bedside check (custody.checks, its one statement) now says STOP when another bag of the
patient is STILL RUNNING, and when a reaction of grade 3 or more was recorded during an infusion of the patient since
the bag's prescription was signed (the prescriber decides); the infusion start, which runs the check again in its
write transaction, refuses both. Through the web and the API, on SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.core.identifiers import din_shown
from mscbatch.custody import handover, infusions
from mscbatch.custody.models import Infusion
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation
from mscbatch.site import local_and_utc
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.integration.test_custody_support import KEY, Ward, checked_and_confirmed, prescribed_bag, token_of

pytestmark = pytest.mark.usefixtures("users")


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _on_ward(session: Any, ward: Ward, bag_id: int) -> Ward:
    """Another bag of the same course dispatched, received and thawed: the next bag to give."""
    nurse, bag = user(session, "nurse"), session.get(Bag, bag_id)
    if bag.status == "allocated":
        handover.dispatch(session, user(session, "technician"), bag.id, courier="C", shipper="S",
                          temperature_logger_id="T")
    handover.receive(session, nurse, bag.id, location="Ward 3", scan=token_of(bag))
    handover.thaw(session, nurse, bag.id, location="Ward 3", scan=token_of(bag))
    return Ward(bag.id, [], ward.patient_id, ward.wristband, token_of(bag), ward.lot_id, ward.donor_id)


def _first_running(app: Any, *, second_confirmed: bool = False) -> tuple[Ward, Ward, int]:
    """Bag A of a three-bag course running; bag B of the same course thawed on the ward. `second_confirmed`: B's
    two-person check confirmed before A started (its start is then what the check must refuse)."""
    with app.extensions["mscbatch.db"].new_session() as session:
        first = prescribed_bag(session)
        second = _on_ward(session, first, first.other_bag_ids[0])
        checked_and_confirmed(session, first)
        if second_confirmed:
            checked_and_confirmed(session, second)
        started = infusions.start_infusion(session, user(session, "nurse"), first.bag_id, wristband=first.wristband,
                                           bag_scan=first.token, label_key=KEY)
        return first, second, started.id


def _started_words(app: Any, infusion_id: int) -> tuple[str, str]:
    with app.extensions["mscbatch.db"].new_session() as session:
        infusion = session.get(Infusion, infusion_id)
        return din_shown(session.get(Bag, infusion.bag_id)), local_and_utc(infusion.started_at)


def _running_words(app: Any, infusion_id: int) -> str:
    din, started = _started_words(app, infusion_id)
    return (f"Another bag ({din}) is STILL RUNNING for this patient (started {started}): end that infusion before "
            "starting another bag.")


def _web_check(client: Any, ward: Ward) -> tuple[str, str]:
    answer = client.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token}, follow_redirects=True)
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    return page, _text(page)


def _api_check(app: Any, ward: Ward) -> dict[str, Any]:
    answer = app.test_client().post("/api/v1/custody/scan-verify", json={"wristband": ward.wristband,
                                                                         "bag": ward.token},
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def _infusions_of(app: Any, bag_id: int) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count(Infusion.id)).where(Infusion.bag_id == bag_id))


def _reaction(client: Any, infusion_id: int, grade: str, term: str = "Anaphylaxis",
              description: str = "stridor, BP 70/40") -> None:
    answer = client.post(f"/ward/infusions/{infusion_id}/reactions",
                         data={"ctcae_term": term, "grade": grade, "description": description})
    assert answer.status_code == 302, _text(answer.get_data(as_text=True))[:2000]


def _end(app: Any, infusion_id: int) -> None:
    with app.extensions["mscbatch.db"].new_session() as session:
        infusion = session.get(Infusion, infusion_id)
        volume = session.scalar(select(Allocation.volume_ml).where(Allocation.bag_id == infusion.bag_id))
        infusions.end_infusion(session, user(session, "nurse"), infusion_id, volume_ml=str(volume))


def test_a_second_bag_while_the_first_runs_is_a_stop_on_the_web_and_the_api(app, client_as):  # type: ignore[no-untyped-def]
    _first, second, running = _first_running(app)
    words = _running_words(app, running)
    page, shown = _web_check(client_as("nurse"), second)
    assert ">STOP<" in page and ">MATCHES<" not in page
    assert 'data-code="other_running"' in page and words in shown
    assert "given already" not in shown and 'id="start-infusion"' not in page
    answer = _api_check(app, second)
    assert answer["result"] == "STOP" and answer["give_ml"] is None
    assert {"code": "other_running", "message": words} in answer["failures"]


def test_the_start_of_a_second_bag_confirmed_before_the_first_began_is_refused(app, client_as):  # type: ignore[no-untyped-def]
    """B was checked and confirmed while nothing ran; A was started since: B's start runs the check again in its
    write transaction and refuses, on the web and through the API; nothing is recorded."""
    _first, second, running = _first_running(app, second_confirmed=True)
    words = _running_words(app, running)
    nurse = client_as("nurse")
    answer = nurse.post(f"/ward/bags/{second.bag_id}/infusion",
                        data={"wristband": second.wristband, "bag": second.token}, follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert "NOT STARTED" in page or ">STOP<" in page
    assert words in _text(page)
    assert _infusions_of(app, second.bag_id) == 0
    api = app.test_client().post("/api/v1/custody/infusions",
                                 json={"bag_id": second.bag_id, "wristband": second.wristband, "bag": second.token},
                                 headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    assert api.status_code == 409, api.get_data(as_text=True)
    assert words in api.get_json()["detail"]
    assert _infusions_of(app, second.bag_id) == 0
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Bag, second.bag_id).status == "thawed"


def test_once_the_first_bag_is_ended_the_second_matches_and_is_counted_as_the_2nd(app, client_as):  # type: ignore[no-untyped-def]
    _first, second, running = _first_running(app)
    _end(app, running)
    page, shown = _web_check(client_as("nurse"), second)
    assert ">MATCHES<" in page, shown[:3000]
    assert "1 bag of 3 given already; this is the 2nd" in shown and "running now" not in shown
    assert _api_check(app, second)["result"] == "MATCHES"


def test_a_grade_4_reaction_stops_the_next_bag_even_once_the_first_is_ended(app, client_as):  # type: ignore[no-untyped-def]
    _first, second, running = _first_running(app, second_confirmed=True)
    nurse = client_as("nurse")
    _reaction(nurse, running, "4")
    din, _started = _started_words(app, running)

    # still running: both STOPs, the running bag first
    page, shown = _web_check(nurse, second)
    assert ">STOP<" in page and page.index('data-code="other_running"') < page.index('data-code="severe_reaction"')

    _end(app, running)
    with app.extensions["mscbatch.db"].new_session() as session:
        from mscbatch.custody.models import InfusionReaction

        onset = session.scalar(select(InfusionReaction.onset_at).where(InfusionReaction.infusion_id == running))
    words = (f"A grade 4 (life-threatening) reaction (Anaphylaxis: stridor, BP 70/40) was recorded during this "
             f"patient's infusion of bag {din}, beginning at {local_and_utc(onset)}: do not start another bag. The "
             "prescriber decides: call them.")
    page, shown = _web_check(nurse, second)
    assert ">STOP<" in page and 'data-code="severe_reaction"' in page and words in shown
    assert 'data-code="other_running"' not in page
    answer = _api_check(app, second)
    assert answer["result"] == "STOP" and {"code": "severe_reaction", "message": words} in answer["failures"]

    # the start of B, confirmed before the reaction, is refused too (web and API), nothing recorded
    refused = nurse.post(f"/ward/bags/{second.bag_id}/infusion",
                         data={"wristband": second.wristband, "bag": second.token}, follow_redirects=True)
    assert words in _text(refused.get_data(as_text=True))
    api = app.test_client().post("/api/v1/custody/infusions",
                                 json={"bag_id": second.bag_id, "wristband": second.wristband, "bag": second.token},
                                 headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"})
    assert api.status_code == 409 and words in api.get_json()["detail"]
    assert _infusions_of(app, second.bag_id) == 0


def test_a_grade_2_reaction_does_not_stop_the_next_bag(app, client_as):  # type: ignore[no-untyped-def]
    _first, second, running = _first_running(app)
    nurse = client_as("nurse")
    _reaction(nurse, running, "2", term="Chills", description="shivering")
    _end(app, running)
    page, shown = _web_check(nurse, second)
    assert ">MATCHES<" in page, shown[:3000]
    assert _api_check(app, second)["result"] == "MATCHES"


def test_a_new_course_prescribed_after_the_reaction_is_the_prescribers_decision(app, client_as):  # type: ignore[no-untyped-def]
    """The reaction's STOP holds for the prescription signed before it; the prescriber who stops that course and
    prescribes again, knowing of the reaction, decides: the new course's bag is not stopped by it."""
    with app.extensions["mscbatch.db"].new_session() as session:
        first = prescribed_bag(session)
        checked_and_confirmed(session, first)
        nurse = user(session, "nurse")
        started = infusions.start_infusion(session, nurse, first.bag_id, wristband=first.wristband,
                                           bag_scan=first.token, label_key=KEY)
        infusions.record_reaction(session, nurse, started.id, infusions.ReactionDetails("Anaphylaxis", 3, "wheeze"))
        volume = session.scalar(select(Allocation.volume_ml).where(Allocation.bag_id == first.bag_id))
        infusions.end_infusion(session, nurse, started.id, volume_ml=str(volume))
        old_rx = session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == first.bag_id))
        old_next = Ward(first.other_bag_ids[0], [], first.patient_id, first.wristband,
                        token_of(session.get(Bag, first.other_bag_ids[0])), first.lot_id, first.donor_id)
    assert any(f["code"] == "severe_reaction" for f in _api_check(app, old_next)["failures"])
    with app.extensions["mscbatch.db"].new_session() as session:
        clinician = user(session, "clinician")
        prescriptions.cancel(session, clinician, old_rx, "grade 3 anaphylaxis: course stopped", password=PASSWORD)
        tech = user(session, "technician")
        lot_with_bags(session, tech, donor(session, tech))  # enough cells for a new course
        new_rx = prescriptions.prescribe(session, clinician, PASSWORD, first.patient_id,
                                         repeat_course_reason="premedicated, slower rate: prescriber's decision")
        bag_id = session.scalar(select(Allocation.bag_id).where(Allocation.prescription_id == new_rx.id,
                                                                Allocation.active_bag_id.is_not(None))
                                .order_by(Allocation.id).limit(1))
        again = _on_ward(session, first, bag_id)
    answer = _api_check(app, again)
    assert not any(f["code"] == "severe_reaction" for f in answer["failures"]), answer["failures"]
