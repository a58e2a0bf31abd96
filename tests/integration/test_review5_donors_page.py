"""Review 5 (lab QA), the donor page, each shown the way a technician or QA person meets it:

1. A negative sampled outside its window does not count (DOMAIN.md section 3): the results table no longer shows it
   with a green "negative" badge but says "outside its window: does not count", with the window.
2. "Days from collection" counts from the day a lot's tissue was really collected (what its donor gate judges), not
   only from the planned day, and the table says which day each column counts from.
3. A sample dated before the donor's date of birth (a cord donor's record: the mother's) is refused, naming the field;
   so is a corrected date of birth falling after a recorded sample.
4. A weight of blank spaces is "not recorded", as an empty one is; every field's error is shown at once.
"""
# ruff: noqa: F811 (db_session is the imported fixture, named as a parameter by each test)
from __future__ import annotations

import html as html_text
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from mscbatch.donors.models import Donor, ScreeningResult
from mscbatch.lots.models import Lot
from tests.integration.lot_factories import TODAY as LOT_TODAY
from tests.integration.lot_factories import approved_adipose_donor, start_lot
from tests.integration.test_donors import (  # noqa: F401 (db_session: fixture)
    DATES,
    TODAY,
    count,
    db_session,
    page_of,
    register_through_the_form,
    screened_donor,
)


def _rows(html: str) -> list[str]:
    body = html[html.index('id="h-results"'):]
    body = body[:body.index("</table>")]
    return re.findall(r'<tr class="result[^"]*"[^>]*>.*?</tr>', body, re.S)


def _headers(html: str) -> list[str]:
    body = html[html.index('id="h-results"'):]
    return [html_text.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", h)).strip())
            for h in re.findall(r'<th class="days-from"[^>]*>(.*?)</th>', body[:body.index("</thead>")], re.S)]


def test_a_negative_outside_its_window_is_not_shown_as_a_pass(app, users, client_as, db_session):
    collection = DATES["marrow_ssc_bm"][0]  # window -30..0 days
    donor_id = screened_donor(db_session, "marrow_ssc_bm", sample=collection - timedelta(days=35))
    db_session.rollback()
    html = page_of(client_as("qa"), donor_id)
    rows = _rows(html)
    assert rows and all("outside-window" in row for row in rows)
    for row in rows:
        assert "status-eligible" not in row  # never the green badge
        assert "outside its window: does not count" in row
        assert "-35" in row and "outside its window -30..+0 days" in row
    assert _headers(html) == [f"Days from the planned collection on {collection} the checklist and QA's decision "
                              "count from it"]


def test_days_from_collection_count_from_the_lot_s_collection_day(app, users, client_as, db_session):
    donor_id = approved_adipose_donor(db_session, days_ago=20)  # sampled the day after the planned collection
    lot_id = start_lot(db_session, donor_id, days_ago=2)  # the tissue was really collected 18 days later
    lot_number = db_session.get(Lot, lot_id).lot_number
    planned = db_session.get(Donor, donor_id).planned_collection_date
    db_session.rollback()
    html = page_of(client_as("technician"), donor_id)
    lot_day = LOT_TODAY - timedelta(days=2)
    assert _headers(html) == [
        f"Days from the planned collection on {planned} the checklist and QA's decision count from it",
        f"Days from the collection of lot {lot_number} on {lot_day} this lot's donor gate counts from it, not from "
        "the planned day"]
    for row in _rows(html):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)  # data-label: each cell named for the tablet cards
        assert cells[4] == "+1"  # from the planned day: inside 0..+7
        assert cells[5].startswith("-17") and "outside its window +0..+7 days" in cells[5]
        assert "status-eligible" not in row and f"outside its window for lot {lot_number}: does not count" in row
    assert f"Lot {lot_number} was collected on {lot_day}, not on the planned day" in html
    assert re.search(rf"{lot_number} <span class=\"status status-pending\">pending</span>", html)


