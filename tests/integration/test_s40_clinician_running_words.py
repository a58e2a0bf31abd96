"""Session 40, a clinician's review: during a running infusion the prescription page said "Delivered (infused) 50
x10^6 cells ... (infusion running)", counting the running bag as fully given. It now says "Given or running: ...
(the running bag counted as prescribed until its end is recorded)", on the page, the dose sheet and the patient
page's list (the arithmetic stays: core.dosing.cells_given)."""
from __future__ import annotations

import io
import re
from html import unescape

from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.custody import infusions
from mscbatch.patients.models import Prescription
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

NOTE = "(the running bag counted as prescribed until its end is recorded)"


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _pdf_text(pdf: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


def test_a_running_infusion_reads_given_or_running_not_delivered(app, users, db_session, client_as):
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id, wristband=ward.wristband,
                             bag_scan=ward.token, label_key=KEY)
    rx_id = db_session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))
    db_session.rollback()

    clinician = client_as("clinician")
    page = _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert f"Given or running 50 x10^6 cells = 0.8 x10^6/kg {NOTE}" in page, page
    assert "Delivered (infused)" not in page, page
    sheet = _pdf_text(clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    assert "Given or running" in sheet and "counted as prescribed until its end is recorded" in sheet, sheet
    patient = _text(clinician.get(f"/patients/{ward.patient_id}").get_data(as_text=True))
    row = patient[patient.index("Delivered (infused)"):]
    assert f"50 x10^6 cells {NOTE}" in row[:600], row[:600]
