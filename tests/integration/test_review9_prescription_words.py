"""Review 9, prescription page and dose sheet (SQLite and PostgreSQL).

1. A bag discarded at thaw, its lot recalled afterwards, read "NOT GIVEN: its lot was RECALLED": what physically
   happened to the bag comes first ("discarded (bag cracked at thaw)"), the lot's state after it. Same words on the
   dose sheet (one source: patients.course.bag_outcomes).
2. A standing course that a lost bag has left unable to give its dose (the bedside's course_short STOP) now says so
   at the top of the prescription page and the dose sheet, with what the prescriber must do."""
from __future__ import annotations

import io
import re
from html import unescape

from pypdf import PdfReader

from mscbatch.core.identifiers import parse_din
from mscbatch.recall import services as recall_services
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_review4_custody_course import _course

SHORT = "THE PRESCRIBED DOSE CAN NO LONGER BE GIVEN"
TO_DO = ("Do not give its bags: the prescriber must cancel this prescription (or stop the course, once a bag was "
         "given) and prescribe again.")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _pdf_text(pdf: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


def _bag_row(page: str, din: str) -> str:
    start = page.index(f'data-din="{din}"')
    return _text(page[start:page.index("</tr>", start)])


def test_a_bag_discarded_at_thaw_then_its_lot_recalled_reads_discarded_first(app, users, db_session, client_as):
    course = _course(db_session, bags=3, cells=50_000_000)
    (_first, first_token, first_din), (_s, _t, second_din) = course.bags[:2]
    assert client_as("nurse").post("/ward/event", data={"bag": first_token, "action": "discard",
                                                        "reason": "bag cracked at thaw"}).status_code == 302
    recall_services.start_recall(db_session, user(db_session, "qa"), scope="lot", target_id=course.lot_id,
                                 reason="supplier notice: medium endotoxin", password=PASSWORD)
    db_session.commit()

    clinician = client_as("clinician")
    page = clinician.get(f"/patients/prescriptions/{course.prescription_id}").get_data(as_text=True)
    discarded = _bag_row(page, first_din)
    assert "NOT GIVEN: discarded (bag cracked at thaw); its lot is also RECALLED" in discarded, discarded
    assert "its lot was RECALLED" not in discarded
    # a bag that was still to give when its lot was recalled: the lot is its reason, as before
    held = _bag_row(page, second_din)
    assert "NOT GIVEN: its lot was RECALLED: it will never be given, do not give it" in held, held

    sheet = _pdf_text(clinician.get(f"/patients/prescriptions/{course.prescription_id}/dose-sheet.pdf").data)
    assert "NOT GIVEN: discarded (bag cracked at thaw); its lot is also RECALLED" in sheet, sheet


def test_a_course_that_can_no_longer_give_its_dose_says_so_on_the_page_and_the_sheet(app, users, db_session,
                                                                                       client_as):
    """3 bags (50 + 50 + 25 x10^6 = 125 x10^6 for 62.5 kg, band from 112.5): bag 1 discarded, the rest give 75."""
    course = _course(db_session, bags=3, cells=50_000_000)
    clinician = client_as("clinician")
    url = f"/patients/prescriptions/{course.prescription_id}"
    assert SHORT not in clinician.get(url).get_data(as_text=True)  # nothing lost yet
    assert client_as("nurse").post("/ward/event", data={"bag": course.bags[0][1], "action": "discard",
                                                        "reason": "bag cracked at thaw"}).status_code == 302

    page = clinician.get(url).get_data(as_text=True)
    banner = re.search(r'<div class="flash flash-warning" role="alert">([^<]*)</div>', page)
    assert banner is not None and page.index(banner.group(0)) < page.index('id="allocated-bags"')
    words = unescape(banner.group(1))
    assert words.startswith(SHORT), words
    assert f"bag {parse_din(course.bags[0][2]).display} (50 x10^6 cells of the dose) was DISCARDED" in words
    assert "would give 1.2 x10^6/kg instead of the 2 x10^6/kg prescribed" in words and words.endswith(TO_DO)

    sheet = _pdf_text(clinician.get(f"{url}/dose-sheet.pdf").data)
    assert SHORT in sheet and "cancel this prescription" in sheet, sheet

    # once the prescriber has stopped it, the banner gives way to the stop's own words
    nurse = client_as("nurse")
    for _bag_id, token, _din in course.bags[1:]:
        assert nurse.post("/ward/event", data={"bag": token, "action": "discard",
                                               "reason": "thawed; course stopped by the prescriber"}).status_code == 302
    assert clinician.post(f"{url}/cancel", data={"password": PASSWORD, "reason": "bag 1 broken at thaw"}).status_code == 302
    assert SHORT not in clinician.get(url).get_data(as_text=True)
