"""Donor-eligibility QA review s40, through the web pages.

1. SAFETY: a technician's correction of a POSITIVE Anti-HIV-1/2 result changed its marker to CMV IgM and its result to
   negative; QA's warning then read "CMV IgM was recorded POSITIVE" and QA approved. A result that was ever positive
   or indeterminate keeps its marker; the warning names the marker the result had when it was recorded positive.
2. An "Unknown" questionnaire answer was shown as "Not answered".
3. The lookback closing-note label said "no lot was made from this donor" whatever the lots.
4. QA's segregation-of-duties refusal was shown on the password field: it stands above the form.
5. The donor list ignored unknown filters and listed every donor.
6. Start lot offered a donor whose screening says ineligible (reopened by a late positive).
8. A marker outside the protocol was refused with "Marker: Not a valid choice".
"""
from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.donors import services
from mscbatch.donors.models import Donor, ScreeningResult
from tests.conftest import PASSWORD, add_user, screening_seen
from tests.integration.test_donors import (
    DATES,
    TODAY,
    approved_donor,
    db_session,  # noqa: F401 (fixture)
    page_of,
    screened_donor,
    user,
)


def _hiv_positive_donor(session: Any) -> tuple[int, int]:
    """An adipose donor in screening (no QA decision) whose Anti-HIV-1/2 was recorded positive. Committed."""
    donor_id = screened_donor(session, "adipose_at_don", results={"anti_hiv_1_2": "positive"})
    row_id = session.scalar(select(ScreeningResult.id).where(ScreeningResult.donor_id == donor_id,
                                                             ScreeningResult.marker == "anti_hiv_1_2"))
    session.commit()
    return donor_id, row_id


def _updates_of(session: Any, row_id: int) -> int:
    found = session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.entity_type == "donor_screening_result", AuditEvent.entity_id == str(row_id),
        AuditEvent.action == "update"))
    session.rollback()
    return int(found or 0)


def test_s40_a_positive_results_marker_cannot_be_corrected_away(app, users, client_as, db_session):  # noqa: F811
    donor_id, row_id = _hiv_positive_donor(db_session)
    sample = DATES["adipose_at_don"][1].isoformat()
    tech = client_as("technician")
    refused = tech.post(f"/donors/results/{row_id}/correct", data={
        "marker": "cmv_igm", "result": "negative", "sample_date": sample, "lab_reference": "LAB-X",
        "reason": "wrong line of the report"})
    assert refused.status_code == 409
    html = html_lib.unescape(refused.get_data(as_text=True))
    assert ('id="marker-error' in html or 'marker-error' in html), html[:3000]
    assert ("A result recorded POSITIVE for Anti-HIV-1/2 keeps its marker: record the other marker as a new result; "
            "correct this one's result with its reason") in html
    db_session.expire_all()
    row = db_session.get(ScreeningResult, row_id)
    assert (row.marker, row.result) == ("anti_hiv_1_2", "positive")  # nothing recorded
    db_session.rollback()
    assert _updates_of(db_session, row_id) == 0
    # its result, marker kept, is still corrected with a reason; then its marker stays fixed (it was positive once)
    fixed = tech.post(f"/donors/results/{row_id}/correct", data={
        "marker": "anti_hiv_1_2", "result": "negative", "sample_date": sample, "lab_reference": "LAB-X",
        "reason": "typing error: the report says negative"})
    assert fixed.status_code == 302, fixed.get_data(as_text=True)[:3000]
    again = tech.post(f"/donors/results/{row_id}/correct", data={
        "marker": "cmv_igm", "result": "negative", "sample_date": sample, "lab_reference": "LAB-X",
        "reason": "wrong line"})
    assert again.status_code == 409 and "A result recorded POSITIVE for Anti-HIV-1/2 keeps its marker" in \
        html_lib.unescape(again.get_data(as_text=True))
    page = html_lib.unescape(page_of(client_as("qa"), donor_id))
    assert re.search(r"Anti-HIV-1/2 was recorded POSITIVE on \d{4}-\d\d-\d\d, corrected to negative", page), page


def test_s40_a_legacy_marker_change_still_warns_with_the_marker_recorded_positive(app, users, client_as,
                                                                                   db_session):  # noqa: F811
    donor_id, row_id = _hiv_positive_donor(db_session)
    tech = user(db_session, "technician")
    # as the correction did before s40: marker and result changed in one correction
    with use_case(db_session, tech, "wrong line of the report"):
        row = db_session.get(ScreeningResult, row_id)
        row.marker, row.result, row.corrected_by_id = "cmv_igm", "negative", tech.id
    db_session.commit()
    page = html_lib.unescape(page_of(client_as("qa"), donor_id))
    warning = page[page.index('id="earlier-reactive"'):]
    warning = warning[:warning.index("</div>")]
    assert re.search(r"Anti-HIV-1/2 was recorded POSITIVE on \d{4}-\d\d-\d\d, corrected to CMV IgM negative on "
                     r"\d{4}-\d\d-\d\d by Technician: wrong line of the report", warning), warning
    assert "CMV IgM was recorded POSITIVE" not in page


