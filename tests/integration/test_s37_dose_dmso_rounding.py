"""The DMSO per kg of a dose is rounded UP to 0.0001 g/kg (review s37, a clinician's): it was rounded down, so 5.5 g
for 51.5 kg (0.106796... g/kg) was shown 0.1067 g/kg, understating the exposure. Now 0.1068, as the endotoxin load is
rounded up; the one exception stays: an allowed dose is strictly below the limit and is never written AT it (0.99996
g/kg reads 0.9999, test_dose_rules_review7). The rounded figure is for the eye: the limit is judged on the exact
grams and weight (a dose a hair below the limit is allowed whatever its shown figure)."""
from __future__ import annotations

import io
import re
from decimal import Decimal
from html import unescape

from pypdf import PdfReader

from mscbatch.core import dosing
from tests.conftest import api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_review4_patients_support import dry_run_body

LIMIT = Decimal(1)


def _patient(app, *, weight: str, cells: int, volume_ml: str) -> int:  # type: ignore[no-untyped-def]
    """One released bag of `volume_ml` at 10 % DMSO (x 1.10 g/mL) holding `cells`, and a patient weighed yesterday."""
    session = app.extensions["mscbatch.db"].new_session()
    tech = user(session, "technician")
    lot_with_bags(session, tech, donor(session, tech), cells=cells, volume_ml=volume_ml, bags=1)
    pid = patient(session, user(session, "clinician"), weight=weight).id
    session.commit()
    session.close()
    return pid


def test_the_dmso_per_kg_is_shown_rounded_up_on_the_api_the_page_and_the_dose_sheet(app, users, client_as):
    # 51.5 kg at 2 x10^6/kg = 103 x10^6 cells: one whole bag of 50 mL at 10 % DMSO = 5.5 g = 0.106796... g/kg
    pid = _patient(app, weight="51.5", cells=103_000_000, volume_ml="50")
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    api = app.test_client()
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["allowed"], dry
    assert dry["calculation"]["dmso_g_per_kg"] == "0.1068", dry["calculation"]["dmso_g_per_kg"]

    clinician = client_as("clinician")
    page = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", clinician.get(f"/patients/{pid}/dose")
                                                .get_data(as_text=True))))
    assert "5.50 g = 0.1068 g/kg (limit 1 g/kg/day)" in page, page[page.find("DMSO"):][:120]

    signed = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json=dry_run_body(api, headers, pid))
    assert signed.status_code == 201, signed.get_json()
    assert signed.get_json()["dmso_g_per_kg"] == "0.1068"  # as stored with the prescription
    pdf = clinician.get(f"/patients/prescriptions/{signed.get_json()['id']}/dose-sheet.pdf").data
    sheet = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))
    assert "5.50 g = 0.1068 g/kg (limit 1 g/kg/day)" in sheet, sheet[sheet.find("DMSO"):][:120]


def test_rounded_up_except_onto_the_limit_an_allowed_dose_is_below() -> None:
    dmso_per_kg_shown, dmso_window_words = dosing.dmso_per_kg_shown, dosing.dmso_window_words
    assert dmso_per_kg_shown(Decimal("5.5"), Decimal("51.5"), LIMIT) == Decimal("0.1068")  # 0.106796...
    assert dmso_per_kg_shown(Decimal("2.75"), Decimal("62.5"), LIMIT) == Decimal("0.0440")  # exact: as it is
    assert dmso_per_kg_shown(Decimal("99.9856"), Decimal("99.99"), LIMIT) == Decimal("0.9999")  # 0.99996: not 1.0000
    assert dmso_per_kg_shown(Decimal("99.99"), Decimal("99.99"), LIMIT) == Decimal("1.0000")  # at it: said at it
    # the line with the DMSO already given in the 24 hours before, to 0.001 g/kg, by the same rule
    assert dmso_window_words(Decimal("2.75"), Decimal("1.10"), Decimal("62.5"), LIMIT) == (
        "2.75 g + 1.10 g already given in the last 24 hours = 0.062 g/kg (limit 1 g/kg/day)")  # 0.0616
    assert dmso_window_words(Decimal(55), Decimal("7.49"), Decimal("62.5"), LIMIT).endswith(
        "= 0.999 g/kg (limit 1 g/kg/day)")  # 0.99984, allowed: not 1.000


def test_the_limit_is_judged_on_the_exact_value_not_the_figure_shown(app, users):
    """0.99996 g/kg is shown 0.9999 and allowed; 1 g/kg exactly is refused: the rounding decides nothing."""
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    below = _patient(app, weight="99.99", cells=199_980_000, volume_ml="908.96")
    allowed = app.test_client().post(f"/api/v1/patients/{below}/dose-calculation", headers=headers, json={})
    assert allowed.get_json()["allowed"], allowed.get_json()
    at = _patient(app, weight="55", cells=110_000_000, volume_ml="500")  # 55 g for 55 kg
    refused = app.test_client().post(f"/api/v1/patients/{at}/dose-calculation", headers=headers, json={}).get_json()
    assert not refused["allowed"] and refused["refusal_code"] == "dmso_limit", refused
