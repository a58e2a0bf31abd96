"""Code review s38 of the patients' and donors' changes, on SQLite and PostgreSQL.

1. "Completed course" was judged three ways: closing a course whose last bag was still running flashed "Completed
   course closed". One judgement now (course.course_completed): every bag given AND its infusion ended.
2. Reads that grew with the rows: the donor list evaluated each screening donor by itself, the cohort plan read
   each patient's dose by itself, the donor page read the late news of each result by itself. The statements sent
   no longer grow with the number of rows.
3. late_news_of loaded every approval of the donor to test a condition on the result: the same answers now, the
   result's value tested once, then the first approval dated at or before it.
"""
from __future__ import annotations

import io
import re
from html import unescape
from typing import Any

from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.custody import bedside, handover, infusions
from mscbatch.donors import decisions
from mscbatch.donors import services as donor_services
from mscbatch.donors.models import APPROVED, ScreeningResult
from mscbatch.donors.queries import evaluate_donor, list_donors, status_notes
from mscbatch.lots.models import Bag
from mscbatch.patients import cohorts, prescriptions
from mscbatch.patients.inventory import already_infused
from mscbatch.patients.models import Patient, Prescription
from mscbatch.patients.queries import protocols
from tests.conftest import PASSWORD
from tests.integration.patient_factories import SLE, donor, lot_with_bags, patient, user
from tests.integration.statements import statements_sent
from tests.integration.test_custody_support import KEY, token_of
from tests.integration.test_donors import TODAY, approved_donor, screened_donor


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _pdf_text(pdf: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


def _start(session: Any, pid: int, bag_id: int) -> int:
    """Dispatch, receive, thaw, check at the bedside and start the bag's infusion: its id (running)."""
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
    return int(infusions.start_infusion(session, nurse, bag.id, wristband=wristband, bag_scan=token_of(bag),
                                        label_key=KEY).id)


def _end(session: Any, infusion_id: int, volume: str = "25") -> None:
    infusions.end_infusion(session, user(session, "nurse"), infusion_id, volume_ml=volume,
                           reason="given over a shorter time than planned, as the ward noted (test)")


# ---- 1. one judgement of a completed course ---------------------------------------------------------------------

def test_s38_a_course_whose_last_bag_still_runs_is_not_completed_until_its_end(app, users, db_session, client_as):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=4, cells=50_000_000)
    pid = patient(db_session, clin).id
    rx = prescriptions.prescribe(db_session, clin, PASSWORD, pid)
    rx_id, draws = rx.id, [int(d["bag_id"]) for d in rx.calculation["draws"]]
    assert len(draws) > 1
    for bag_id in draws[:-1]:
        _end(db_session, _start(db_session, pid, bag_id), "25")
    last = _start(db_session, pid, draws[-1])  # every bag given, the last one still running
    db_session.commit()
    assert not prescriptions._completed(db_session, db_session.get(Prescription, rx_id))
    db_session.rollback()

    clinician = client_as("clinician")
    page = clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True)
    sheet = _pdf_text(clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    assert 'id="course-completed"' not in page and "Close the completed course" not in page, _text(page)
    for words in (_text(page), sheet):
        assert "COMPLETED" not in words, words
        assert "GIVEN: infusion running" in words, words

    # closed while the last bag runs: a stop, said as such, with the running infusion named
    closed = clinician.post(f"/patients/prescriptions/{rx_id}/cancel", data={"password": PASSWORD, "reason": "course over"},
                            follow_redirects=True)
    assert closed.status_code == 200
    said = _text(closed.get_data(as_text=True))
    assert "Completed course closed" not in said and "COMPLETED" not in said, said
    assert "Course stopped: the" in said and "Infusion still running:" in said, said

    _end(db_session, last, "25")  # its end recorded: now every bag was given
    db_session.commit()
    assert prescriptions._completed(db_session, db_session.get(Prescription, rx_id))
    db_session.rollback()
    page = clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True)
    sheet = _pdf_text(clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    assert 'id="course-completed"' in page and "Completed course closed" in _text(page)
    for words in (_text(page), sheet):
        assert "This course is COMPLETED: every bag of it was given. Closed on" in words, words


def test_s38_an_active_course_with_a_running_bag_offers_a_stop_not_a_close(app, users, db_session, client_as):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=2, cells=125_000_000)
    pid = patient(db_session, clin).id
    rx = prescriptions.prescribe(db_session, clin, PASSWORD, pid)
    rx_id, draws = rx.id, [int(d["bag_id"]) for d in rx.calculation["draws"]]
    infusion_id = _start(db_session, pid, draws[0])
    db_session.commit()
    clinician = client_as("clinician")
    page = _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert "Close the completed course" not in page and "COMPLETED" not in page, page
    _end(db_session, infusion_id, "25")
    db_session.commit()
    page = _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert "Close the completed course" in page and "COMPLETED: every bag given" in page, page


