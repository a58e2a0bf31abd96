"""Donor review s44 (DOMAIN.md section 3), through the pages, on SQLite and PostgreSQL.

1. A reactive result (positive, indeterminate) corrected to negative with the reason "x" (technician) or "typo"
   (QA, signed) was accepted, and QA then approved the donor with an empty comment. Now such a correction needs a
   reason of at least 20 characters (422 on `reason`, nothing written), and QA's approval of a donor whose screening
   holds such a correction needs a signed comment of at least 20 characters (422 on `comment`, naming the result).
2. The Result radio choice rendered as a bulleted list under a <label> with no `for`: now a fieldset with a legend.
3. /donors/new?rule_set=marrow_ssc_bm preselected "Allogeneic, unrelated", which that protocol refuses.
4. "+1 days from ..." in the message of a sample recorded outside its window.
5. An adipose donor's page listed "Childbearing potential / contraception — / —", a field its form does not ask.
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.donors import services
from mscbatch.donors.models import APPROVED, Donor, EligibilityDecision, ScreeningResult
from mscbatch.signatures.models import Signature
from tests.conftest import PASSWORD, screening_seen
from tests.integration.test_donors import (
    TODAY,
    approved_donor,
    db_session,  # noqa: F401 (fixture)
    page_of,
    screened_donor,
    user,
)


def _result_row(session: Any, donor_id: int, marker: str) -> dict[str, Any]:
    row = session.scalar(select(ScreeningResult).where(ScreeningResult.donor_id == donor_id,
                                                       ScreeningResult.marker == marker))
    values = dict(id=row.id, marker=row.marker, result=row.result, sample_date=row.sample_date.isoformat(),
                  lab_reference=row.lab_reference)
    session.rollback()  # SQLite: no transaction left open while the test client writes
    return values


def _correction(row: dict[str, Any], **changes: str) -> dict[str, str]:
    data = {"marker": row["marker"], "result": "negative", "sample_date": row["sample_date"],
            "lab_reference": row["lab_reference"], "reason": "x"}
    data.update(changes)
    return data


def _result_updates(session: Any, row_id: int) -> int:
    found = session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.entity_type == ScreeningResult.__tablename__, AuditEvent.entity_id == str(row_id),
        AuditEvent.action == "update"))
    session.rollback()
    return int(found or 0)


def _now(session: Any, model: Any, row_id: int, attribute: str) -> Any:
    """The recorded value now, read in a transaction closed at once (SQLite: none left open for the client)."""
    session.expire_all()
    value = getattr(session.get(model, row_id), attribute)
    session.rollback()
    return value


def test_s44_a_positive_corrected_to_negative_needs_a_substantive_reason_and_qa_a_signed_comment(
        app, users, client_as, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don", results={"hbsag": "positive"})
    db_session.commit()
    row = _result_row(db_session, donor_id, "hbsag")
    tech = client_as("technician")
    refused = tech.post(f"/donors/results/{row['id']}/correct", data=_correction(row))
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert ("Reason: a positive (reactive) result corrected to negative needs the reason and the report or retest "
            "that shows it (at least 20 characters; 1 given)") in html
    assert 'id="reason-error"' in html  # said next to the reason field
    assert _now(db_session, ScreeningResult, row["id"], "result") == "positive"
    assert _result_updates(db_session, row["id"]) == 0
    # another problem of the same form is said with it, every error at once
    both = tech.post(f"/donors/results/{row['id']}/correct", data=_correction(row, lab_reference=""))
    assert both.status_code == 422 and "1 given" in both.get_data(as_text=True)
    # a substantive reason corrects it; the old value goes into the audit trail
    reason = "typing error: report HBS-77 says negative"
    done = tech.post(f"/donors/results/{row['id']}/correct", data=_correction(row, reason=reason))
    assert done.status_code == 302, done.get_data(as_text=True)[:2000]
    assert _now(db_session, ScreeningResult, row["id"], "result") == "negative"

    # QA: the form says what the comment must do before QA signs, and an empty comment is refused
    qa = client_as("qa")
    page = page_of(qa, donor_id)
    section = page[page.index('id="h-decision"'):page.index('id="h-checklist"')]
    assert "a result of this donor was corrected away from a reactive value" in section
    assert "at least 20 characters" in section
    form = {**screening_seen(qa, donor_id), "decision-meaning": APPROVED, "decision-password": PASSWORD,
            "decision-comment": ""}
    empty = qa.post(f"/donors/{donor_id}/decision", data=form)
    assert empty.status_code == 422
    said = empty.get_data(as_text=True)
    assert "Comment: approving donor" in said and "at least 20 characters; 0 given" in said
    assert re.search(r"HBsAg was recorded POSITIVE on \d{4}-\d\d-\d\d, corrected to negative", said)
    assert 'id="decision-comment-error"' in said
    assert _now(db_session, Donor, donor_id, "status") == "screening"
    assert db_session.scalar(select(func.count()).select_from(EligibilityDecision).where(
        EligibilityDecision.donor_id == donor_id)) == 0
    db_session.rollback()
    short = qa.post(f"/donors/{donor_id}/decision", data={**form, "decision-comment": "ok"})
    assert short.status_code == 422 and "2 given" in short.get_data(as_text=True)
    comment = "Report HBS-77 read: HBsAg negative; typing error"
    signed = qa.post(f"/donors/{donor_id}/decision", data={**form, "decision-comment": comment})
    assert signed.status_code == 302, signed.get_data(as_text=True)[:2000]
    decision = db_session.scalar(select(EligibilityDecision).where(EligibilityDecision.donor_id == donor_id))
    assert decision.meaning == APPROVED and decision.comment == comment  # kept with the signed decision
    db_session.rollback()
    assert f"Comment: {comment}" in page_of(qa, donor_id)


def test_s44_an_indeterminate_corrected_to_negative_needs_the_reason_too(app, users, client_as,
                                                                         db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don", results={"anti_hcv": "indeterminate"})
    db_session.commit()
    row = _result_row(db_session, donor_id, "anti_hcv")
    refused = client_as("technician").post(f"/donors/results/{row['id']}/correct",
                                           data=_correction(row, reason="  wrong line   "))
    assert refused.status_code == 422
    assert "an indeterminate (reactive) result corrected to negative" in refused.get_data(as_text=True)
    assert "10 given" in refused.get_data(as_text=True)
    assert _now(db_session, ScreeningResult, row["id"], "result") == "indeterminate"


def test_s44_qa_signed_correction_of_a_late_positive_needs_a_substantive_reason(app, users, client_as,
                                                                                db_session):  # noqa: F811
    donor_id = approved_donor(db_session)
    late = services.record_result(db_session, user(db_session, "technician"), donor_id, marker="anti_hcv",
                                  result="positive", sample_date=TODAY, lab_reference="LATE-HCV")
    db_session.commit()
    row = dict(id=late.id, marker="anti_hcv", sample_date=TODAY.isoformat(), lab_reference="LATE-HCV")
    db_session.rollback()
    qa = client_as("qa")
    refused = qa.post(f"/donors/results/{row['id']}/qa-correct",
                      data=_correction(row, reason="typo", password=PASSWORD))
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "Reason: a positive (reactive) result corrected to negative" in html and "4 given" in html
    assert _now(db_session, ScreeningResult, row["id"], "result") == "positive"
    assert db_session.scalar(select(func.count()).select_from(Signature).where(
        Signature.entity_type == "donor_screening_result", Signature.entity_id == str(row["id"]))) == 0
    db_session.rollback()
    done = qa.post(f"/donors/results/{row['id']}/qa-correct",
                   data=_correction(row, reason="typo: report LATE-HCV says negative", password=PASSWORD))
    assert done.status_code == 302, done.get_data(as_text=True)[:2000]
    assert _now(db_session, ScreeningResult, row["id"], "result") == "negative"


def _radio_group(html: str, name: str) -> None:
    assert re.search(r"<fieldset><legend>Result</legend>\s*<ul class=\"choices\" id=\"" + name + '"', html), \
        html[html.find("Result"):][:500]
    assert f'<label for="{name}">Result</label>' not in html


def test_s44_the_result_choice_is_a_fieldset_with_its_legend(app, users, client_as, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "adipose_at_don")
    late_donor = approved_donor(db_session)
    late = services.record_result(db_session, user(db_session, "technician"), late_donor, marker="anti_hcv",
                                  result="positive", sample_date=TODAY, lab_reference="LATE-HCV")
    db_session.commit()
    row = _result_row(db_session, donor_id, "hbsag")
    late_id = late.id
    db_session.rollback()
    tech = client_as("technician")
    _radio_group(page_of(tech, donor_id), "result-result")
    correct = tech.get(f"/donors/results/{row['id']}/correct")
    assert correct.status_code == 200
    _radio_group(correct.get_data(as_text=True), "result")
    qa_correct = client_as("qa").get(f"/donors/results/{late_id}/qa-correct")
    assert qa_correct.status_code == 200
    _radio_group(qa_correct.get_data(as_text=True), "result")


def test_s44_a_familial_only_protocol_preselects_the_familial_type(app, users, client_as):
    html = client_as("technician").get("/donors/new?rule_set=marrow_ssc_bm").get_data(as_text=True)
    select_html = html[html.index('name="donor_type"'):]
    select_html = select_html[:select_html.index("</select>")]
    assert re.search(r'<option selected value="familial">|<option value="familial" selected>', select_html), \
        select_html
    assert not re.search(r'<option selected value="unrelated">|<option value="unrelated" selected>', select_html)
    # a protocol that takes both keeps the default
    other = client_as("technician").get("/donors/new?rule_set=adipose_at_don").get_data(as_text=True)
    other = other[other.index('name="donor_type"'):]
    assert re.search(r'<option selected value="unrelated">|<option value="unrelated" selected>', other)


def test_s44_one_day_outside_the_window_says_day(app, users, client_as, db_session):  # noqa: F811
    planned = TODAY - timedelta(days=1)  # marrow window: -30..0 days; a sample today is +1 day
    donor_id = screened_donor(db_session, "marrow_ssc_bm", skip=("anti_hcv",), planned_collection_date=planned,
                              sample=planned - timedelta(days=2))
    db_session.commit()
    response = client_as("technician").post(f"/donors/{donor_id}/results", data={
        "result-marker": "anti_hcv", "result-result": "negative", "result-sample_date": TODAY.isoformat(),
        "result-lab_reference": "LATE-1"}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert f"+1 day from the planned collection on {planned}" in html, html[:3000]
    assert "+1 days" not in html


def test_s44_the_donor_page_lists_only_the_fields_its_protocol_asks(app, users, client_as, db_session):  # noqa: F811
    adipose = screened_donor(db_session, "adipose_at_don", childbearing_potential=None, contraception=None)
    marrow = screened_donor(db_session, "marrow_ssc_bm")
    db_session.commit()
    tech = client_as("technician")
    assert "Childbearing potential / contraception" not in page_of(tech, adipose)
    assert "Childbearing potential / contraception</dt><dd>yes / yes" in page_of(tech, marrow)