def test_a_sample_dated_before_the_date_of_birth_is_refused(app, users, client_as, db_session):
    tech = client_as("technician")
    donor_id = screened_donor(db_session, "adipose_at_don", skip=("hev",))
    born = db_session.get(Donor, donor_id).date_of_birth
    before = count(db_session, ScreeningResult)
    response = tech.post(f"/donors/{donor_id}/results", data={
        "result-marker": "hev", "result-result": "negative", "result-sample_date": "1900-01-01",
        "result-lab_reference": "LAB-4"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert (f'id="result-sample_date-error">The sample date 1900-01-01 is before the donor&#39;s date of birth ({born})'
            in html)
    assert count(db_session, ScreeningResult) == before

    cord_id = screened_donor(db_session, "cord_eu", skip=("anti_hcv",))
    mother_born = db_session.get(Donor, cord_id).date_of_birth
    db_session.rollback()
    response = tech.post(f"/donors/{cord_id}/results", data={
        "result-marker": "anti_hcv", "result-result": "negative",
        "result-sample_date": (mother_born - timedelta(days=1)).isoformat(), "result-lab_reference": "LAB-5"})
    assert response.status_code == 422 and "before the mother&#39;s date of birth" in response.get_data(as_text=True)

    marrow_id = screened_donor(db_session, "marrow_ssc_bm")  # sampled before its planned collection
    sample = DATES["marrow_ssc_bm"][1]
    born = db_session.get(Donor, marrow_id).date_of_birth
    response = tech.post(f"/donors/{marrow_id}/edit", data=_edit_form(  # a date of birth typed after the sample
        db_session, marrow_id, date_of_birth=(sample + timedelta(days=1)).isoformat(),
        consent_date=(sample + timedelta(days=2)).isoformat(), reason="typo"))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert (f'id="date_of_birth-error">Date of birth {sample + timedelta(days=1)} is after a sample already recorded'
            in response.get_data(as_text=True))
    assert db_session.get(Donor, marrow_id).date_of_birth == born
    db_session.rollback()


def _edit_form(session: Any, donor_id: int, **changes: str) -> dict[str, str]:
    donor = session.get(Donor, donor_id)
    data = {"rule_set_id": donor.rule_set_id, "donor_type": donor.donor_type, "initials": donor.initials or "",
            "relationship": donor.relationship or "", "recipient_code": donor.recipient_code or "",
            "date_of_birth": donor.date_of_birth.isoformat(), "sex": donor.sex or "",
            "weight_kg": str(donor.weight_kg or ""), "consent_signed": "yes",
            "consent_date": donor.consent_date.isoformat(), "social_security": "yes",
            "planned_collection_date": donor.planned_collection_date.isoformat()}
    session.rollback()
    data.update(changes)
    return data


def test_a_blank_weight_is_not_recorded_like_an_empty_one(app, users, client_as, db_session):
    tech = client_as("technician")
    for typed in ("", "   "):
        response = register_through_the_form(tech, weight_kg=typed)
        assert response.status_code == 302, response.get_data(as_text=True)[:3000]
        donor_id = int(response.headers["Location"].rsplit("/", 1)[1])
        assert db_session.get(Donor, donor_id).weight_kg is None
        db_session.rollback()
        assert "Not judged: weight not recorded." in page_of(tech, donor_id)  # missing (grey) on the checklist


def test_every_field_s_error_is_shown_at_once(app, users, client_as, db_session):
    tech = client_as("technician")
    response = register_through_the_form(tech, weight_kg="heavy", initials="12", consent_date="1970-01-01",
                                         planned_collection_date="1970-02-01", date_of_birth="1980-05-17",
                                         sex="female")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    for field in ("weight_kg", "initials", "consent_date", "planned_collection_date"):
        assert f'id="{field}-error"' in html, field
    # a field the form itself cannot read (a date that does not exist) and the services' problems together
    response = register_through_the_form(tech, date_of_birth="1980-13-45", weight_kg="heavy")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and 'id="date_of_birth-error"' in html and 'id="weight_kg-error"' in html
    assert count(db_session, Donor) == 0

    donor_id = screened_donor(db_session, "adipose_at_don", skip=("hev",))
    db_session.rollback()
    response = tech.post(f"/donors/{donor_id}/results", data={
        "result-marker": "hev", "result-result": "negative",
        "result-sample_date": (TODAY + timedelta(days=2)).isoformat(), "result-lab_reference": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="result-sample_date-error">The sample date cannot be in the future.' in html
    assert 'id="result-lab_reference-error"' in html
    assert db_session.scalar(select(ScreeningResult.id).where(ScreeningResult.donor_id == donor_id,
                                                              ScreeningResult.marker == "hev")) is None


def test_recording_a_sample_outside_its_window_says_it_does_not_count(app, users, client_as, db_session):
    collection = DATES["marrow_ssc_bm"][0]
    donor_id = screened_donor(db_session, "marrow_ssc_bm", skip=("anti_hcv",))
    db_session.rollback()
    tech = client_as("technician")
    sample = collection - timedelta(days=35)
    response = tech.post(f"/donors/{donor_id}/results", follow_redirects=True, data={
        "result-marker": "anti_hcv", "result-result": "negative", "result-sample_date": sample.isoformat(),
        "result-lab_reference": "LAB-OLD"})
    html = html_text.unescape(response.get_data(as_text=True))
    assert response.status_code == 200
    assert (f"Result recorded: Anti-HCV (serology) negative, sample {sample}. The sample is outside its window (-35 days from "
            f"the planned collection on {collection}, window -30..+0 days). It does not count" in html)


def test_a_result_locked_by_qa_s_signature_offers_no_correction_form(app, users, client_as, db_session):
    donor_id = approved_adipose_donor(db_session)
    result_id = db_session.scalar(select(ScreeningResult.id).where(ScreeningResult.donor_id == donor_id).limit(1))
    db_session.rollback()
    response = client_as("technician").get(f"/donors/results/{result_id}/correct")
    html = html_text.unescape(response.get_data(as_text=True))
    assert response.status_code == 200
    assert "This result can no longer be corrected: QA signed 'Donor eligibility approved'" in html
    assert 'name="reason"' not in html and "Save correction" not in html
