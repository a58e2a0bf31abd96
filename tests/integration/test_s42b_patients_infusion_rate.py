"""S42b: the prescription page and the dose sheet give the infusion rate, per bag and for the course: the volume
to give over the protocol's infusion time (the one the endotoxin limit K x weight x time assumes and the infusion's
end is checked against), in mL/h rounded to 0.1."""
from __future__ import annotations

import io
import re
from decimal import Decimal
from html import unescape

from pypdf import PdfReader

from mscbatch.patients import prescriptions
from mscbatch.patients.infusion_rate import CourseRate, rate_ml_per_h
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_s38_patients_dose_courses import _give

COURSE = "62.5 mL over 1 h = 62.5 mL/h, rounded to 0.1 (protocol SLE-UC: infuse over 1 h; each bag at this rate)"
WHOLE_BAG = "25 mL over 24 min = 62.5 mL/h"
PARTIAL_BAG = "12.5 mL over 12 min = 62.5 mL/h"


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page)))


def _pdf_text(pdf: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


def _prescribed(session) -> tuple[int, int, list[int]]:  # type: ignore[no-untyped-def]
    """62.5 kg at 2 x10^6/kg from 50 x10^6-cell bags of 25 mL: 25 + 25 + 12.5 mL over SLE-UC's 1 h."""
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech), bags=3, cells=50_000_000)
    pid = patient(session, clin).id
    rx = prescriptions.prescribe(session, clin, PASSWORD, pid)
    assert rx.calculation["infusion_duration_h"] in ("1", 1)
    assert [Decimal(d["volume_ml"]) for d in rx.calculation["draws"]] == [25, 25, Decimal("12.5")]
    session.commit()
    return rx.id, pid, [int(d["bag_id"]) for d in rx.calculation["draws"]]


def test_s42b_the_page_and_the_dose_sheet_give_the_rate_per_bag_and_in_total(app, users, db_session, client_as):
    rx_id, _pid, _bags = _prescribed(db_session)
    clinician = client_as("clinician")
    page = clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True)
    shown = _text(page)
    assert f"Infusion rate {COURSE}" in shown, shown
    rates = [_text(cell).strip() for cell in re.findall(r'<td class="bag-rate">(.*?)</td>', page, re.S)]
    assert rates == [WHOLE_BAG, WHOLE_BAG, PARTIAL_BAG]

    sheet = _pdf_text(clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    assert COURSE in sheet, sheet
    # the bag table's "Rate, time" column, beside the volume to draw: each bag at the course's rate, over its share
    assert "Rate, time" in sheet
    assert sheet.count("62.5 mL/h 24 min") == 2 and sheet.count("62.5 mL/h 12 min") == 1, sheet


def test_s42b_a_stopped_course_gives_no_rate_for_the_bags_not_given(app, users, db_session, client_as):
    rx_id, pid, bags = _prescribed(db_session)
    _give(db_session, pid, bags[0], "25")
    db_session.commit()
    clinician = client_as("clinician")
    stopped = clinician.post(f"/patients/prescriptions/{rx_id}/cancel",
                             data={"reason": "grade 3 reaction", "password": PASSWORD})
    assert stopped.status_code == 302
    page = clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True)
    rates = [_text(cell).strip() for cell in re.findall(r'<td class="bag-rate">(.*?)</td>', page, re.S)]
    assert rates == [WHOLE_BAG, "not given", "not given"]
    sheet = _pdf_text(clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    assert sheet.count("62.5 mL/h 24 min") == 1 and "62.5 mL/h 12 min" not in sheet and COURSE in sheet
    assert sheet.count("not given") >= 2


def test_s42b_rate_rounding_and_a_longer_infusion():
    assert rate_ml_per_h(Decimal(100), Decimal(3)) == Decimal("33.3")
    assert rate_ml_per_h(Decimal("62.5"), Decimal(1)) == Decimal("62.5")
    assert rate_ml_per_h(Decimal("0.25"), Decimal(1)) == Decimal("0.3")  # half up
    course = CourseRate("SSc-BM", Decimal(3), Decimal(100))
    assert course.total_words() == ("100 mL over 3 h = 33.3 mL/h, rounded to 0.1 (protocol SSc-BM: infuse over 3 h; "
                                    "each bag at this rate)")
    assert course.bag_words(Decimal(40)) == "40 mL over 1 h 12 min = 33.3 mL/h"
    assert course.bag_rate(Decimal(40)) == ("33.3 mL/h", "1 h 12 min")
    # every bag at the course's rate, to the last digit: 50 mL of a 74.95 mL course over its share of the hour
    # came out 74.9 (a 28-digit quotient just under 74.95) under a course line saying 75.0
    partial = CourseRate("SLE-UC", Decimal(1), Decimal("74.95"))
    assert "= 75.0 mL/h" in partial.total_words()
    assert partial.bag_rate(Decimal(50))[0] == partial.bag_rate(Decimal("24.95"))[0] == "75.0 mL/h"
    assert CourseRate("SLE-UC", Decimal(1), Decimal("28.25")).bag_rate(Decimal(25))[0] == "28.3 mL/h"
    unknown = CourseRate("SLE-UC", None, Decimal(100))
    assert "no infusion time" in unknown.total_words() and "Ask the prescriber" in unknown.total_words()
