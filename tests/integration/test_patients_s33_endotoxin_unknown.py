"""A dose with a bag whose lot has no endotoxin result: its load is unknown, but the bags with a result carry at
least their sum (review s33, item 5).

Defects fixed: the dose page and the dose sheet said only "no result on the bags", hiding the known part the
signature was judged on; and a newer, lower weight never judged that known part again (core.dosing
dose_at_new_weight skips an unknown load), so the patient page said the dose still held and the bedside check let
the bags be given above K x weight x time at the new weight."""
from __future__ import annotations

import re
from html import unescape

from mscbatch.core.identifiers import din_shown
from mscbatch.patients import prescriptions, services
from mscbatch.patients.inventory import calculate
from mscbatch.patients.queries import weight_since_prescription
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_dose_calculation import _endotoxin_result
from tests.integration.test_review5_patients_course import _pdf_text


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _mixed_dose(session):  # type: ignore[no-untyped-def]
    """62.5 kg at 2 x10^6/kg = 125 x10^6: bag A (100 x10^6 in 25 mL, 11.9 EU/mL: 297.5 EU, below the limit of
    5 x 62.5 x 1 = 312.5 EU) and bag B (25 x10^6 in 25 mL, its lot without an endotoxin result), both whole."""
    clin, tech = user(session, "clinician"), user(session, "technician")
    [with_result] = lot_with_bags(session, tech, donor(session, tech), bags=1, cells=100_000_000)
    [without] = lot_with_bags(session, tech, donor(session, tech), bags=1, cells=25_000_000)
    _endotoxin_result(session, tech, with_result.lot_id, "11.9")
    p = patient(session, clin)
    return clin, p, with_result, without


def _calculated(session, patient_id: int):  # type: ignore[no-untyped-def]
    """The dose calculation of the patient, and its allocation (which must exist)."""
    result = calculate(session, patient_id)
    assert result.allocation is not None, result.refusal
    return result, result.allocation


def test_the_dose_page_and_sheet_show_the_known_endotoxin_beside_a_bag_without_a_result(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    clin, p, with_result, without = _mixed_dose(session)
    result, a = _calculated(session, p.id)
    assert {d.din for d in a.draws} == {with_result.din, without.din} and not any(d.partial for d in a.draws)
    assert a.endotoxin_eu is None  # unknown as a whole
    patient_id, din_b = p.id, din_shown(without)  # as its label shows it, K included
    session.rollback()
    page = _text(client_as("clinician").get(f"/patients/{patient_id}/dose").get_data(as_text=True))
    assert f"no result for bag {din_b}: at least 297.5 EU from the other bag; limit 312.5" in page, page

    rx = prescriptions.prescribe(session, clin, PASSWORD, patient_id, level_cells_per_kg=a.dose_level_cells_per_kg,
                                 bag_ids=[int(d.bag_id) for d in a.draws], weight_id=result.weight.id)
    rx_id = rx.id
    session.rollback()
    sheet = _pdf_text(client_as("clinician").get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    assert f"no result for bag {din_b}: at least 297.5 EU from the other bag" in sheet, sheet
    session.close()


def test_a_lower_weight_judges_the_known_endotoxin_again(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    clin, p, with_result, without = _mixed_dose(session)
    result, a = _calculated(session, p.id)
    prescriptions.prescribe(session, clin, PASSWORD, p.id, level_cells_per_kg=a.dose_level_cells_per_kg,
                            bag_ids=[int(d.bag_id) for d in a.draws], weight_id=result.weight.id)
    # 57 kg: 125 x10^6 is 2.19 x10^6/kg (inside the band), 5.5 g DMSO is 0.096 g/kg, but the limit is now
    # 5 x 57 x 1 = 285 EU, below the 297.5 EU bag A carries by itself
    services.record_weight(session, clin, p.id, weight_kg="57", measured_on=site_today())
    change = weight_since_prescription(session, with_result.id)
    assert change is not None
    assert change.problems == (
        f"endotoxin would be at least 297.5 EU (bag {din_shown(without)} without an endotoxin result not counted), above "
        "the limit of 285.00 EU for this weight",), change.problems
    patient_id = p.id
    session.rollback()
    page = _text(client_as("clinician").get(f"/patients/{patient_id}").get_data(as_text=True))
    assert "The active prescription no longer fits the patient's weight." in page, page
    assert "endotoxin would be at least 297.5 EU" in page
    # at a weight whose limit still covers it (60 kg: 300 EU), the dose holds
    services.record_weight(session, clin, patient_id, weight_kg="60", measured_on=site_today())
    assert weight_since_prescription(session, with_result.id).problems == ()
    session.close()