def test_s40_an_unknown_answer_says_it_needs_checking(app, users, client_as, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don")
    db_session.commit()
    answered = client_as("technician").post(f"/donors/{donor_id}/questionnaire", data={
        "q_icterus": "unknown", "d_icterus": "", "reason": "the donor is not sure"})
    assert answered.status_code == 302, answered.get_data(as_text=True)[:3000]
    page = html_lib.unescape(page_of(client_as("qa"), donor_id))
    assert "<td>Icterus (jaundice)?</td><td>Answered unknown: needs checking.</td>" in page
    assert "<td>Icterus (jaundice)?</td><td>Not answered.</td>" not in page
    db_session.expire_all()
    assert db_session.get(Donor, donor_id).status == "screening"
    db_session.rollback()
    assert "screening says pending" in client_as("qa").get("/donors").get_data(as_text=True)


def test_s40_the_lookback_closing_note_label_fits_whatever_the_lots(app, users, client_as, db_session):  # noqa: F811
    donor_id = approved_donor(db_session)
    services.record_result(db_session, user(db_session, "technician"), donor_id, marker="anti_hcv",
                           result="positive", sample_date=TODAY, lab_reference="LATE-HCV")
    db_session.commit()
    page = html_lib.unescape(page_of(client_as("qa"), donor_id))
    assert "Closing note (what was checked, and why nothing needs recalling)" in page
    assert "(what was checked; no lot was made from this donor)" not in page


def test_s40_segregation_of_duties_stands_above_the_decision_form(app, users, db_session):  # noqa: F811
    add_user(app, "techqa", ["technician", "qa"], "Terry Tech-QA")
    donor_id = screened_donor(db_session, "adipose_at_don", tech="techqa")
    db_session.commit()
    client = app.test_client()
    client.post("/login", data={"username": "techqa", "password": PASSWORD})
    response = client.post(f"/donors/{donor_id}/decision", data={
        **screening_seen(client, donor_id), "decision-meaning": "Donor eligibility approved",
        "decision-password": PASSWORD})
    assert response.status_code == 403
    html = html_lib.unescape(response.get_data(as_text=True))
    form = html[html.index(f'action="/donors/{donor_id}/decision"'):]
    form = form[:form.index("</form>")]
    errors = re.search(r'(?s)<div class="form-errors" role="alert">(.*?)</div>', form)
    assert errors and "segregation of duties" in errors.group(1), form
    assert "decision-password-error" not in html and "has-error" not in form


def test_s40_the_donor_list_refuses_unknown_filters(app, users, client_as, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don")
    code = db_session.get(Donor, donor_id).code
    db_session.commit()
    qa = client_as("qa")
    for query, words in (("status=bogus", "Status: 'bogus' is not a donor status: choose one of screening, approved, "
                                          "ineligible, pending review, or all statuses."),
                         ("tissue_source=xx", "Tissue source: 'xx' is not a tissue source"),
                         ("source=xx", "Tissue source: 'xx' is not a tissue source"),
                         ("page=abc", "Page: 'abc' is not a page number")):
        response = qa.get(f"/donors?{query}")
        html = html_lib.unescape(response.get_data(as_text=True))
        assert response.status_code == 422, query
        assert words in html and "No donors are listed" in html, (query, html[-3000:])
        assert f'href="/donors/{donor_id}"' not in html, query
    ok = qa.get("/donors?status=screening&tissue_source=adipose_tissue&page=1")
    assert ok.status_code == 200 and f'href="/donors/{donor_id}">{code}</a>' in ok.get_data(as_text=True)


def test_s40_start_lot_lists_only_donors_a_lot_may_be_started_from(app, users, client_as, db_session):  # noqa: F811
    reopened_id = approved_donor(db_session)
    services.record_result(db_session, user(db_session, "technician"), reopened_id, marker="anti_hiv_1_2",
                           result="positive", sample_date=TODAY, lab_reference="LATE-HIV")
    pending_id = screened_donor(db_session, "adipose_at_don")
    reopened_code = db_session.get(Donor, reopened_id).code
    pending_code = db_session.get(Donor, pending_id).code
    db_session.commit()
    tech = client_as("technician")
    page = html_lib.unescape(tech.get("/lots/new").get_data(as_text=True))
    assert pending_code in page
    assert reopened_code not in page and "late positive result" not in page
    # a page opened before the result: the submit is still refused, naming why
    refused = tech.post("/lots/new", data={
        "donor_id": reopened_id, "product_id": "AT-MSC",
        "collection_at": (TODAY - timedelta(days=3)).isoformat() + "T09:00",
        "collection_site": "Theatre 3", "tissue_amount": "40", "tissue_unit": "g"})
    assert refused.status_code == 409, refused.get_data(as_text=True)[:3000]
    assert "is ineligible on its screening" in html_lib.unescape(refused.get_data(as_text=True))


def test_s40_a_marker_outside_the_protocol_names_the_rule_set(app, users, client_as, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "cord_eu")
    db_session.commit()
    response = client_as("technician").post(f"/donors/{donor_id}/results", data={
        "result-marker": "hev", "result-result": "negative", "result-sample_date": TODAY.isoformat(),
        "result-lab_reference": "LAB-HEV"})
    assert response.status_code == 422
    html = html_lib.unescape(response.get_data(as_text=True))
    assert "Marker: Anti-HEV is not tested under rule set cord_eu v2 (SLE-UC); choose one of its markers." in html
    assert "Not a valid choice" not in html
