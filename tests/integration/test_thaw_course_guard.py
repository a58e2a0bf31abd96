"""A bag whose course can no longer give the prescribed dose is not thawed, nor sent to the ward (found by review).

Three bags are prescribed (50 + 50 + 25 x10^6 = 125 x10^6 for 62.5 kg, band 112.5-137.5 x10^6). Bag 1 is lost
(discarded on the ward): bags 2 and 3 would give 75 x10^6 = 1.2 x10^6/kg, and the bedside check STOPs them
(course_short). The nurse's Thaw still thawed bag 2, which was then stopped at the bedside and wasted: a thawed MSC
bag must be infused within its post-thaw limit. The thaw now refuses it first, in the bedside check's own words, and
says what to do; the dispatch keeps such a bag in the unit, where a new prescription can still use it. Refused: 409,
nothing written (no custody event, no status change, no audit event)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.core.identifiers import parse_din
from mscbatch.custody import handover
from mscbatch.custody.checks import evaluate
from mscbatch.custody.models import CustodyEvent
from mscbatch.errors import Conflict
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import token_of

SHORT = "THE PRESCRIBED DOSE CAN NO LONGER BE GIVEN"
WHAT_THEY_GIVE = "would give 1.2 x10^6/kg instead of the 2 x10^6/kg prescribed"
DISPATCH = {"courier": "C", "shipper": "S", "temperature_logger_id": "T"}


@dataclass(frozen=True)
class Course:
    wristband: str
    bags: list[tuple[int, str, str]]  # (bag id, label token, DIN), in the prescription's order


def _course(app: Any, *, on_ward: bool, lose_first: bool) -> Course:
    """The 3-bag course; `on_ward`: every bag dispatched and received (still frozen), else all still allocated in the
    unit; `lose_first`: bag 1 is sent, received and discarded on the ward (cracked in the shipper)."""
    with app.extensions["mscbatch.db"].new_session() as session:
        tech, clin, nurse = user(session, "technician"), user(session, "clinician"), user(session, "nurse")
        lot_with_bags(session, tech, donor(session, tech), bags=3, cells=50_000_000, volume_ml="25")
        row = patient(session, clin)
        rx = prescriptions.prescribe(session, clin, PASSWORD, row.id)
        bags = [session.get(Bag, int(draw["bag_id"])) for draw in rx.calculation["draws"]]
        assert len(bags) == 3
        for number, bag in enumerate(bags):
            if on_ward or (lose_first and number == 0):
                handover.dispatch(session, tech, bag.id, **DISPATCH)
                handover.receive(session, nurse, bag.id, scan=token_of(bag))
        if lose_first:
            handover.discard(session, nurse, bags[0].id, reason="bag cracked in the shipper")
        return Course(row.wristband_id, [(bag.id, token_of(bag), bag.din) for bag in bags])


def _written(app: Any) -> tuple[int, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return (session.scalar(select(func.count()).select_from(CustodyEvent)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def _status(app: Any, bag_id: int) -> str:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.get(Bag, bag_id).status


def _bedside_words(app: Any, course: Course, token: str) -> str:
    """The bedside check's STOP for the bag (reads only): the words the thaw must say."""
    with app.extensions["mscbatch.db"].new_session() as session:
        result = evaluate(session, course.wristband, token, app.config["LABEL_KEY"])
    assert [finding.code for finding in result.failures] == ["course_short"]
    return result.failures[0].message.split(" Do not give:")[0]


def _api(app: Any) -> tuple[Any, dict[str, str]]:
    return app.test_client(), {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}


