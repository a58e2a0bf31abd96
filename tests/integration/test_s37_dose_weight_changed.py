"""A weight recorded after the prescription at which its bags give a dose outside it (review s37, a clinician's).

The bedside check answers STOP "WEIGHT CHANGED" for such a bag (custody.checks, weight_changed), but the dispatch sent
it to the ward, and the nurse's Thaw thawed it: a thawed bag can never be given again, so it was lost. Now the
dispatch keeps it in the unit and the thaw keeps it frozen, in the bedside check's own words, as they already do for
a course that can no longer give its dose (course_short): 409, nothing written. The receipt is still recorded (the
courier's bag is taken over, then returned). The prescription's page and its dose sheet, which still said "active",
"62.5 kg" and "give as prescribed", now say first what the patient's page says.

The prescription of the factory: 62.5 kg at 2 x10^6/kg (125 x10^6 cells, band +/- 10 %); at 75 kg the same bags give
1.67 x10^6/kg, below the band; at 60 kg, 2.08 x10^6/kg, inside it."""
from __future__ import annotations

import io
import re
from html import unescape
from typing import Any

from pypdf import PdfReader
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.core.identifiers import din_shown
from mscbatch.custody.checks import evaluate
from mscbatch.custody.models import CustodyEvent
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Prescription
from mscbatch.patients.queries import NO_LONGER_FITS
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.test_custody_support import Ward, ward_bag

DISPATCH = {"courier": "C", "shipper": "S", "temperature_logger_id": "T"}
BELOW = "1.67 x10^6/kg instead of 2 x10^6/kg"


def _weigh(app: Any, clinician: Any, ward: Ward, kg: str) -> None:
    """The clinician records today's weight on the patient's page, ticking "I have checked this weight"."""
    answer = clinician.post(f"/patients/{ward.patient_id}/weights", data={
        "weight_kg": kg, "measured_on": site_today().isoformat(), "weight_confirmed": "y"})
    assert answer.status_code == 302, answer.get_data(as_text=True)


