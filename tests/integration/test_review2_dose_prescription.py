"""Safety review 2 of the dose calculation and the prescription: a planned infusion day in the past was accepted
(the bags judged in date and the weight recent on a day already gone), and the endotoxin limit K x weight x time
was shown without the infusion time it assumes (1 h), on the dose page and on the ward's dose sheet."""
from __future__ import annotations

import io
from datetime import datetime, time, timedelta

from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.patients.models import Prescription
from mscbatch.site import site_config, site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_dose_calculation import _endotoxin_result
from tests.integration.test_review4_patients_support import dry_run_body

PAST = "is before today"
LIMIT = "limit 312.5 EU = K x weight x 1 h infusion = 5 EU/kg/h x 62.5 kg x 1 h"  # K 5 EU/kg/h, 62.5 kg
CAUTION = "The endotoxin limit assumes a 1 h infusion: infused faster, the limit is lower in proportion."


def _patient_with_stock(app, endotoxin: str | None = None) -> int:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    tech = user(session, "technician")
    bags = lot_with_bags(session, tech, donor(session, tech))
    if endotoxin is not None:
        _endotoxin_result(session, tech, bags[0].lot_id, endotoxin)
    pid = patient(session, user(session, "clinician")).id
    session.close()
    return pid


def _prescriptions_of(app, pid: int) -> list[Prescription]:  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    rows = list(session.scalars(select(Prescription).where(Prescription.patient_id == pid)))
    session.close()
    return rows


def test_an_infusion_planned_before_today_is_refused_in_the_dry_run_and_at_signing(app, users, client_as):
    pid = _patient_with_stock(app)
    yesterday = site_today() - timedelta(days=1)
    tz = site_config().tz
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    api = app.test_client()
    planned = datetime.combine(yesterday, time(10, 0), tz).isoformat()
    dry_run = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={"planned_at": planned})
    assert dry_run.status_code == 422, dry_run.get_json()
    assert PAST in dry_run.get_json()["errors"]["planned_at"][0]
    today_body = dry_run_body(api, headers, pid)  # the dry run for today, then signed for yesterday
    signed = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers,
                      json={**today_body, "planned_at": planned})
    assert signed.status_code == 422 and "planned_at" in signed.get_json()["errors"], signed.get_json()

    clinician = client_as("clinician")
    page = clinician.get(f"/patients/{pid}/dose", query_string={"planned_on": yesterday.isoformat()})
    assert page.status_code == 422 and PAST in page.get_data(as_text=True)
    posted = clinician.post(f"/patients/{pid}/prescriptions", data={
        "level": "2000000", "bag_ids": "1", "weight_id": str(today_body["weight_id"]),
        "planned_on": yesterday.isoformat(), "password": PASSWORD})
    assert posted.status_code == 422 and PAST in posted.get_data(as_text=True)
    assert _prescriptions_of(app, pid) == []

    # the site's day is what counts: just after its midnight is today, not the past
    early_today = datetime.combine(site_today(), time(0, 1), tz).isoformat()
    today = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={"planned_at": early_today})
    assert today.status_code == 200 and today.get_json()["allowed"], today.get_json()


def test_the_endotoxin_limit_shows_the_infusion_time_it_assumes_on_the_dose_page_and_the_dose_sheet(
        app, users, client_as):
    pid = _patient_with_stock(app, endotoxin="0.2")
    clinician = client_as("clinician")
    page = clinician.get(f"/patients/{pid}/dose").get_data(as_text=True)
    assert f"12.5 EU ({LIMIT})" in page and CAUTION in page, page[page.find('id="endotoxin"'):][:600]
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    signed = app.test_client().post(f"/api/v1/patients/{pid}/prescriptions", headers=headers,
                                    json=dry_run_body(app.test_client(), headers, pid))
    assert signed.status_code == 201, signed.get_json()
    rx = signed.get_json()["id"]
    detail = clinician.get(f"/patients/prescriptions/{rx}").get_data(as_text=True)
    assert LIMIT in detail and CAUTION in detail
    pdf = clinician.get(f"/patients/prescriptions/{rx}/dose-sheet.pdf")
    text = " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages).split())
    assert LIMIT in text and CAUTION in text, text
