"""Review 3 (ward): a bag that broke at thaw or passed its post-thaw limit could not be recorded as discarded on the
web (the ward page offered no discard; only the JSON API could), so it stayed "thawed" for ever and its
prescription could not be cancelled. The ward page now has a Discard action with a required reason: a nurse for a
bag received or thawed on the ward, QA for a bag returned to the unit or in stock."""
from __future__ import annotations

import re

from sqlalchemy import select

from mscbatch.custody import handover
from mscbatch.custody.models import CustodyEvent
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Prescription
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag


def test_a_bag_broken_at_thaw_is_discarded_on_the_ward_page_and_the_prescription_cancelled(app, users, db_session,
                                                                                          client_as):
    ward = prescribed_bag(db_session)  # thawed
    rx_id = db_session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))
    db_session.rollback()
    nurse = client_as("nurse")
    page = nurse.get("/ward").get_data(as_text=True)
    assert "discard" in re.findall(r'name="action" value="(\w+)"', page)

    no_reason = nurse.post("/ward/event", data={"bag": ward.token, "action": "discard", "reason": " "})
    assert no_reason.status_code == 422 and "Say why the bag is discarded" in no_reason.get_data(as_text=True)
    assert db_session.get(Bag, ward.bag_id).status == "thawed"
    db_session.rollback()

    done = nurse.post("/ward/event", data={"bag": ward.token, "action": "discard", "location": "Ward 3",
                                           "reason": "bag cracked in the water bath"})
    assert done.status_code == 302
    cancel = client_as("clinician").post(f"/patients/prescriptions/{rx_id}/cancel",
                                         data={"password": PASSWORD, "reason": "bag broke at thaw: prescribe again"})
    assert cancel.status_code == 302
    assert db_session.get(Bag, ward.bag_id).status == "discarded"
    event = db_session.scalar(select(CustodyEvent).where(CustodyEvent.bag_id == ward.bag_id,
                                                         CustodyEvent.kind == "discarded"))
    assert event.reason == "bag cracked in the water bath" and event.location == "Ward 3"


def test_a_nurse_discards_a_received_bag_and_qa_a_returned_one_on_the_ward_page(app, users, db_session, client_as):
    received = prescribed_bag(db_session, state="received")
    returned = prescribed_bag(db_session, state="received")
    handover.return_bag(db_session, user(db_session, "nurse"), returned.bag_id, reason="shipper opened in transit")
    db_session.rollback()

    assert client_as("nurse").post("/ward/event", data={
        "bag": received.token, "action": "discard", "reason": "bag split in the shipper"}).status_code == 302
    nurse_on_returned = client_as("nurse").post("/ward/event", data={
        "bag": returned.token, "action": "discard", "reason": "not for the ward"})
    assert nurse_on_returned.status_code == 403  # a returned bag is QA's to decide
    db_session.expire_all()
    assert db_session.get(Bag, returned.bag_id).status == "returned"  # the refusal wrote nothing
    assert db_session.scalar(select(CustodyEvent).where(CustodyEvent.bag_id == returned.bag_id,
                                                        CustodyEvent.kind == "discarded")) is None
    db_session.rollback()
    qa = client_as("qa")
    page = qa.get("/ward").get_data(as_text=True)
    assert re.findall(r'name="action" value="(\w+)"', page) == ["discard"]
    # a returned bag is discarded by QA's signed assessment of the return (custody.returns), not an unsigned tap
    unsigned = qa.post("/ward/event", data={"bag": returned.token, "action": "discard",
                                            "reason": "temperature excursion in transit"})
    assert unsigned.status_code == 409 and "signed assessment of the return" in unsigned.get_data(as_text=True)
    assert qa.post(f"/ward/returned/{returned.bag_id}", data={
        "decision": "discard", "rationale": "temperature excursion in transit", "password": PASSWORD}).status_code == 302
    db_session.expire_all()
    assert db_session.get(Bag, received.bag_id).status == "discarded"
    assert db_session.get(Bag, returned.bag_id).status == "discarded"