# ---- 2. reads that do not grow with the rows ---------------------------------------------------------------------

def _infused_patients(session: Any, how_many: int) -> list[int]:
    """Patients of SLE-UC each given one whole bag of 125 x10^6 cells (2 x10^6/kg at 62.5 kg), the infusion ended."""
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech), bags=how_many, cells=125_000_000)
    made = []
    for _ in range(how_many):
        pid = patient(session, clin).id
        rx = prescriptions.prescribe(session, clin, PASSWORD, pid)
        for draw in rx.calculation["draws"]:
            _end(session, _start(session, pid, int(draw["bag_id"])), "20")
        made.append(pid)
    session.commit()
    return made


def _received(app: Any) -> tuple[list[Any], int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        protocol = protocols()[SLE]
        with statements_sent(app) as seen:
            received = cohorts.received_doses(session, protocol)
        return received, len(seen)


def test_s38_the_cohort_plan_reads_the_doses_received_in_bounded_statements(app, users, db_session, client_as):
    first = _infused_patients(db_session, 1)
    one, sent_for_one = _received(app)
    more = _infused_patients(db_session, 3)
    four, sent_for_four = _received(app)
    assert [r.patient_id for r in four] == first + more  # in the order of their first infusion
    protocol = protocols()[SLE]
    for row in four:  # what each received, as the dose page counts it (20 of 25 mL: 1.6 x10^6/kg)
        assert row.received_cells_per_kg == already_infused(db_session, db_session.get(Patient, row.patient_id),
                                                            protocol).cells_per_kg == 1_600_000
        assert row.level_cells_per_kg == 2_000_000 and "BELOW its level" in row.words
    db_session.rollback()
    assert len(one) == 1 and sent_for_four == sent_for_one, (sent_for_one, sent_for_four)
    cohort = _text(client_as("clinician").get(f"/patients/cohorts/{SLE}").get_data(as_text=True))
    assert cohort.count("received 1.6 x10^6/kg: BELOW its level 2 x10^6/kg by 20 %") == 4, cohort


def _donor_list(client: Any, app: Any) -> tuple[str, int]:
    with statements_sent(app) as seen:
        response = client.get("/donors")
    assert response.status_code == 200
    return response.get_data(as_text=True), len(seen)


def test_s38_the_donor_list_judges_its_screening_donors_in_bounded_statements(app, users, db_session, client_as):
    clinician = client_as("clinician")
    screened_donor(db_session, "adipose_at_don")
    db_session.commit()
    _html, sent_for_one = _donor_list(clinician, app)
    screened_donor(db_session, "adipose_at_don", results={"anti_hcv": "positive"})
    screened_donor(db_session, "adipose_at_don", skip=("hev",))
    screened_donor(db_session, "marrow_ssc_bm", results={"anti_hbc": "positive"})
    db_session.commit()
    html, sent_for_four = _donor_list(clinician, app)
    assert sent_for_four == sent_for_one, (sent_for_one, sent_for_four)
    listed = list_donors(db_session)
    notes = status_notes(db_session, listed.donors)
    screening = [d for d in listed.donors if d.status in ("screening", "pending_review")]
    assert len(screening) == 4
    verdicts = set()
    for d in screening:  # the same words as the donor page's live evaluation, donor by donor, on the list
        verdict = evaluate_donor(db_session, d).status
        verdicts.add(verdict)
        assert f"screening says {verdict}" in notes[d.id], (d.code, notes[d.id])
        assert f"screening says {verdict}" in html[html.index(f">{d.code}</a>"):].split("</tr>")[0], html
    assert len(verdicts) > 1, verdicts  # judged on each donor's own results and answers
    db_session.rollback()


def _late_results(session: Any, markers: tuple[str, ...]) -> tuple[int, list[int]]:
    """An approved adipose donor, then late positive results (the first opens the lookback). Committed."""
    donor_id = approved_donor(session)
    tech = user(session, "technician")
    ids = [donor_services.record_result(session, tech, donor_id, marker=marker, result="positive", sample_date=TODAY,
                                        lab_reference=f"LATE-{marker}").id for marker in markers]
    session.commit()
    return donor_id, ids


def _donor_page(client: Any, app: Any, donor_id: int) -> tuple[str, int]:
    with statements_sent(app) as seen:
        response = client.get(f"/donors/{donor_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True), len(seen)


def test_s38_the_donor_page_reads_the_late_news_of_its_results_in_bounded_statements(
        app, users, db_session, client_as):
    two_id, _two = _late_results(db_session, ("anti_hcv", "hbsag"))
    four_id, four = _late_results(db_session, ("anti_hcv", "anti_hiv_1_2", "hbsag", "syphilis"))
    technician = client_as("technician")
    _page, sent_for_two = _donor_page(technician, app, two_id)
    page, sent_for_four = _donor_page(technician, app, four_id)
    assert sent_for_four == sent_for_two, (sent_for_two, sent_for_four)
    rows = list(db_session.scalars(select(ScreeningResult).where(ScreeningResult.donor_id == four_id)))
    late = donor_services.late_news_for(db_session, rows)
    assert late == {row.id: donor_services.late_news_of(db_session, row) for row in rows}
    assert late[four[0]] is not None and late[four[0]].startswith("This result opened the donor's lookback L-")
    for row_id in four[1:]:
        assert late[row_id] is not None and "result was recorded after QA's approval of" in late[row_id]
    assert [r.id for r in rows if late[r.id] is not None] == four  # the negatives before the approval: no news
    db_session.rollback()
    assert page.count("late news: only QA corrects it") == 4, _text(page)


# ---- 3. late news: the same answers --------------------------------------------------------------------------------

def test_s38_late_news_is_a_result_not_negative_recorded_after_an_approval(app, users, db_session):
    tech, qa = user(db_session, "technician"), user(db_session, "qa")
    # reactive, recorded BEFORE the approval (signed on a risk assessment): no late news
    assessed = screened_donor(db_session, "marrow_ssc_bm", results={"anti_hbc": "positive"})
    decisions.decide(db_session, qa, assessed, APPROVED, PASSWORD,
                     comment="HBsAg negative, anti-HBs positive, HBV DNA undetectable: resolved infection, accepted.")
    before = db_session.scalar(select(ScreeningResult).where(ScreeningResult.donor_id == assessed,
                                                             ScreeningResult.marker == "anti_hbc"))
    assert before is not None and donor_services.late_news_of(db_session, before) is None
    # a negative recorded after an approval: no late news (a technician corrects it); a positive after it: news
    donor_id = approved_donor(db_session)
    negative = donor_services.record_result(db_session, tech, donor_id, marker="hev", result="negative",
                                            sample_date=TODAY, lab_reference="LATE-NEG")
    assert donor_services.late_news_of(db_session, negative) is None
    lookback_row = donor_services.record_result(db_session, tech, donor_id, marker="anti_hcv", result="positive",
                                                sample_date=TODAY, lab_reference="LATE-HCV")
    news = donor_services.record_result(db_session, tech, donor_id, marker="hbsag", result="indeterminate",
                                        sample_date=TODAY, lab_reference="LATE-HBS")
    db_session.commit()
    assert donor_services.late_news_of(db_session, lookback_row).startswith("This result opened the donor's lookback")
    words = donor_services.late_news_of(db_session, news)
    assert words is not None and words.startswith("This indeterminate result was recorded after QA's approval of "
                                                  f"{TODAY:%Y}"), words
    db_session.rollback()
