"""Review 5 (patients): a stopped course read as if all its bags had been given (the prescription page, the dose
sheet and the patient page said "Delivered 125 x10^6"), the stop said "released (back in stock)" of a bag returned
from the ward that QA must assess, and a dose sheet without a planned day printed the minute of signing as a
deadline."""
from __future__ import annotations

import io
import re
from datetime import timedelta
from html import unescape

from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.auth.models import User
from mscbatch.core.identifiers import din_shown
from mscbatch.custody import handover, infusions
from mscbatch.lots.models import Bag
from mscbatch.patients import withdrawal
from mscbatch.patients.models import Prescription
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag, token_of
from tests.integration.test_review4_patients_support import dry_run_body


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _pdf_text(pdf: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


def _first_bag_given_whole(db_session):  # type: ignore[no-untyped-def]
    """62.5 kg at 2 x10^6/kg: bags 1 and 2 whole (25 mL, 50 x10^6 each) and 12.5 mL of bag 3; bag 1 given whole."""
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    nurse = user(db_session, "nurse")
    infusion = infusions.start_infusion(db_session, nurse, ward.bag_id, wristband=ward.wristband, bag_scan=ward.token,
                                        label_key=KEY)
    infusions.end_infusion(db_session, nurse, infusion.id, volume_ml="25")
    rx_id = db_session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))
    return ward, rx_id


def test_a_stopped_course_says_which_bag_was_given_what_became_of_the_others_and_who_stopped_it(
        app, users, db_session, client_as):
    ward, rx_id = _first_bag_given_whole(db_session)
    tech, nurse = user(db_session, "technician"), user(db_session, "nurse")
    returned = ward.other_bag_ids[0]  # bag 2 went to the ward and came back unopened
    handover.dispatch(db_session, tech, returned, courier="C", shipper="S", temperature_logger_id="T")
    handover.receive(db_session, nurse, returned, scan=token_of(db_session.get(Bag, returned)))
    handover.return_bag(db_session, nurse, returned, reason="course to be stopped")
    dins = {bag_id: din_shown(db_session.get(Bag, bag_id)) for bag_id in [ward.bag_id, *ward.other_bag_ids]}
    db_session.rollback()

    clinician = client_as("clinician")
    stopped = clinician.post(f"/patients/prescriptions/{rx_id}/cancel",
                             data={"password": PASSWORD, "reason": "grade 3 reaction with bag 1"}, follow_redirects=True)
    page = _text(stopped.get_data(as_text=True))
    assert stopped.status_code == 200
    # the flash says what became of each bag, in plain singular and plural
    assert "bag(s)" not in page
    assert f"the 1 bag already given ({dins[ward.bag_id]}) stays on the patient's record" in page, page
    assert (f"{dins[returned]} returned from the ward: NOT back in stock, QA assesses it before any restocking"
            in page), page
    assert f"{dins[ward.other_bag_ids[1]]} back in stock" in page

    # the prescription page: per bag given or not and what happened; delivered = what was infused
    assert "GIVEN: 25 mL = 50 x10^6 cells" in page
    assert "Delivered (infused) 50 x10^6 cells = 0.8 x10^6/kg" in page, page
    assert "Prescribed 125 x10^6 cells" in page
    assert page.count("NOT GIVEN") == 2

    pdf = clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf")
    assert pdf.status_code == 200, pdf.get_data(as_text=True)[:3000]
    sheet = _pdf_text(pdf.data)
    assert "GIVEN: 25 mL = 50 x10^6 cells" in sheet, sheet
    assert "NOT GIVEN: back in stock" in sheet and "NOT GIVEN: returned from the ward" in sheet, sheet
    assert "Delivered (infused) 50 x10^6 cells = 0.8 x10^6/kg" in sheet, sheet
    assert "course STOPPED" in sheet and "grade 3 reaction with bag 1" in sheet, sheet
    stopper = db_session.scalar(select(Prescription).where(Prescription.id == rx_id)).cancelled_by_id
    name = db_session.get(User, stopper).full_name
    db_session.rollback()
    assert f"by {name}" in sheet and f"by {name}" in page
    # the sheet names them as their labels do, K included (a nurse reads them against the bag in her hand)
    assert f"Do not infuse 2 bags not given: {dins[ward.other_bag_ids[0]]}, {dins[ward.other_bag_ids[1]]}" in sheet

    patient_page = _text(client_as("nurse").get(f"/patients/{ward.patient_id}").get_data(as_text=True))
    row = patient_page[patient_page.index("Delivered (infused)"):]
    assert "125 x10^6 cells 50 x10^6 cells" in row, row[:400]


