"""Cells are written one way everywhere a person reads them: "125 x10^6", as the bag label prints them (a nurse
comparing the label with the prescription must not convert "1.25 × 10^8" or read "125000000")."""
from __future__ import annotations

import re

from sqlalchemy import select

from mscbatch.lots.models import Lot
from mscbatch.patients.models import Prescription
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user


def _hidden(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input[^>]*?name="([^"]+)"[^>]*?type="hidden"[^>]*?value="([^"]*)"', page))


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split())


def test_the_patient_prescription_and_release_pages_write_cells_as_the_label(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_id = lot_with_bags(session, tech, donor(session, tech))[0].lot_id
    pid = patient(session, clin).id  # 62.5 kg at 2 x10^6/kg: 125 x10^6 cells from three 50 x10^6 bags
    session.close()
    client = client_as("clinician")
    page = client.get(f"/patients/{pid}/dose").get_data(as_text=True)
    assert client.post(f"/patients/{pid}/prescriptions", data={**_hidden(page), "password": PASSWORD}).status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    prescription_id = session.scalar(select(Prescription.id))
    harvest = session.get(Lot, lot_id).harvest_total_cells
    session.close()

    detail = _text(client.get(f"/patients/{pid}"))
    assert "125 x10^6 cells" in detail and "125.0 x10^6" not in detail
    bags = _text(client.get(f"/patients/prescriptions/{prescription_id}"))
    assert bags.count("50 x10^6") >= 2 and "50000000" not in bags, bags
    review = _text(client_as("qa").get(f"/release/lots/{lot_id}"))
    assert f"harvest {harvest // 10**6} x10^6 cells" in review and f"harvest {harvest} cells" not in review
