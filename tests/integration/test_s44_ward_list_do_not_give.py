"""The ward's "Bags out of the unit now" says DO NOT GIVE, with the bedside check's reason, for a bag that must not
be given: the session 44 review found a thawed bag of a lot recalled since it left the unit still listed with "Give
by 13:35 (59 minutes left)", a countdown telling the ward when to give it (the bedside check itself stopped it)."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.core.identifiers import din_shown
from mscbatch.custody import handover
from mscbatch.lots import storage
from mscbatch.lots.models import Bag, StorageLocation
from mscbatch.patients.models import Patient
from mscbatch.patients.withdrawal import withdraw
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD
from tests.integration.lot_factories import box
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.integration.test_custody_support import ward_bag

pytestmark = pytest.mark.usefixtures("users")


def _row(page: str, bag_id: int) -> str:
    found = re.search(rf'<tr id="on-ward-{bag_id}">(.*?)</tr>', page, re.S)
    assert found, page[:3000]
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def test_a_thawed_bag_of_a_lot_recalled_since_says_do_not_give_in_place_of_its_countdown(app, client_as):
    thawed, received = ward_bag(app), ward_bag(app, state="received")
    nurse = client_as("nurse")
    before = _row(nurse.get("/ward").get_data(as_text=True), thawed.bag_id)
    assert "minutes left" in before and "DO NOT GIVE" not in before  # nothing stops it yet
    with app.extensions["mscbatch.db"].new_session() as session:
        started = recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=thawed.lot_id,
                                       reason="late positive sterility culture", password=PASSWORD)
        recall_id = started.recall_id
    page = nurse.get("/ward").get_data(as_text=True)
    row = _row(page, thawed.bag_id)
    assert "DO NOT GIVE THIS BAG." in row, row
    assert "minutes left" not in row and "data-give-by" not in re.search(
        rf'<tr id="on-ward-{thawed.bag_id}">(.*?)</tr>', page, re.S).group(1)  # no countdown for the script to run
    assert f"R-{recall_id}" in row or "RECALLED" in row.upper(), row
    # the other lot's bag, received and still frozen, is not touched by this recall
    other = _row(page, received.bag_id)
    if received.lot_id != thawed.lot_id:
        assert "DO NOT GIVE" not in other, other


def test_a_thawed_bag_whose_course_was_stopped_since_says_do_not_give_not_prescribed(app, client_as):
    """The patient withdrawn stops the course: the bag, thawed on the ward, is no one's now (the review's second
    case: "no patient (not prescribed now)" beside "59 minutes left")."""
    thawed = ward_bag(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        patient = session.get(Patient, thawed.patient_id)
        withdraw(session, user(session, "clinician"), PASSWORD, patient.id, reason="consent withdrawn")
    row = _row(client_as("nurse").get("/ward").get_data(as_text=True), thawed.bag_id)
    assert "DO NOT GIVE THIS BAG." in row and "not prescribed for any patient now" in row, row
    assert "minutes left" not in row and "No wristband" not in row, row


def test_a_bag_on_its_way_is_not_called_do_not_give_for_not_being_received_yet(app, client_as):
    sent = ward_bag(app, state="dispatched")
    row = _row(client_as("nurse").get("/ward").get_data(as_text=True), sent.bag_id)
    assert "not received yet" in row and "DO NOT GIVE" not in row, row
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Bag, sent.bag_id).status == "dispatched"
        assert session.scalar(select(Bag.id).where(Bag.id == sent.bag_id)) == sent.bag_id


def _text(response: Any) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split()))


def test_dispatching_a_bag_returned_from_the_ward_says_it_waits_for_qa_not_that_it_is_not_allocated(app, client_as):
    """The review's case: "is not allocated to a patient by a signed prescription" for a bag back from the ward sent
    the technician looking for a prescription, when QA's assessment of the return is what it waits for."""
    thawed = ward_bag(app, state="received")
    with app.extensions["mscbatch.db"].new_session() as session:
        handover.return_bag(session, user(session, "nurse"), thawed.bag_id, reason="patient's infusion postponed")
        shown = din_shown(session.get(Bag, thawed.bag_id))
    refused = client_as("technician").post("/ward/dispatch", data={
        "bag": thawed.token, "courier": "Fast Courier", "shipper": "DS-3", "temperature_logger_id": "TL-0042"})
    words = _text(refused)
    assert refused.status_code == 409, words
    assert (f"Bag {shown} cannot be dispatched: it came back from the ward and waits for QA's assessment (Returned "
            "bags)") in words, words
    assert "not allocated" not in words
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Bag, thawed.bag_id).status == "returned"


def test_a_bag_moved_on_the_lot_page_is_said_moved_from_where_to_where(app, client_as):
    with app.extensions["mscbatch.db"].new_session() as session:
        tech = user(session, "technician")
        [bag] = lot_with_bags(session, tech, donor(session, tech), bags=1, cells=200_000_000, placed=False)
        box_id = box(session)
        storage.store_bag(session, tech, bag.id, box_id, 1)
        lot_id, bag_id = bag.lot_id, bag.id
        name = storage.box_words(session.get(StorageLocation, box_id))  # "Box 1"
    client = client_as("technician")
    moved = client.post(f"/lots/{lot_id}/store", data={"store-bag_id": bag_id, "store-box_id": box_id,
                                                       "store-position": "B2", "store-reason": "Tank LN2 alarm"})
    assert moved.status_code == 302
    page = _text(client.get(moved.headers["Location"]))
    assert f"Bag moved from {name} A1 to {name} B2." in page, page[:2000]
    assert "Bag stored in position" not in page
