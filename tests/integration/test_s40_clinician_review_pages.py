"""Session 40, a clinician's review of the demo (patients pages):

1. A bag of a RECALLED lot read "lot conditionally released (a test is pending)" on the prescription page and the
   dose sheet: the flag was copied at allocation and never updated. They now say the lot's CURRENT state, "LOT
   RECALLED (R-n)" in capitals, and "conditionally released" only while the lot still is; the patient page says,
   near the top, every recall in force that reached a bag given or sent to the patient.
2. The dose page headed the planned cells "Delivered" before anything was given: "These bags give". A running
   infusion counted as fully given said so: "Given or running ... (the running bag counted as prescribed until its
   end is recorded)".
3. The patient page's list said "active" where the prescription page said "COMPLETED: every bag given"; closing a
   completed course asked for a "Reason for cancelling or stopping".
4. The dose and prescription pages showed only the trial code: initials and date of birth beside it.
5. The weight field has inputmode="decimal"; its hint says pounds give 2.2 times the dose.

The demo (seeded once per test, ~5 s) holds the recall R-n of lot MSC-2026-0006 that reached SLE-UC-005 and 006."""
from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from mscbatch.core.identifiers import din_shown
from mscbatch.demo import seed_demo
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.demo import LATE_OOS_WRISTBANDS
from mscbatch.patients.models import Allocation, Patient, Prescription
from mscbatch.recall.demo_notices import late_oos_lot, late_oos_recall
from mscbatch.release.demo import DEMO_PASSWORD
from tests.conftest import PASSWORD, login


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'").replace("&quot;", '"')


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages))


@pytest.fixture
def demo(app):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        seed_demo(session, hash_profile="fast")
        session.rollback()
        lot, recall = late_oos_lot(session), late_oos_recall(session)
        assert lot is not None and recall is not None and lot.status == "recalled"
        patient = session.scalar(select(Patient).where(Patient.wristband_id == LATE_OOS_WRISTBANDS[0]))
        rx = session.scalar(select(Prescription).where(Prescription.patient_id == patient.id))
        row = session.scalar(select(Allocation).where(Allocation.prescription_id == rx.id))
        bag = session.get(Bag, row.bag_id)
        facts = dict(lot_number=lot.lot_number, recall_id=recall.id, patient_id=patient.id, code=patient.code,
                     initials=patient.initials, born=str(patient.date_of_birth), rx_id=rx.id, din=din_shown(bag),
                     conditional_at_allocation=row.conditional_release)
        session.rollback()  # the SQLite write lock: released before the client's requests
    finally:
        session.close()
    client = app.test_client()
    assert login(client, "clinician", DEMO_PASSWORD).status_code == 302
    return client, facts


def test_a_recalled_lot_reads_recalled_on_the_prescription_page_the_dose_sheet_and_the_patient_page(demo):
    client, f = demo
    assert f["conditional_at_allocation"], "the demo's bag was allocated while the lot was conditionally released"
    page = client.get(f"/patients/prescriptions/{f['rx_id']}")
    assert page.status_code == 200
    text = _text(page.get_data(as_text=True))
    recalled = f"LOT RECALLED (R-{f['recall_id']})"
    assert f"Bag {f['din']}: {recalled}: this bag was given to the patient: follow the patient up." in text, text
    assert "conditionally released" not in text, text
    assert recalled in text[text.index("Bags"):], "said beside the bag in the table too"

    sheet = client.get(f"/patients/prescriptions/{f['rx_id']}/dose-sheet.pdf")
    assert sheet.status_code == 200
    pdf = _pdf_text(sheet.get_data())
    assert recalled in pdf and "follow the patient up" in pdf, pdf
    assert "conditionally released" not in pdf and "(cond.)" not in pdf, pdf

    patient = _text(client.get(f"/patients/{f['patient_id']}").get_data(as_text=True))
    line = f"RECALL R-{f['recall_id']}: bag {f['din']} of lot {f['lot_number']}, infused "
    assert line in patient, patient
    assert patient.index(line) < patient.index("Weights"), "near the top, before the weights"
    assert "follow the patient up" in patient[patient.index(line):]