def test_the_ward_page_does_not_thaw_a_bag_of_a_course_that_can_no_longer_give_the_dose(app, users, client_as):
    course = _course(app, on_ward=True, lose_first=True)
    bag_id, token, din = course.bags[1]
    bedside = _bedside_words(app, course, token)
    assert bedside.startswith(SHORT) and WHAT_THEY_GIVE in bedside
    nurse = client_as("nurse")  # signed in first: the sign-in is audited
    before = _written(app)
    answer = nurse.post("/ward/event", data={"bag": token, "action": "thaw"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 409, page
    assert f"DO NOT THAW bag {parse_din(din).display}: {bedside}" in page.replace("&#39;", "'")  # the bedside's own words
    assert f"bag {parse_din(course.bags[0][2]).display} (50 x10^6 cells of the dose) was DISCARDED" in page
    assert "Keep it frozen and call the prescriber" in page and "stopped and prescribed again" in page
    assert 'role="alert"' in page  # said in the page's error summary, as the other thaw refusals
    assert _status(app, bag_id) == "received" and _written(app) == before


def test_the_api_does_not_thaw_it_either_and_answers_a_problem_document(app, users):
    course = _course(app, on_ward=True, lose_first=True)
    bag_id, token, din = course.bags[2]
    bedside = _bedside_words(app, course, token)
    client, headers = _api(app)  # the token made first: a new token is audited
    before = _written(app)
    answer = client.post("/api/v1/custody/events", json={"kind": "thawed", "bag": token}, headers=headers)
    assert answer.status_code == 409, answer.get_json()
    assert answer.mimetype == "application/problem+json"
    detail = answer.get_json()["detail"]
    assert detail.startswith(f"DO NOT THAW bag {parse_din(din).display}: {bedside}") and "Keep it frozen" in detail
    assert _status(app, bag_id) == "received" and _written(app) == before


def test_a_bag_of_a_whole_course_is_thawed_on_the_page_and_through_the_api(app, users, client_as):
    course = _course(app, on_ward=True, lose_first=False)
    assert client_as("nurse").post("/ward/event", data={"bag": course.bags[0][1], "action": "thaw"}).status_code == 302
    assert _status(app, course.bags[0][0]) == "thawed"
    client, headers = _api(app)
    answer = client.post("/api/v1/custody/events", json={"kind": "thawed", "bag": course.bags[1][1]}, headers=headers)
    assert answer.status_code == 201, answer.get_json()
    assert _status(app, course.bags[1][0]) == "thawed"


def test_such_a_bag_is_not_sent_to_the_ward_and_stays_in_the_unit(app, users, client_as):
    """Sent, it would only wait on the ward to be returned; kept, the prescriber stops the course and a new
    prescription can use it."""
    course = _course(app, on_ward=False, lose_first=True)
    (second_id, second, din), (third_id, third, _din) = course.bags[1], course.bags[2]
    technician = client_as("technician")
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    before = _written(app)
    page = technician.post("/ward/dispatch", data={"bag": second, **DISPATCH})
    html = page.get_data(as_text=True)
    assert page.status_code == 409, html
    assert f"Bag {parse_din(din).display} cannot leave the unit: {SHORT}" in html and WHAT_THEY_GIVE in html
    assert "Keep it in storage and tell the prescriber" in html
    answer = app.test_client().post("/api/v1/custody/events", headers=headers,
                                    json={"kind": "dispatched", "bag": third, **DISPATCH})
    assert answer.status_code == 409 and answer.mimetype == "application/problem+json", answer.get_json()
    assert SHORT in answer.get_json()["detail"]
    assert _status(app, second_id) == _status(app, third_id) == "allocated" and _written(app) == before


def test_a_bag_of_a_whole_course_is_still_sent(app, users, client_as):
    course = _course(app, on_ward=False, lose_first=False)
    sent = client_as("technician").post("/ward/dispatch", data={"bag": course.bags[0][1], **DISPATCH})
    assert sent.status_code == 302, sent.get_data(as_text=True)
    assert _status(app, course.bags[0][0]) == "dispatched"


def test_a_bag_whose_course_lost_a_bag_to_a_recall_is_not_thawed(app, users):
    """The other way a course's bag is lost: its lot recalled while this bag, of another lot, waits on the ward (lot
    A's one bag, then two of lot B, as in test_review8_custody). The same refusal, naming the recall."""
    with app.extensions["mscbatch.db"].new_session() as session:
        tech, clin, nurse = user(session, "technician"), user(session, "clinician"), user(session, "nurse")
        the_donor = donor(session, tech)
        lot_a = lot_with_bags(session, tech, the_donor, bags=1, expires_in_days=100)
        lot_b = lot_with_bags(session, tech, the_donor, bags=3)
        row = patient(session, clin)
        prescriptions.prescribe(session, clin, PASSWORD, row.id)
        allocated = set(session.scalars(select(Allocation.active_bag_id).where(Allocation.patient_id == row.id)))
        assert allocated == {lot_a[0].id, lot_b[0].id, lot_b[1].id}
        bag_id, recalled_din = lot_b[0].id, lot_a[0].din
        handover.dispatch(session, tech, bag_id, **DISPATCH)
        handover.receive(session, nurse, bag_id)
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=lot_a[0].lot_id,
                             reason="supplier notice: medium endotoxin", password=PASSWORD)
        before = _written(app)
        with pytest.raises(Conflict) as refused:
            handover.thaw(session, nurse, bag_id)
        session.rollback()
        words = refused.value.message
    assert f"bag {parse_din(recalled_din).display} (50 x10^6 cells of the dose) can never be given: its lot has been RECALLED" in words
    assert words.startswith("DO NOT THAW") and WHAT_THEY_GIVE in words
    assert _status(app, bag_id) == "received" and _written(app) == before
