"""Review 3 (ward, labels): patient initials with a letter the label fonts cannot print (Ł, Ş, Ő) and patient codes
of 28-40 characters were accepted at registration, and the bag label of the patient's directed product then
refused them (409) with no way to correct them. They are now refused at entry, naming the field; the codes in use
(demo, trial numbers such as SSC-BM-0042 or SSC-BM-2024-0042) stay valid and their labels print."""
from __future__ import annotations

from datetime import date

import pytest

from mscbatch.donors.models import Donor
from mscbatch.patients import services as patients
from tests.conftest import api_token_for
from tests.integration.patient_factories import SSC, donor, lot_with_bags, user

FORM = {"protocol_id": SSC, "date_of_birth": "1970-01-01", "sex": "female", "ward": "Ward 3"}


@pytest.mark.parametrize(("code", "initials", "field", "words"), [
    ("SSC-BM-2024-PARIS-SAINT-LOUIS-0042", "AB", "code", "too long for the recipient box of the bag label"),
    ("SSC-BM-0042", "ŁK", "initials", "holds a letter the bag label cannot print"),
    ("SSC-BM-0043", "ŞO", "initials", "holds a letter the bag label cannot print"),
])
def test_what_the_label_cannot_print_is_refused_at_registration(app, users, client_as, code, initials, field,
                                                                  words):
    page = client_as("clinician").post("/patients/new", data={**FORM, "code": code, "initials": initials})
    assert page.status_code == 422 and words in page.get_data(as_text=True)
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    answer = app.test_client().post("/api/v1/patients", headers=headers, json={
        **FORM, "code": code, "initials": initials})
    assert answer.status_code == 422 and field in answer.get_json()["errors"], answer.get_json()


@pytest.mark.parametrize(("code", "initials"), [("SSC-BM-0042", "ÉØ"), ("SSC-BM-2024-0042", "J-P.M"),
                                                ("SSC-BM-007", "RT")])
def test_a_recipient_registered_gets_a_label(app, users, client_as, code, initials):
    session = app.extensions["mscbatch.db"].new_session()
    tech, clin = user(session, "technician"), user(session, "clinician")
    familial = donor(session, tech, familial_for=code)
    session.commit()
    patients.register_patient(session, clin, patients.PatientDetails(
        protocol_id=SSC, code=code, initials=initials, date_of_birth=date(1970, 1, 1), sex="female", ward="Ward 3",
        familial_donor_code=familial.code))
    lot_id = lot_with_bags(session, user(session, "technician"), session.get(Donor, familial.id), product="BM-MSC",
                           bags=1, labelled=False)[0].lot_id
    session.commit()
    session.close()
    printed = client_as("technician").post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"})
    assert printed.status_code == 200, printed.get_data(as_text=True)[-600:]