def test_a_lot_still_conditionally_released_says_so_and_a_released_one_says_nothing(app, demo):
    client, f = demo
    session = app.extensions["mscbatch.db"].new_session()
    try:  # the state now, not the flag copied at allocation: the demo's lot is recalled, set it back to test it
        lot = session.scalar(select(Lot).where(Lot.lot_number == f["lot_number"]))
        session.execute(Lot.__table__.update().where(Lot.id == lot.id).values(status="conditional_release"))
        session.commit()
        page = _text(client.get(f"/patients/prescriptions/{f['rx_id']}").get_data(as_text=True))
        assert "lot conditionally released (a test is pending)" in page and "RECALLED" not in page, page
        session.execute(Lot.__table__.update().where(Lot.id == lot.id).values(status="released"))
        session.commit()
        page = _text(client.get(f"/patients/prescriptions/{f['rx_id']}").get_data(as_text=True))
        assert "conditionally released" not in page and "RECALLED" not in page, page
    finally:
        session.close()


def test_the_prescription_page_shows_initials_and_birth_date_and_the_state_word_of_the_patient_page(demo):
    client, f = demo
    text = _text(client.get(f"/patients/prescriptions/{f['rx_id']}").get_data(as_text=True))
    assert f"Patient {f['code']} · initials {f['initials']} · born {f['born']}" in text, text
    assert "COMPLETED: every bag given" in text
    patient = _text(client.get(f"/patients/{f['patient_id']}").get_data(as_text=True))
    rx_row = patient[patient.index(f"Prescription {f['rx_id']}"):]
    assert "COMPLETED: every bag given" in rx_row[:400] and " active " not in rx_row[:400], rx_row[:400]
    # closing the completed course asks for a closing note, not a reason for cancelling
    page = client.get(f"/patients/prescriptions/{f['rx_id']}").get_data(as_text=True)
    form = page[page.index('id="h-stop"'):]
    assert "Closing note" in form and "Reason for cancelling" not in form, form[:1500]
    refused = client.post(f"/patients/prescriptions/{f['rx_id']}/cancel", data={"password": PASSWORD, "reason": ""})
    assert refused.status_code == 422
    assert "Write the closing note" in refused.get_data(as_text=True)


def test_the_dose_page_says_these_bags_give_and_shows_initials_and_birth_date(app, demo):
    client, _f = demo
    session = app.extensions["mscbatch.db"].new_session()
    try:  # a demo patient with a weight and no active prescription: the calculation with its bags
        patients = [(p.id, p.initials, str(p.date_of_birth)) for p in session.scalars(
            select(Patient).where(Patient.status == "enrolled").order_by(Patient.id))]
        session.rollback()
    finally:
        session.close()
    pages = {p: client.get(f"/patients/{p[0]}/dose").get_data(as_text=True) for p in patients}
    found = next(((p, html) for p, html in pages.items() if 'id="delivered"' in html), None)
    assert found is not None, "no demo patient's dose page calculates a dose"
    (patient_id, initials, born), html = found
    text = _text(html)
    assert f"initials {initials} · born {born}" in text, text
    assert "These bags give" in text and "Delivered" not in text, text
    # a level other than the cohort's is refused in the words the page counts the stage with, never "dosed"
    other = _text(client.get(f"/patients/{patient_id}/dose?level=4000000").get_data(as_text=True))
    refusal = other[other.index("Refused:"):]
    assert "patients prescribed" in refusal[:600], refusal[:600]
    assert " dosed" not in refusal, refusal[:600]


def test_the_weight_field_opens_a_number_keyboard_and_says_pounds_give_2_2_times_the_dose(demo):
    client, f = demo
    html = client.get(f"/patients/{f['patient_id']}").get_data(as_text=True)
    field = re.search(r'<input[^>]*name="weight_kg"[^>]*>', html).group(0)
    assert 'inputmode="decimal"' in field, field
    assert "would give 2.2 times the dose" in _text(html)
    assert "double the dose" not in html