def _written(app: Any) -> tuple[int, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return (session.scalar(select(func.count()).select_from(CustodyEvent)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def _bag(app: Any, ward: Ward) -> tuple[str, str]:
    """(status, DIN as the label prints it)."""
    with app.extensions["mscbatch.db"].new_session() as session:
        bag = session.get(Bag, ward.bag_id)
        return bag.status, din_shown(bag)


def _bedside_words(app: Any, ward: Ward) -> str:
    """The bedside check's WEIGHT CHANGED for the bag, without its instruction (reads only)."""
    with app.extensions["mscbatch.db"].new_session() as session:
        result = evaluate(session, ward.wristband, ward.token, app.config["LABEL_KEY"])
    changed = [finding.message for finding in result.failures if finding.code == "weight_changed"]
    assert len(changed) == 1, result.failures  # (a bag still in the unit is also not_on_ward)
    return changed[0].split(" Do not give it.")[0]


def _page_text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def _banner(html: str) -> str:
    found = re.search(r'<div[^>]*id="weight-change"[^>]*>(.*?)</div>', html, re.S)
    assert found is not None, html[:3000]
    return _page_text(found.group(1))


def test_the_dispatch_keeps_such_a_bag_in_the_unit_on_the_page_and_through_the_api(app, users, client_as):
    ward = ward_bag(app, state="allocated")
    technician = client_as("technician")
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    _weigh(app, client_as("clinician"), ward, "75")
    bedside = _bedside_words(app, ward)
    assert bedside.startswith("WEIGHT CHANGED since the prescription: prescribed for 62.5 kg") and BELOW in bedside
    status, din = _bag(app, ward)
    before = _written(app)

    page = technician.post("/ward/dispatch", data={"bag": ward.token, **DISPATCH})
    html = unescape(page.get_data(as_text=True))
    assert page.status_code == 409, html
    assert f"Bag {din} cannot leave the unit: {bedside} Keep it in storage and tell the prescriber" in html
    assert "Nothing was recorded." in html

    answer = app.test_client().post("/api/v1/custody/events", headers=headers,
                                    json={"kind": "dispatched", "bag": ward.token, **DISPATCH})
    assert answer.status_code == 409 and answer.mimetype == "application/problem+json", answer.get_json()
    assert answer.get_json()["detail"].startswith(f"Bag {din} cannot leave the unit: {bedside}")
    assert _bag(app, ward)[0] == status == "allocated" and _written(app) == before


def test_the_thaw_keeps_such_a_bag_frozen_on_the_page_and_through_the_api(app, users, client_as):
    ward = ward_bag(app, state="received")
    nurse = client_as("nurse")
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    _weigh(app, client_as("clinician"), ward, "75")
    bedside = _bedside_words(app, ward)
    din = _bag(app, ward)[1]
    before = _written(app)

    page = nurse.post("/ward/event", data={"bag": ward.token, "action": "thaw"})
    html = unescape(page.get_data(as_text=True))
    assert page.status_code == 409, html
    assert f"DO NOT THAW bag {din}: {bedside} Keep it frozen and call the prescriber" in html
    assert "return this bag to the cell therapy unit" in html and 'role="alert"' in html

    answer = app.test_client().post("/api/v1/custody/events", json={"kind": "thawed", "bag": ward.token},
                                    headers=headers)
    assert answer.status_code == 409 and answer.mimetype == "application/problem+json", answer.get_json()
    assert answer.get_json()["detail"].startswith(f"DO NOT THAW bag {din}: {bedside} Keep it frozen")
    assert _bag(app, ward)[0] == "received" and _written(app) == before


def test_a_bag_on_its_way_is_still_received_then_returned(app, users, client_as):
    """The courier's bag is taken over on the ward (refusing its receipt would leave it with nobody), then returned
    to the unit, where the prescriber can cancel the prescription."""
    ward = ward_bag(app, state="dispatched")
    _weigh(app, client_as("clinician"), ward, "75")
    nurse = client_as("nurse")
    assert nurse.post("/ward/event", data={"bag": ward.token, "action": "receive"}).status_code == 302
    assert _bag(app, ward)[0] == "received"
    returned = nurse.post("/ward/event", data={"bag": ward.token, "action": "return",
                                               "reason": "weight changed since the prescription"})
    assert returned.status_code == 302, returned.get_data(as_text=True)
    assert _bag(app, ward)[0] == "returned"


def test_a_newer_weight_inside_the_band_still_lets_the_bag_be_sent_and_thawed(app, users, client_as):
    ward = ward_bag(app, state="allocated")
    _weigh(app, client_as("clinician"), ward, "60")
    sent = client_as("technician").post("/ward/dispatch", data={"bag": ward.token, **DISPATCH})
    assert sent.status_code == 302, sent.get_data(as_text=True)
    nurse = client_as("nurse")
    assert nurse.post("/ward/event", data={"bag": ward.token, "action": "receive"}).status_code == 302
    assert nurse.post("/ward/event", data={"bag": ward.token, "action": "thaw"}).status_code == 302
    assert _bag(app, ward)[0] == "thawed"


def _prescription_id(app: Any, ward: Ward) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(Prescription.id).where(Prescription.patient_id == ward.patient_id))


def test_the_prescription_page_and_the_dose_sheet_say_what_the_patient_page_says(app, users, client_as):
    ward = ward_bag(app, state="allocated")
    clinician = client_as("clinician")
    rx = _prescription_id(app, ward)
    assert 'id="weight-change"' not in clinician.get(f"/patients/prescriptions/{rx}").get_data(as_text=True)
    _weigh(app, clinician, ward, "75")

    on_patient = _banner(clinician.get(f"/patients/{ward.patient_id}").get_data(as_text=True))
    assert on_patient.startswith(NO_LONGER_FITS) and "now weighs 75 kg" in on_patient and BELOW in on_patient
    assert "neither sent to the ward nor thawed" in on_patient

    html = clinician.get(f"/patients/prescriptions/{rx}").get_data(as_text=True)
    assert _banner(html) == on_patient
    # said at the top: before the prescription's facts (its status, its 62.5 kg)
    assert html.index('id="weight-change"') < html.index('class="facts"')

    pdf = clinician.get(f"/patients/prescriptions/{rx}/dose-sheet.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    sheet = re.sub(r"\s+", " ", " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages))
    assert on_patient in sheet, sheet[:1500]
    assert sheet.index(NO_LONGER_FITS) < sheet.index("Prescription and calculation")


def test_a_newer_weight_inside_the_band_puts_no_warning_on_the_prescription(app, users, client_as):
    ward = ward_bag(app, state="allocated")
    clinician = client_as("clinician")
    _weigh(app, clinician, ward, "60")
    rx = _prescription_id(app, ward)
    assert NO_LONGER_FITS not in unescape(clinician.get(f"/patients/prescriptions/{rx}").get_data(as_text=True))
    pdf = clinician.get(f"/patients/prescriptions/{rx}/dose-sheet.pdf").data
    assert "no longer fits" not in " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
