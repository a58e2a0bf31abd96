"""Ninth review of donor eligibility (DOMAIN.md sections 3 and 8), on SQLite and PostgreSQL.

1. The donor page did not say which rules decided a signed decision: its history showed the meaning and the rule set
   only, and the checklist is judged now, so once a decision was superseded nobody could read on the page why QA had
   signed it (the excluding rule was gone from the page).
2. A donor approved in the past, whose approval a negative retest superseded (no lookback: nothing new against the
   donor), then excluded by a later answer and signed "Donor ineligible" by QA, got no lookback: the lots made and
   issued under that approval were never put before QA for a recall.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mscbatch.donors import decisions, services
from mscbatch.donors.models import APPROVED, INELIGIBLE, DonorLookback, EligibilityDecision, ScreeningResult
from tests.conftest import PASSWORD
from tests.integration.test_donors import (
    DATES,
    approved_donor,
    count,
    db_session,  # noqa: F401 (fixture)
    page_of,
    screened_donor,
    user,
)


def _history(html: str) -> str:
    """The QA decision section of the donor page (its history), not the checklist judged now."""
    return html[html.index('id="h-decision"'):html.index('id="h-checklist"')]


# ---- 1. the signed decision says which rules decided it ----------------------------------------------------------

def test_a_superseded_ineligible_decision_still_says_which_rule_excluded_the_donor(app, users, client_as,
                                                                                  db_session):  # noqa: F811
    tech = user(db_session, "technician")
    donor_id = screened_donor(db_session, "adipose_at_don", results={"hev": "positive"})
    decisions.decide(db_session, user(db_session, "qa"), donor_id, INELIGIBLE, PASSWORD)
    # the positive was a typing error: QA reopens, the technician corrects it, the checklist now says eligible
    decisions.reopen_screening(db_session, user(db_session, "qa"), donor_id, "Lab reports a transcription error")
    hev = db_session.scalar(select(ScreeningResult).where(ScreeningResult.donor_id == donor_id,
                                                          ScreeningResult.marker == "hev"))
    services.correct_result(db_session, tech, hev.id, reason="typed positive, report says negative", marker="hev",
                            result="negative", sample_date=hev.sample_date, lab_reference=hev.lab_reference)
    db_session.commit()

    html = page_of(client_as("qa"), donor_id)
    assert 'id="engine-status">eligible<' in html
    history = _history(html)
    assert "As signed, decided by:" in history
    assert '<li data-rule="marker.hev">Excludes: Anti-HEV positive' in history  # the rule, in the signed words


def test_an_approval_says_every_criterion_was_met_when_signed(app, users, client_as, db_session):  # noqa: F811
    donor_id = approved_donor(db_session)
    db_session.commit()
    history = _history(page_of(client_as("qa"), donor_id))
    signed = db_session.scalar(select(EligibilityDecision).where(EligibilityDecision.donor_id == donor_id))
    assert f"As signed: all {len(signed.reasons)} criteria of the rule set met." in history
    db_session.rollback()


# ---- 2. "Donor ineligible" after a past approval opens a lookback -------------------------------------------------

def _approved_then_retested_negative(session: Any) -> tuple[int, int]:
    """An adipose donor approved by QA, whose approval a negative retest superseded (no lookback opened)."""
    donor_id = approved_donor(session)
    approval_id = session.scalar(select(EligibilityDecision.id).where(EligibilityDecision.donor_id == donor_id))
    services.record_result(session, user(session, "technician"), donor_id, marker="anti_hcv", result="negative",
                           sample_date=DATES["adipose_at_don"][1], lab_reference="RETEST-NEG")
    assert count(session, DonorLookback) == 0
    return donor_id, approval_id


def test_qa_signing_ineligible_a_donor_approved_in_the_past_opens_a_lookback(app, users, db_session):  # noqa: F811
    donor_id, approval_id = _approved_then_retested_negative(db_session)
    # the donor then tells the nurse of a past cancer: the technician corrects the answer, QA signs ineligible
    services.answer_questionnaire(db_session, user(db_session, "technician"), donor_id,
                                  {"cancer_history": ("yes", "breast cancer 2015")}, reason="donor call")
    decisions.decide(db_session, user(db_session, "qa2"), donor_id, INELIGIBLE, PASSWORD)
    db_session.commit()
    lookbacks = list(db_session.scalars(select(DonorLookback).where(DonorLookback.donor_id == donor_id)))
    assert len(lookbacks) == 1 and lookbacks[0].closed_at is None
    assert lookbacks[0].superseded_decision_id == approval_id and lookbacks[0].triggering_result_id is None
    assert "QA signed 'Donor ineligible'" in lookbacks[0].reason
    assert "lots made from this donor under that approval may have been issued" in lookbacks[0].reason
    db_session.rollback()


def test_ineligible_opens_no_lookback_for_a_donor_never_approved_or_with_one_open(app, users, db_session):  # noqa: F811
    never = screened_donor(db_session, "adipose_at_don", results={"hev": "positive"})
    decisions.decide(db_session, user(db_session, "qa"), never, INELIGIBLE, PASSWORD)
    assert count(db_session, DonorLookback) == 0

    donor_id = approved_donor(db_session)
    services.record_result(db_session, user(db_session, "technician"), donor_id, marker="anti_hcv",
                           result="positive", sample_date=DATES["adipose_at_don"][1], lab_reference="LATE-POS")
    assert count(db_session, DonorLookback) == 1  # the late positive opened it
    decisions.decide(db_session, user(db_session, "qa2"), donor_id, INELIGIBLE, PASSWORD)
    assert count(db_session, DonorLookback) == 1  # the open one already lists every lot of the donor
    assert db_session.scalar(select(EligibilityDecision.meaning).where(
        EligibilityDecision.donor_id == donor_id, EligibilityDecision.superseded_at.is_(None))) == INELIGIBLE
    db_session.rollback()


def test_approving_again_after_a_negative_retest_opens_no_lookback(app, users, db_session):  # noqa: F811
    donor_id, _approval_id = _approved_then_retested_negative(db_session)
    decisions.decide(db_session, user(db_session, "qa2"), donor_id, APPROVED, PASSWORD)
    assert count(db_session, DonorLookback) == 0
