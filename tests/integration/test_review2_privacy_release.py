"""A late OOS's patients to notify: named on the release review page to QA and clinicians (readers of the patient
pages); technicians and administrators see how many patients received the lot, not who; the certificate of
analysis names no patient, whoever prints it."""
from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from mscbatch.patients.models import Patient
from tests.integration.test_bedside_late_news import _conditionally_released, _sterility
from tests.integration.test_custody_support import prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


@pytest.fixture
def late_oos(db_session):  # type: ignore[no-untyped-def]
    """A conditionally released lot whose sterility then fails, one bag given to a patient by a signed
    prescription: the late OOS lists that patient."""
    ward = prescribed_bag(db_session, code="SLE-UC-042")
    _conditionally_released(db_session, ward)
    _sterility(db_session, ward.lot_id, "positive")
    patient = db_session.get(Patient, ward.patient_id)
    made = {"lot_id": ward.lot_id, "code": patient.code, "ward": patient.ward}
    db_session.rollback()  # end the read transaction: SQLite would otherwise keep the requests waiting
    return made


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def _notify_line(text: str) -> str:
    found = re.search(r"Patients to notify:[^.]*\.?", text)
    assert found, "the late OOS says nothing of the patients to notify"
    return found.group(0)


@pytest.mark.parametrize("role", ["qa", "clinician"])
def test_patient_readers_see_who_to_notify_on_the_review_page(client_as, late_oos, role):
    page = client_as(role).get(f"/release/lots/{late_oos['lot_id']}")
    assert page.status_code == 200
    assert late_oos["code"] in _notify_line(_text(page))


@pytest.mark.parametrize("role", ["technician", "admin"])
def test_technician_and_admin_see_how_many_patients_not_who(client_as, late_oos, role):
    client = client_as(role)
    assert client.get("/patients").status_code == 403  # the rule the page follows
    page = client.get(f"/release/lots/{late_oos['lot_id']}")
    assert page.status_code == 200
    text = _text(page)
    assert "1 patient received the lot" in _notify_line(text)
    assert late_oos["code"] not in text and late_oos["ward"] not in text


@pytest.mark.parametrize("role", ["qa", "clinician", "technician", "admin"])
def test_the_certificate_counts_the_patients_and_names_none(client_as, late_oos, role):
    response = client_as(role).get(f"/release/lots/{late_oos['lot_id']}/certificate.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    text = re.sub(r"\s+", " ", text)
    assert "Patients to notify: 1" in text
    assert late_oos["code"] not in text and late_oos["ward"] not in text