def test_a_dose_sheet_without_a_planned_day_sets_no_deadline(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="allocated")  # prescribed without a planned day
    rx_id = db_session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))
    db_session.rollback()
    clinician = client_as("clinician")
    sheet = _pdf_text(clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    assert "Planned infusion not planned: give as prescribed" in sheet, sheet
    page = _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert "Planned infusion not planned: give as prescribed" in page
    assert "Delivered (infused) nothing yet" in page


def test_a_withdrawal_says_what_became_of_each_bag(
        app, users, db_session, client_as):
    ward, rx_id = _first_bag_given_whole(db_session)
    tech, nurse = user(db_session, "technician"), user(db_session, "nurse")
    returned = ward.other_bag_ids[0]
    handover.dispatch(db_session, tech, returned, courier="C", shipper="S", temperature_logger_id="T")
    handover.receive(db_session, nurse, returned, scan=token_of(db_session.get(Bag, returned)))
    handover.return_bag(db_session, nurse, returned, reason="patient leaves the trial")
    dins = [din_shown(db_session.get(Bag, bag_id)) for bag_id in ward.other_bag_ids]
    db_session.rollback()
    clinician = client_as("clinician")
    signed = clinician.post(f"/patients/{ward.patient_id}/withdrawal", follow_redirects=True,
                            data={"reason": "consent withdrawn by the patient", "password": PASSWORD})
    page = _text(signed.get_data(as_text=True))
    assert "bag(s)" not in page and "bags in the unit are back in stock" not in page
    assert (f"Prescription {rx_id}: Course stopped: the 1 bag already given" in page
            and f"{dins[0]} returned from the ward: NOT back in stock, QA assesses it" in page
            and f"{dins[1]} back in stock" in page), page



def test_a_withdrawn_patient_is_refused_as_withdrawn_before_any_repeat_course_question(app, users, db_session):
    ward, _rx_id = _first_bag_given_whole(db_session)
    withdrawal.withdraw(db_session, user(db_session, "clinician"), PASSWORD, ward.patient_id,
                        reason="consent withdrawn by the patient")
    db_session.rollback()
    # cells were given, so a new course would need a repeat course's reason: the withdrawal is what refuses it
    api = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    refused = api.post(f"/api/v1/patients/{ward.patient_id}/prescriptions", headers=headers, json={
        "dose_level_cells_per_kg": "2000000", "bag_ids": [ward.other_bag_ids[1]], "weight_id": 1,
        "password": PASSWORD})
    assert refused.status_code == 409, refused.get_json()
    assert "withdrawn from the trial" in refused.get_json()["detail"]


def test_the_api_names_its_own_fields_and_the_dose_page_keeps_its_form(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="allocated")
    rx_id = db_session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))
    db_session.rollback()
    clinician = client_as("clinician")
    assert clinician.post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": "recalculate"}).status_code == 302
    api = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    url = f"/api/v1/patients/{ward.patient_id}"
    level = api.post(f"{url}/dose-calculation", headers=headers, json={"dose_level_cells_per_kg": "1E+999999999"})
    assert level.status_code == 422 and set(level.get_json()["errors"]) == {"dose_level_cells_per_kg"}, level.get_json()
    year = api.post(f"{url}/dose-calculation", headers=headers, json={"planned_at": "9999-06-01T10:00:00+00:00"})
    assert year.status_code == 422 and set(year.get_json()["errors"]) == {"planned_at"}, year.get_json()
    dry = dry_run_body(api, headers, ward.patient_id)
    wrong_level = api.post(f"{url}/prescriptions", headers=headers, json={**dry, "dose_level_cells_per_kg": "4000000"})
    assert wrong_level.status_code == 409, wrong_level.get_json()
    assert set(wrong_level.get_json()["errors"]) == {"dose_level_cells_per_kg"}, wrong_level.get_json()



