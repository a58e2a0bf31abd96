"""Review 3 (ward), patient safety: a familial (directed) SSc-BM donor names its intended recipient by trial
patient code and may be registered before that patient. The next SSc-BM patient registered WITHOUT a code was
given the next generated code, which could be the very code the donor names: that other patient was silently linked
to the donor, prescribed the relative's bags, and the bedside check said MATCHES.

Now a generated code skips every code a donor names, and a familial donor is linked only to a patient whose code the
clinician typed; the registration says whose cells the patient will receive (page flash, API)."""
from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from mscbatch.donors.services import DonorDetails, register_donor
from mscbatch.errors import Conflict
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Patient
from mscbatch.patients.services import PatientDetails, register_patient
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import SSC, donor, lot_with_bags, patient, user


def test_a_generated_patient_code_never_takes_a_code_a_familial_donor_names(app, users, db_session):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    # the unit registers Mr X's brother as his familial donor, under Mr X's trial number, before Mr X is registered
    accepted = register_donor(db_session, tech, DonorDetails(
        tissue_source="bone_marrow", rule_set_id="marrow_ssc_bm", donor_type="familial", relationship="sibling",
        recipient_code="SSC-BM-001"))
    assert accepted.recipient_code == "SSC-BM-001"
    brother = donor(db_session, tech, familial_for="SSC-BM-001")  # (approved, as QA would)
    lot_with_bags(db_session, tech, brother, product="BM-MSC", bags=4)
    # another clinician registers Ms Y, a different SSc-BM patient, leaving the code to be generated
    ms_y = patient(db_session, clin, protocol_id=SSC)
    assert ms_y.code == "SSC-BM-002" and ms_y.familial_donor_id is None
    # the relative's bags are not offered to Ms Y
    with pytest.raises(Conflict) as refused:
        prescriptions.prescribe(db_session, clin, PASSWORD, ms_y.id)
    assert "for use by another intended recipient only" in str(refused.value), refused.value
    # Mr X, registered under the code typed, is the donor's recipient
    mr_x = patient(db_session, clin, protocol_id=SSC, code="SSC-BM-001")
    assert mr_x.code == "SSC-BM-001" and mr_x.familial_donor_id in (accepted.id, brother.id)


def test_a_familial_donor_is_never_linked_by_a_generated_code(app, users, db_session, client_as):
    tech = user(db_session, "technician")
    brother = donor(db_session, tech, familial_for="SSC-BM-001")
    code = brother.code
    db_session.commit()
    clinician = client_as("clinician")
    form = {"protocol_id": SSC, "initials": "RT", "date_of_birth": "1972-03-02", "sex": "male", "ward": "W4",
            "familial_donor_code": code}
    refused = clinician.post("/patients/new", data=form)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "type SSC-BM-001 as the trial patient code" in html
    assert db_session.scalar(select(Patient.id)) is None
    db_session.rollback()

    linked = clinician.post("/patients/new", data={**form, "code": "SSC-BM-001"})
    assert linked.status_code == 302
    page = clinician.get(linked.headers["Location"]).get_data(as_text=True)
    assert f"Familial donor {code} (sibling) names SSC-BM-001: this patient will receive ONLY this donor" in page

    # the API says it too
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    created = app.test_client().post("/api/v1/patients", headers=headers, json={
        "protocol_id": SSC, "initials": "AB", "date_of_birth": "1970-01-01", "sex": "female", "ward": "W4"})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["code"] == "SSC-BM-002" and created.get_json()["familial_donor_code"] is None
    listed = {p["code"]: p for p in app.test_client().get("/api/v1/patients", headers=headers).get_json()["items"]}
    assert listed["SSC-BM-001"]["familial_donor_code"] == code


def test_registration_without_a_typed_code_works_as_before_when_no_donor_names_one(app, users, db_session):
    clin = user(db_session, "clinician")
    first = register_patient(db_session, clin, PatientDetails(
        protocol_id=SSC, initials="AB", date_of_birth=date(1970, 1, 1), sex="female", ward="W"))
    assert first.code == "SSC-BM-001" and first.familial_donor_id is None


def test_the_patient_list_reads_every_directed_donor_in_one_query(app, users, db_session):
    """The API list said each patient's directed donor with one query per patient; the page and the API now share
    queries.directed_donor_of (directed protocol, then familial donor), batched for a list."""
    from sqlalchemy import event

    from mscbatch.patients.queries import directed_donor_of

    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    donors = {code: donor(db_session, tech, familial_for=code).code for code in ("SSC-BM-001", "SSC-BM-003")}
    for code in ("SSC-BM-001", "SSC-BM-002", "SSC-BM-003"):
        patient(db_session, clin, protocol_id=SSC, code=code)
    patient(db_session, clin)  # SLE/UC: not directed
    db_session.commit()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    engine = app.extensions["mscbatch.db"].engine
    donor_reads: list[str] = []

    def note(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if re.search(r"FROM donor\b(?!_)", statement):
            donor_reads.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        listed = app.test_client().get("/api/v1/patients", headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert listed.status_code == 200
    codes = {p["code"]: p["familial_donor_code"] for p in listed.get_json()["items"]}
    assert len(codes) == 4 and len(donor_reads) == 1, donor_reads
    for row in db_session.scalars(select(Patient)):
        said = directed_donor_of(db_session, row)
        assert codes[row.code] == (said.code if said is not None else None)
        assert codes[row.code] == donors.get(row.code)
