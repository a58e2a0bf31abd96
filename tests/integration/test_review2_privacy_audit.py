"""The audit viewer: QA (a reader of the patient pages) sees every value; the administrator sees every change of a
patient's record, who made it and when, with the patient's identity and clinical values masked, and the donor's
identity masked as on the donor page (technicians and QA only)."""
from __future__ import annotations

import html
import re
from datetime import date

import pytest

from mscbatch.patients.models import Patient
from tests.integration.test_custody_support import checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")
REDACTED = "[redacted]"


@pytest.fixture
def recorded(db_session):  # type: ignore[no-untyped-def]
    """A patient registered, weighed, prescribed and checked at the bedside with a bag of a new donor's lot."""
    ward = prescribed_bag(db_session, code="SLE-UC-077")
    checked_and_confirmed(db_session, ward)
    patient = db_session.get(Patient, ward.patient_id)
    made = {"patient_id": patient.id, "initials": patient.initials, "dob": patient.date_of_birth.isoformat(),
            "wristband": patient.wristband_id, "ward": patient.ward, "code": patient.code}
    db_session.rollback()  # end the read transaction: SQLite would otherwise keep the requests waiting
    return made


def _page(client, **filters: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get("/audit", query_string=filters)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def _values(text: str, column: str) -> list[str]:
    return re.findall(rf'"{column}":\s*"([^"]*)"', text)


def test_admin_sees_that_the_patient_changed_who_and_when_but_not_who_the_patient_is(client_as, recorded):
    text = _page(client_as("admin"), entity_type="patient")
    for column in ("initials", "date_of_birth", "wristband_id", "ward", "code"):
        assert _values(text, column) and set(_values(text, column)) == {REDACTED}, column
    for secret in (recorded["dob"], recorded["wristband"], recorded["code"]):
        assert secret not in text
    assert f"patient {recorded['patient_id']}" in text and ">clinician<" in text  # the record, who
    assert _values(text, "registered_at")[0] != REDACTED  # when
    assert "show as [redacted]" in text


def test_admin_sees_no_clinical_value_of_prescriptions_checks_or_custody(client_as, recorded):
    admin = client_as("admin")
    prescription = _page(admin, entity_type="prescription")
    assert set(_values(prescription, "weight_kg")) == {REDACTED} and set(_values(prescription, "patient_id")) == {REDACTED}
    assert _values(prescription, "prescribed_at")[0] != REDACTED
    check = _page(admin, entity_type="two_person_check")
    assert recorded["wristband"] not in check and set(_values(check, "wristband_scan")) == {REDACTED}
    custody = _page(admin, entity_type="custody_event")
    assert recorded["wristband"] not in custody and "bedside_verified" in custody
    assert recorded["dob"] not in _page(admin, entity_type="patient_weight") + _page(admin)


def test_admin_does_not_see_the_donors_identity(db_session, client_as):
    from tests.integration.test_donors import screened_donor

    donor_id = screened_donor(db_session, "adipose_at_don", initials="ZQX", date_of_birth=date(1979, 2, 3))
    db_session.rollback()
    text = _page(client_as("admin"), entity_type="donor", entity_id=str(donor_id))
    assert set(_values(text, "initials")) == {REDACTED} and set(_values(text, "date_of_birth")) == {REDACTED}
    assert "ZQX" not in text and "1979-02-03" not in text and ">technician<" in text
    shown = _page(client_as("qa"), entity_type="donor", entity_id=str(donor_id))
    assert "ZQX" in _values(shown, "initials") and "1979-02-03" in _values(shown, "date_of_birth")


def test_qa_sees_every_value(client_as, recorded):
    qa = client_as("qa")
    text = _page(qa, entity_type="patient")
    assert recorded["initials"] in _values(text, "initials") and recorded["dob"] in _values(text, "date_of_birth")
    assert recorded["wristband"] in _values(text, "wristband_id") and "show as [redacted]" not in text
    assert recorded["wristband"] in _page(qa, entity_type="two_person_check")
