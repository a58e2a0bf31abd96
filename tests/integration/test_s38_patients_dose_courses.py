"""S38: user text printed as text on the dose sheet; repeat courses capped at the protocol's highest level; a course
delivered over its range flagged with the endotoxin actually infused; a course whose every bag was given reads
COMPLETED; the cohort plan shows the dose received; a dose from two donors is said."""
from __future__ import annotations

import io
import re
from html import unescape

from pypdf import PdfReader
from sqlalchemy import func, select

from mscbatch.custody import bedside, handover, infusions
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Patient, Prescription, WeightMeasurement
from tests.conftest import PASSWORD
from tests.integration.patient_factories import SLE, donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, token_of
from tests.integration.test_dose_calculation import _endotoxin_result


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _pdf_text(pdf: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


def _give(session, pid: int, bag_id: int, volume: str) -> None:  # type: ignore[no-untyped-def]
    tech, nurse = user(session, "technician"), user(session, "nurse")
    bag = session.get(Bag, bag_id)
    wristband = session.get(Patient, pid).wristband_id
    handover.dispatch(session, tech, bag.id, courier="C", shipper="S", temperature_logger_id="T")
    handover.receive(session, nurse, bag.id, scan=token_of(bag))
    handover.thaw(session, nurse, bag.id, scan=token_of(bag))
    check = bedside.bedside_check(session, nurse, wristband=wristband, bag_scan=token_of(bag), label_key=KEY)
    assert check.matches, check.failures
    bedside.confirm_second_person(session, nurse, check.check_id, username="nurse2", password=PASSWORD,
                                  checker_password=PASSWORD, label_key=KEY)
    infusion = infusions.start_infusion(session, nurse, bag.id, wristband=wristband, bag_scan=token_of(bag),
                                        label_key=KEY)
    infusions.end_infusion(session, nurse, infusion.id, volume_ml=volume,
                           reason="the whole bag was given, quickly (test)")


def _first_course_given_over(session):  # type: ignore[no-untyped-def]
    """62.5 kg at 2 x10^6/kg: 25 + 25 mL whole and 12.5 mL of a third bag prescribed (125 x10^6 cells); the third
    bag infused whole (25 mL): 150 x10^6 cells = 2.4 x10^6/kg given (+20 %). Endotoxin 0.2 EU/mL."""
    tech, clin = user(session, "technician"), user(session, "clinician")
    bags = lot_with_bags(session, tech, donor(session, tech), bags=9, cells=50_000_000)
    _endotoxin_result(session, tech, bags[0].lot_id, "0.2")
    pid = patient(session, clin).id
    rx = prescriptions.prescribe(session, clin, PASSWORD, pid)
    for draw in rx.calculation["draws"]:
        _give(session, pid, int(draw["bag_id"]), "25")
    return pid, rx.id


def test_s38_reason_markup_prints_as_text_on_the_dose_sheet(app, users, db_session, client_as):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=3, cells=50_000_000)
    pid = patient(db_session, clin).id
    rx_id = prescriptions.prescribe(db_session, clin, PASSWORD, pid).id
    db_session.commit()
    clinician = client_as("clinician")
    reason = "Fever <38.5 & chills; see <b>ward notes <font color=white>hidden</font>"
    done = clinician.post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": reason})
    assert done.status_code == 302, done.get_data(as_text=True)
    pdf = clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf")
    assert pdf.status_code == 200
    sheet = _pdf_text(pdf.data)
    assert "Fever <38.5 & chills; see <b>ward notes <font color=white>hidden</font>" in sheet, sheet


