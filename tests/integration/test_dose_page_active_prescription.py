"""The dose page of a patient whose prescription is still active says so before anything is filled in, and offers
no signature: signing was refused only after the clinician had typed a repeat-course reason and their password
("already has an active prescription: cancel it first")."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.patients.models import Patient, Prescription
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag


def test_the_dose_page_of_a_patient_with_an_active_prescription_offers_no_signature(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session)
        patient_id = session.scalar(select(Patient.id).where(Patient.wristband_id == ward.wristband))
        prescription_id = session.scalar(select(Prescription.id).where(Prescription.patient_id == patient_id,
                                                                        Prescription.status == "active"))
        session.commit()
    finally:
        session.close()
    page = client_as("clinician").get(f"/patients/{patient_id}/dose").get_data(as_text=True)
    banner = page[page.index('id="active-prescription"'):page.index("</div>", page.index('id="active-prescription"'))]
    assert f"Prescription {prescription_id} of" in banner and "still active" in banner
    assert f'href="/patients/prescriptions/{prescription_id}"' in banner
    assert 'class="sign-form"' not in page and "Sign the prescription" not in page


def test_the_dose_page_without_an_active_prescription_offers_the_signature(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    try:
        from mscbatch.patients import prescriptions

        ward = prescribed_bag(session, state="allocated")
        patient_id = session.scalar(select(Patient.id).where(Patient.wristband_id == ward.wristband))
        prescription_id = session.scalar(select(Prescription.id).where(Prescription.patient_id == patient_id))
        prescriptions.cancel(session, user(session, "clinician"), prescription_id, "dose to be recalculated", password=PASSWORD)
        session.commit()
    finally:
        session.close()
    page = client_as("clinician").get(f"/patients/{patient_id}/dose").get_data(as_text=True)
    assert 'id="active-prescription"' not in page
