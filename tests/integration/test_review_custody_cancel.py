"""Safety review of custody and prescriptions: a bag lost on the ward (broken at thaw, returned) must not leave
its patient without a way to be prescribed again, and must never go back into stock."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.lots.models import Bag
from mscbatch.patients.models import Allocation, Prescription
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_review4_patients_support import dry_run_body


def _event(app, who: str, bag_id: int, kind: str, reason: str):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {api_token_for(app, who)}"}
    return app.test_client().post("/api/v1/custody/events", headers=headers,
                                  json={"kind": kind, "bag_id": bag_id, "reason": reason})


def _prescription_id(app, patient_id: int) -> int:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    rx_id = session.scalar(select(Prescription.id).where(Prescription.patient_id == patient_id))
    session.close()
    return rx_id


def test_a_prescription_whose_bag_broke_at_thaw_can_be_cancelled_and_the_patient_prescribed_again(
        app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session)
    tech = user(session, "technician")
    lot_with_bags(session, tech, donor(session, tech))  # fresh stock for the new prescription
    session.close()
    assert _event(app, "nurse", ward.bag_id, "discarded", "bag cracked in the water bath").status_code == 201
    rx_id = _prescription_id(app, ward.patient_id)
    clinician = client_as("clinician")
    response = clinician.post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": "bag broke at thaw"})
    assert response.status_code == 302, response.get_data(as_text=True)
    session = app.extensions["mscbatch.db"].new_session()
    assert session.get(Prescription, rx_id).status == "cancelled"
    assert session.get(Bag, ward.bag_id).status == "discarded"  # stays discarded: never back into stock
    assert {session.get(Bag, i).status for i in ward.other_bag_ids} == {"stored"}
    assert session.scalar(select(Allocation.active_bag_id).where(Allocation.bag_id == ward.bag_id)) is None
    session.close()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    again = app.test_client().post(f"/api/v1/patients/{ward.patient_id}/prescriptions", headers=headers,
                                   json=dry_run_body(app.test_client(), headers, ward.patient_id))
    assert again.status_code == 201, again.get_json()


def test_a_prescription_whose_bag_was_returned_from_the_ward_can_be_cancelled(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session, state="received")
    session.close()
    assert _event(app, "nurse", ward.bag_id, "returned", "infusion postponed").status_code == 201
    rx_id = _prescription_id(app, ward.patient_id)
    response = client_as("clinician").post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": "postponed"})
    assert response.status_code == 302, response.get_data(as_text=True)
    session = app.extensions["mscbatch.db"].new_session()
    assert session.get(Bag, ward.bag_id).status == "returned"  # QA assesses it; it is not put back into stock
    session.close()


def test_a_prescription_with_a_bag_still_on_the_ward_cannot_be_cancelled(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session, state="thawed")
    session.close()
    rx_id = _prescription_id(app, ward.patient_id)
    response = client_as("clinician").post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": "changed mind"})
    assert response.status_code == 409
    assert "thawed" in response.get_data(as_text=True)
    session = app.extensions["mscbatch.db"].new_session()
    assert session.get(Prescription, rx_id).status == "active"
    assert session.scalar(select(Allocation.active_bag_id).where(Allocation.bag_id == ward.bag_id)) == ward.bag_id
    session.close()