def test_a_planned_day_in_the_past_is_said_on_the_dose_page_itself(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="allocated")
    db_session.rollback()
    clinician = client_as("clinician")
    yesterday = (site_today() - timedelta(days=1)).isoformat()
    page = clinician.get(f"/patients/{ward.patient_id}/dose", query_string={"planned_on": yesterday})
    body = _text(page.get_data(as_text=True))
    assert page.status_code == 422
    assert "Dose calculation:" in body and "Recalculate" in body, body[:500]
    assert f"Planned infusion date: {yesterday} is before today" in body
    assert 'aria-invalid="true" aria-describedby="settings-error"' in page.get_data(as_text=True)
    assert "Sign the prescription" not in body


def test_a_weight_in_exponent_notation_is_refused_naming_the_field(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="allocated")
    db_session.rollback()
    today = site_today().isoformat()
    web = client_as("clinician").post(f"/patients/{ward.patient_id}/weights",
                                      data={"weight_kg": "1e2", "measured_on": today, "weight_confirmed": "y"})
    # the API's words (api.plain_numbers), naming the field and the rule (s37: one rule for the page and the API)
    assert web.status_code == 422 and 'id="weight_kg-error">Weight: \'1e2\' is not a plain number; write the number ' \
        'plainly' in unescape(web.get_data(as_text=True))
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    for typed in ("1e2", "1E+2", "-62.5"):
        api = app.test_client().post(f"/api/v1/patients/{ward.patient_id}/weights", headers=headers,
                                     json={"weight_kg": typed, "measured_on": today, "weight_confirmed": True})
        assert api.status_code == 422 and "weight_kg" in api.get_json()["errors"], (typed, api.get_json())
    ok = app.test_client().post(f"/api/v1/patients/{ward.patient_id}/weights", headers=headers,
                                json={"weight_kg": "63,5".replace(",", "."), "measured_on": today})
    assert ok.status_code == 201, ok.get_json()


def test_the_dry_run_words_say_nothing_was_infused_and_one_per_kg_presentation(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="allocated")
    rx_id = db_session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))
    db_session.rollback()
    clinician = client_as("clinician")
    clinician.post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": "recalculate"})
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    dry = app.test_client().post(f"/api/v1/patients/{ward.patient_id}/dose-calculation", headers=headers, json={})
    words = dry.get_json()["already_infused"]["words"]
    assert words == "no cells infused to this patient under SLE-UC so far", words
    page = _text(clinician.get(f"/patients/{ward.patient_id}/dose").get_data(as_text=True))
    assert "= 2 x10^6/kg (0.00 % from target)" in page, page[page.find("Delivered"):][:200]


def test_the_endotoxin_load_is_written_with_the_limits_decimals(app, users, client_as):
    from tests.integration.test_review2_dose_prescription import _patient_with_stock

    pid = _patient_with_stock(app, endotoxin="0.2")  # 62.5 mL at 0.2 EU/mL: 12.5000 EU, limit 312.5 EU
    page = _text(client_as("clinician").get(f"/patients/{pid}/dose").get_data(as_text=True))
    assert "12.5 EU (limit 312.5 EU" in page and "12.500" not in page, page[page.find("Endotoxin"):][:200]
