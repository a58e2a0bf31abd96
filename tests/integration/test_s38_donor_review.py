"""Donor-screening review s38 (DOMAIN.md sections 2, 3, 8, 9), on SQLite and PostgreSQL.

1. A technician alone could correct away a late reactive result: the approval reopened by it could be signed again,
   the donor's lots usable again, while the lookback stayed open. Now a result that opened a lookback (or a reactive
   result recorded after an approval) is corrected by QA only, signed, once the lookback is closed; no approval while
   a lookback is open; QA's approval page shows the reactive value a correction replaced.
2. SSc-BM: sex "male" overrode a recorded "childbearing potential yes, contraception no".
3. A familial donor could be directed to a patient code of another protocol.
4. A second familial donor for the same recipient was accepted silently.
5. The donor list's Status column said "pending review" / "approved" only.
6. A cord donor (the mother) accepted Sex = Male and showed fields no cord rule uses.
7. Words: "HIV PCR (NAT) (NAT)", "Result : Not a valid choice.", "Pregnancy? Pregnancy? No.".
8. A lookback of a donor with no lot could not be closed without a recall.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.core.eligibility import evaluate
from mscbatch.donors import decisions, services
from mscbatch.donors.models import APPROVED, Donor, DonorLookback, ScreeningResult
from mscbatch.donors.queries import facts_of, rule_sets
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.signatures.models import Signature
from tests.conftest import PASSWORD
from tests.integration.test_donors import (
    TODAY,
    approved_donor,
    db_session,  # noqa: F401 (fixture)
    details,
    page_of,
    screened_donor,
    user,
)


def _late_positive(session: Any) -> tuple[int, int, int]:
    """An adipose donor approved by QA (no lot), then a late anti-HCV positive: approval reopened, lookback open.
    Committed: the client may make requests next."""
    donor_id = approved_donor(session)
    row = services.record_result(session, user(session, "technician"), donor_id, marker="anti_hcv",
                                 result="positive", sample_date=TODAY, lab_reference="LATE-HCV")
    row_id = row.id
    lookback_id = session.scalar(select(DonorLookback.id).where(DonorLookback.donor_id == donor_id))
    session.commit()
    return donor_id, row_id, lookback_id


def _correction(row_id: int, **changes: str) -> dict[str, str]:
    data = {"marker": "anti_hcv", "result": "negative", "sample_date": TODAY.isoformat(),
            "lab_reference": "LATE-HCV", "reason": "typo"}
    data.update(changes)
    return data


def test_s38_a_technician_cannot_correct_away_a_late_reactive_result(app, users, client_as, db_session):  # noqa: F811
    donor_id, row_id, lookback_id = _late_positive(db_session)
    response = client_as("technician").post(f"/donors/results/{row_id}/correct", data=_correction(row_id))
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert f"lookback L-{lookback_id}" in html and "only QA can correct it, with a signature" in html
    db_session.expire_all()
    assert db_session.get(ScreeningResult, row_id).result == "positive"
    db_session.rollback()
    with pytest.raises(Conflict, match="only QA can correct it"):
        services.correct_result(db_session, user(db_session, "technician"), row_id, reason="typo",
                                marker="anti_hcv", result="negative", sample_date=TODAY, lab_reference="LATE-HCV")
    db_session.rollback()
    # the donor page offers the technician no correction link for it
    page = page_of(client_as("technician"), donor_id)
    assert f"/donors/results/{row_id}/correct" not in page and "only QA corrects it" in page


def test_s38_no_approval_while_the_lookback_is_open(app, users, db_session):  # noqa: F811
    donor_id, row_id, _lookback = _late_positive(db_session)
    with pytest.raises(Conflict, match="cannot be approved while lookback"):
        decisions.decide(db_session, user(db_session, "qa2"), donor_id, APPROVED, PASSWORD,
                         comment="risk assessment " * 5)
    db_session.rollback()
    assert db_session.get(Donor, donor_id).status == "pending_review"


def test_s38_a_typing_error_that_opened_a_lookback_of_a_donor_with_lots_costs_no_recall(
        app, users, client_as):  # type: ignore[no-untyped-def]
    """The re-walk: with a lot made, the only way out of a lookback opened by a typing error was the donor's recall,
    which leaves a released lot recalled for good. QA corrects the result (signed) while the lookback is open; the
    lookback then closes with QA's note, and another QA person may approve the donor again: its released lot is
    usable again, each step signed or audited. Until the correction, closing with a note is refused."""
    from mscbatch.donors.clearance import clearance_of
    from tests.integration.test_recall_lookbacks import _infused_cord_donor

    scene = _infused_cord_donor(app)
    db = app.extensions["mscbatch.db"]
    with db.new_session() as session:
        lookback = session.scalar(select(DonorLookback).where(DonorLookback.donor_id == scene["donor_id"]))
        lookback_id, row_id = lookback.id, lookback.triggering_result_id
        assert decisions.lookback_closable(session, lookback) is None  # lots, and the result still positive
    qa = client_as("qa")
    refused = qa.post(f"/donors/lookbacks/{lookback_id}/close",
                      data={"lookback-note": "Lab called: the report says negative, typed positive."})
    assert refused.status_code == 409 and "corrected that result to negative" in refused.get_data(as_text=True)
    page = page_of(qa, scene["donor_id"])
    assert f'id="lookback-close-{lookback_id}"' not in page and "start the donor's recall</a>" in page
    with db.new_session() as session:  # QA's signed correction, the lookback still open
        row = session.get(ScreeningResult, row_id)
        services.correct_result(session, user(session, "qa"), row_id, reason="typo: the lab report says negative",
                                marker=row.marker, result="negative", sample_date=row.sample_date,
                                lab_reference=row.lab_reference, password=PASSWORD)
        session.commit()
    page = page_of(qa, scene["donor_id"])
    assert f'id="lookback-close-{lookback_id}"' in page and "corrected by QA to negative (signed)" in page
    closed = qa.post(f"/donors/lookbacks/{lookback_id}/close",
                     data={"lookback-note": "Lab called: the report says negative, typed positive."})
    assert closed.status_code == 302, closed.get_data(as_text=True)[:2000]
    with db.new_session() as session:
        lookback = session.get(DonorLookback, lookback_id)
        assert lookback.closed_at is not None and "corrected by QA to negative, signed" in lookback.closure_note
        decisions.decide(session, user(session, "qa2"), scene["donor_id"], APPROVED, PASSWORD,  # s44: a comment
                         comment="Lab report read: the positive was a typing error")  # on the corrected positive
        session.commit()
        donor = session.get(Donor, scene["donor_id"])
        assert donor.status == "approved" and clearance_of(session, donor.id, donor.status) is None


def test_s38_qa_closes_a_lookback_without_lots_then_corrects_signed_and_the_approver_reads_the_old_value(
        app, users, client_as, db_session):  # noqa: F811
    donor_id, row_id, lookback_id = _late_positive(db_session)
    qa = client_as("qa")
    page = page_of(qa, donor_id)
    assert f'id="lookback-close-{lookback_id}"' in page  # no lot: closing with a note is offered
    short = qa.post(f"/donors/lookbacks/{lookback_id}/close", data={"lookback-note": "ok"})
    assert short.status_code == 422 and "at least 20 characters" in short.get_data(as_text=True)
    closed = qa.post(f"/donors/lookbacks/{lookback_id}/close",
                     data={"lookback-note": "No lot was ever made from this donor; nothing issued."})
    assert closed.status_code == 302
    # a technician still may not correct it; QA's correction needs the right password
    assert client_as("technician").post(f"/donors/results/{row_id}/correct",
                                        data=_correction(row_id)).status_code == 409
    wrong = qa.post(f"/donors/results/{row_id}/qa-correct", data=_correction(  # s44: a reason of 20+ characters
        row_id, password="wrong-one", reason="typo: the report says negative"))
    assert wrong.status_code == 401
    db_session.expire_all()
    assert db_session.get(ScreeningResult, row_id).result == "positive"
    db_session.rollback()
    done = qa.post(f"/donors/results/{row_id}/qa-correct",
                   data=_correction(row_id, password=PASSWORD, reason="typo: the report says negative"))
    assert done.status_code == 302, done.get_data(as_text=True)[:3000]
    db_session.expire_all()
    assert db_session.get(ScreeningResult, row_id).result == "negative"
    signature = db_session.scalar(select(Signature).where(Signature.entity_type == "donor_screening_result",
                                                          Signature.entity_id == str(row_id)))
    assert signature is not None and signature.meaning == services.QA_CORRECTION_MEANING
    db_session.rollback()
    decision = page_of(client_as("qa2"), donor_id)
    section = decision[decision.index('id="h-decision"'):decision.index('id="h-checklist"')]
    assert re.search(r"Anti-HCV was recorded POSITIVE on \d{4}-\d\d-\d\d, corrected to negative on "
                     r"\d{4}-\d\d-\d\d by Qa: typo: the report says negative", section), section  # printed name
    # the approval is now possible, by another QA person (qa corrected the screening), with a comment (s44)
    decisions.decide(db_session, user(db_session, "qa2"), donor_id, APPROVED, PASSWORD,
                     comment="Report LATE-HCV read: anti-HCV negative")
    db_session.commit()


def test_s38_a_lookback_closes_with_a_note_only_by_qa(app, users, db_session):  # noqa: F811
    _donor, _row, lookback_id = _late_positive(db_session)
    with pytest.raises(Exception, match="Only QA"):
        decisions.close_lookback_without_lots(db_session, user(db_session, "technician"), lookback_id,
                                              "nothing was issued from this donor")
    db_session.rollback()
    assert db_session.get(DonorLookback, lookback_id).closed_at is None


def test_s38_childbearing_yes_is_judged_whatever_the_sex(app, users, db_session):  # noqa: F811
    with pytest.raises(ValidationFailed) as refused:
        services.register_donor(db_session, user(db_session, "technician"),
                                details("marrow_ssc_bm", sex="male", childbearing_potential=True, contraception=False))
    assert "childbearing_potential" in refused.value.errors
    db_session.rollback()
    donor_id = screened_donor(db_session, "marrow_ssc_bm", contraception=False)
    donor = db_session.get(Donor, donor_id)
    facts = dataclasses.replace(facts_of(db_session, donor), sex="male")  # recorded before the entry check
    judged = evaluate(rule_sets()["marrow_ssc_bm"], facts)
    contraception = [r for r in judged.reasons if "ontraception" in r.text]
    assert contraception and contraception[0].outcome == "failed", contraception
    db_session.rollback()


def test_s38_a_familial_donor_is_directed_to_a_patient_of_its_own_protocol(app, users, db_session):  # noqa: F811
    with pytest.raises(ValidationFailed, match="protocol SLE-UC") as refused:
        services.register_donor(db_session, user(db_session, "technician"),
                                details("marrow_ssc_bm", recipient_code="SLE-UC-001"))
    assert refused.value.errors.get("recipient_code")
    db_session.rollback()


def test_s38_a_second_familial_donor_for_a_recipient_is_said_at_registration(app, users, client_as,
                                                                             db_session):  # noqa: F811
    first = screened_donor(db_session, "marrow_ssc_bm", recipient_code="SSC-BM-007")
    code = db_session.get(Donor, first).code
    db_session.commit()
    tech = client_as("technician")
    response = tech.post("/donors/new", data={
        "rule_set_id": "marrow_ssc_bm", "donor_type": "familial", "relationship": "parent",
        "recipient_code": "SSC-BM-007", "sex": "female"}, follow_redirects=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"Recipient SSC-BM-007 already has familial donor {code} (screening)" in html


def test_s38_the_donor_list_says_why(app, users, client_as, db_session):  # noqa: F811
    donor_id, _row, _lookback = _late_positive(db_session)
    assessed = screened_donor(db_session, "marrow_ssc_bm", results={"anti_hbc": "positive"})
    decisions.decide(db_session, user(db_session, "qa"), assessed, APPROVED, PASSWORD,
                     comment="HBsAg negative, anti-HBs positive, HBV DNA undetectable: resolved infection, accepted.")
    codes = {d: db_session.get(Donor, d).code for d in (donor_id, assessed)}
    db_session.commit()
    html = client_as("clinician").get("/donors").get_data(as_text=True)
    rows = {code: html[html.index(f">{code}</a>"):].split("</tr>")[0] for code in codes.values()}
    assert "REACTIVE result" in rows[codes[donor_id]] and "lookback L-" in rows[codes[donor_id]]
    assert "approved on a risk assessment" in rows[codes[assessed]]


def test_s38_a_cord_mother_is_not_male_and_cord_forms_hide_unused_fields(app, users, client_as,
                                                                         db_session):  # noqa: F811
    with pytest.raises(ValidationFailed) as refused:
        services.register_donor(db_session, user(db_session, "technician"), details("cord_eu", sex="male"))
    assert "sex" in refused.value.errors or refused.value.field == "sex"
    db_session.rollback()
    html = client_as("technician").get("/donors/new?rule_set=cord_eu").get_data(as_text=True)
    for name in ("weight_kg", "social_security", "contraception", "childbearing_potential"):
        assert f'data-field="{name}" hidden' in html, name
    marrow = client_as("technician").get("/donors/new?rule_set=marrow_ssc_bm").get_data(as_text=True)
    assert 'data-field="contraception">' in marrow


def test_s38_words_marker_result_and_questions(app, users, client_as, db_session):  # noqa: F811
    marrow = screened_donor(db_session, "marrow_ssc_bm")
    adipose = screened_donor(db_session, "adipose_at_don")
    db_session.commit()
    tech = client_as("technician")
    page = page_of(tech, marrow)
    assert "HIV PCR (NAT)" in page and "(NAT) (NAT)" not in page
    refused = tech.post(f"/donors/{marrow}/results", data={"result-marker": "anti_hcv", "result-result": "maybe",
                                                          "result-sample_date": TODAY.isoformat(),
                                                          "result-lab_reference": "X-1"})
    assert refused.status_code == 422
    words = refused.get_data(as_text=True)
    assert "Result: choose negative, positive or indeterminate" in words and "Not a valid choice" not in words
    checklist = page_of(tech, adipose)
    question = "Active generalised infection (viral, parasitic, tuberculosis, leprosy...)?"
    assert checklist.count(question) >= 1
    assert f"<td>{question}</td><td>{question}" not in checklist
    assert f"<td>{question}</td><td>No.</td>" in checklist