def test_s38_a_course_given_over_its_range_is_flagged_completed_with_the_endotoxin_infused(
        app, users, db_session, client_as):
    pid, rx_id = _first_course_given_over(db_session)
    db_session.commit()
    clinician = client_as("clinician")
    page = _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    sheet = _pdf_text(clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    for words in (page, sheet):
        assert "Delivered (infused) 150 x10^6 cells = 2.4 x10^6/kg - ABOVE the prescription's range (+20 %" in words
        assert "Endotoxin infused 15.0 EU = 0.24 EU/kg in 75 mL infused (limit 312.5 EU)" in words, words
        assert "COMPLETED: every bag given" in words
        assert "STOPPED" not in words
    assert "Close the completed course" in page and "Cancel the prescription / stop the course" not in page
    try:
        prescriptions.prescribe(db_session, user(db_session, "clinician"), PASSWORD, pid, repeat_course_reason="x")
    except Exception as error:  # noqa: BLE001 - the refusal's words are what is checked
        assert "is COMPLETED (every bag given) but not closed: close it on its page first" in str(error), error
    else:
        raise AssertionError("signed while a completed course stands")
    db_session.rollback()

    closed = clinician.post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": "course completed"},
                            follow_redirects=True)
    page = _text(closed.get_data(as_text=True))
    sheet = _pdf_text(clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    assert "Completed course closed: every bag of it was given" in page, page
    for words in (page, sheet):
        assert "This course is COMPLETED: every bag of it was given. Closed on" in words, words
        assert "STOPPED" not in words and "Course stopped" not in words


def test_s38_repeat_courses_stop_at_the_protocols_highest_level_and_the_cohort_shows_the_dose_received(
        app, users, db_session, client_as):
    pid, rx_id = _first_course_given_over(db_session)  # 2.4 x10^6/kg given
    clin = user(db_session, "clinician")
    prescriptions.cancel(db_session, clin, rx_id, "course completed", password=PASSWORD)
    db_session.commit()
    clinician = client_as("clinician")
    page = _text(clinician.get(f"/patients/{pid}/dose").get_data(as_text=True))
    # 2.4 + 2.0 = 4.4: the highest level 4 with its +10 % band, allowed; the figure is shown before signing
    assert ("Total with this dose already received 2.4 x10^6/kg + this dose 2 x10^6/kg = 4.4 x10^6/kg in all "
            "under SLE-UC; the protocol's highest dose level is 4 x10^6/kg (at most 4.4 x10^6/kg") in page, page
    second = prescriptions.prescribe(db_session, clin, PASSWORD, pid, repeat_course_reason="decided with the PI after the review")
    _give(db_session, pid, int(second.calculation["draws"][0]["bag_id"]), "25")  # 0.8 more: 3.2 given
    prescriptions.cancel(db_session, clin, second.id, "reaction", password=PASSWORD)
    db_session.commit()

    page = _text(clinician.get(f"/patients/{pid}/dose").get_data(as_text=True))
    assert "total dose too high: already received 3.2 x10^6/kg + this dose 2 x10^6/kg = 5.2 x10^6/kg" in page, page
    count = db_session.scalar(select(func.count(Prescription.id)).where(Prescription.patient_id == pid))
    stored = list(db_session.scalars(select(Bag.id).where(Bag.status == "stored").order_by(Bag.id)))[:3]
    weight_id = db_session.scalar(select(WeightMeasurement.id).where(WeightMeasurement.patient_id == pid))
    db_session.rollback()
    refused = clinician.post(f"/patients/{pid}/prescriptions", data={
        "level": "2000000", "bag_ids": ",".join(map(str, stored)), "weight_id": str(weight_id), "planned_on": "",
        "repeat_course_reason": "third course, decided with the PI after the review", "password": PASSWORD})
    assert refused.status_code in (409, 422), refused.status_code
    assert "5.2 x10^6/kg" in _text(refused.get_data(as_text=True))
    try:
        prescriptions.prescribe(db_session, clin, PASSWORD, pid, repeat_course_reason="third course, decided with the PI after the review")
    except Exception as error:  # noqa: BLE001 - the refusal's kind and words are what is checked
        assert getattr(error, "status", None) == 409 and "5.2 x10^6/kg" in str(error), error
        assert getattr(error, "field", None) == "dose_level_cells_per_kg"
    else:
        raise AssertionError("a third course above the protocol's highest level was signed")
    db_session.rollback()
    assert db_session.scalar(select(func.count(Prescription.id)).where(Prescription.patient_id == pid)) == count
    db_session.rollback()

    cohort = _text(clinician.get(f"/patients/cohorts/{SLE}").get_data(as_text=True))
    assert "received 3.2 x10^6/kg: ABOVE its level 2 x10^6/kg by 60 %" in cohort, cohort


def test_s38_a_dose_from_two_donors_is_said(app, users, db_session, client_as):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    first, second = donor(db_session, tech), donor(db_session, tech)
    lot_with_bags(db_session, tech, first, bags=2, cells=50_000_000, expires_in_days=200)
    lot_with_bags(db_session, tech, second, bags=2, cells=50_000_000, expires_in_days=300)
    codes = sorted([first.code, second.code])
    pid = patient(db_session, clin).id
    db_session.commit()
    clinician = client_as("clinician")
    note = f"This dose comes from 2 donors: {codes[0]}, {codes[1]}."
    # the codes are marked up (never broken at their hyphen): the words as read, without the space a tag leaves
    assert note in re.sub(r" ([,.])", r"\1", _text(clinician.get(f"/patients/{pid}/dose").get_data(as_text=True)))
    rx_id = prescriptions.prescribe(db_session, clin, PASSWORD, pid).id
    db_session.commit()
    assert note in _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert note in _pdf_text(clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)

