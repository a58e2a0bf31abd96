"""Tablet walkthrough, session 33, recalls: the patients to notify showed a "Planned administration" time (the
minute the prescription was signed) for a prescription whose page says "Planned infusion: not planned"; a lot
number typed with a digit dropped was only "not found"."""
from __future__ import annotations

import io
import re

from pypdf import PdfReader

from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import ward_bag


def test_a_course_with_no_planned_day_is_not_planned_on_the_recall(app, users, client_as):
    ward = ward_bag(app, state="received")  # the bag left the unit for the patient: to notify
    with app.extensions["mscbatch.db"].new_session() as session:
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                             reason="late positive sterility culture", password=PASSWORD)
    qa = client_as("qa")
    page = qa.get("/recalls/1").get_data(as_text=True)
    cell = re.search(r'data-label="Planned administration">(.*?)</td>', page, re.S)
    assert cell is not None and cell.group(1).strip() == "not planned", cell and cell.group(1)
    report = qa.get("/recalls/1/report.pdf")
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(report.data)).pages)
    assert "not planned" in text


def test_a_mistyped_lot_number_is_told_how_lot_numbers_are_written(app, users, client_as):
    """The same walkthrough: "MSC-2026-003" (a digit dropped) got only "No lot 'MSC-2026-003'."."""
    answer = client_as("qa").post("/recalls/new", data={"scope": "lot", "target": "MSC-2026-003",
                                                        "password": PASSWORD, "reason": "late positive sterility"})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 422 and "No lot &#39;MSC-2026-003&#39;. Lot numbers are written like MSC-" in text
    well_formed = client_as("qa").post("/recalls/new", data={"scope": "lot", "target": "MSC-2026-0999",
                                                             "password": PASSWORD, "reason": "late positive"})
    assert "Lot numbers are written like" not in well_formed.get_data(as_text=True)  # written right: unknown
