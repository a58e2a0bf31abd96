"""Review 4, donors and recall report: fixes, each shown the way its user meets it.

1. A positive for a marker whose rule says a positive excludes (anti-HIV, HBsAg, anti-HCV, HTLV...) excludes the
   donor even when a later negative is recorded, or when it lies outside the window with no sample inside it (it was
   "pending: risk assessment" / "missing", and QA could approve it with a comment). A positive entered by mistake is
   corrected by the technician (after QA reopens a signed decision) and the donor is eligible again.
2. QA's signature is given on the screening QA read: the donor page's decision form carries its fingerprint, and a
   screening changed meanwhile (a colleague recorded a result) is refused with 409, nothing signed.
3. A late positive opens a lookback even when a late negative had already superseded the approval.
4. The recall report says "on the ward" for a held bag that left the unit and is no longer allocated.
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.donors import decisions
from mscbatch.donors import services as donor_services
from mscbatch.donors.models import (
    APPROVED,
    INELIGIBLE,
    Donor,
    DonorLookback,
    EligibilityDecision,
    ScreeningResult,
)
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.withdrawal import withdraw
from mscbatch.recall import services as recall_services
from mscbatch.recall.report import recall_report
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import lot_with_bags, patient
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_donors import (  # noqa: F401
    DATES,
    TODAY,
    db_session,
    page_of,
    screened_donor,
    user,
)
from tests.integration.test_recall_support import set_status

RA = ("Risk assessment RA-31: anti-HBc reactive, HBsAg negative, HBV DNA not detected, anti-HBs 180 IU/L: past "
      "resolved infection; donor acceptable.")
_DIGEST = re.compile(r'<input[^>]*name="decision-screening"[^>]*>')


def _digest(html: str) -> str:
    found = _digest_or_none(html)
    assert found, "the decision form carries the screening's fingerprint"
    return found


def _digest_or_none(html: str) -> str | None:
    tag = _DIGEST.search(html)
    value = re.search(r'value="([0-9a-f]{64})"', tag.group(0)) if tag else None
    return value.group(1) if value else None


def _eligibility(app: Any, donor_id: int) -> dict[str, Any]:
    response = app.test_client().get(f"/api/v1/donors/{donor_id}/eligibility",
                                     headers={"Authorization": f"Bearer {api_token_for(app, 'qa')}"})
    assert response.status_code == 200, response.status_code
    return response.get_json()


# ---- 1. a positive on record excludes where its rule says so ------------------------------------------------

def test_a_positive_then_a_later_negative_anti_hiv_excludes_and_a_mistyped_positive_is_put_right(
        app, users, db_session, client_as):  # noqa: F811
    donor_id = screened_donor(db_session, "cord_eu")  # every marker negative, sampled at -1 day
    db_session.commit()
    tech, qa = client_as("technician"), client_as("qa")
    # the technician records an earlier reactive anti-HIV (in the window, before the negative) through the page
    response = tech.post(f"/donors/{donor_id}/results", data={
        "result-marker": "anti_hiv_1_2", "result-result": "positive",
        "result-sample_date": (TODAY - timedelta(days=5)).isoformat(), "result-lab_reference": "HIV-REACTIVE"})
    assert response.status_code == 302, response.status_code
    html = page_of(qa, donor_id)
    assert 'id="engine-status">ineligible<' in html
    row = re.search(r'data-rule="marker.anti_hiv_1_2">(.*?)</tr>', html, re.S)
    assert row and "Excludes" in row.group(1) and "does not clear it" in row.group(1)
    assert "any other by the technician with a reason" in row.group(1)  # how a typing error is put right
    assert 'id="risk-assessment-needed"' not in html
    # QA cannot approve it with a "risk assessment" comment
    response = qa.post(f"/donors/{donor_id}/decision", data={
        "decision-meaning": APPROVED, "decision-comment": RA, "decision-password": PASSWORD,
        "decision-screening": _digest(html)})
    assert response.status_code == 409 and "Eligibility cannot be approved" in response.get_data(as_text=True)
    db_session.rollback()
    assert db_session.scalar(select(func.count()).select_from(EligibilityDecision)) == 0
    db_session.rollback()
    # QA signs ineligible as the screening says; the lab then finds the positive was a typing error: QA reopens,
    # the technician corrects the result with a reason, and the donor is eligible and can be approved
    assert qa.post(f"/donors/{donor_id}/decision", data={
        "decision-meaning": INELIGIBLE, "decision-password": PASSWORD,
        "decision-screening": _digest(page_of(qa, donor_id))}).status_code == 302
    assert qa.post(f"/donors/{donor_id}/reopen", data={
        "reopen-reason": "Lab report HIV-REACTIVE was typed as positive: the report says negative."}).status_code == 302
    wrong = db_session.scalar(select(ScreeningResult.id).where(ScreeningResult.lab_reference == "HIV-REACTIVE"))
    db_session.rollback()
    response = tech.post(f"/donors/results/{wrong}/correct", data={
        "marker": "anti_hiv_1_2", "result": "negative", "sample_date": (TODAY - timedelta(days=5)).isoformat(),
        "lab_reference": "HIV-REACTIVE", "reason": "typing error: the lab report says negative"})
    assert response.status_code == 302, response.status_code
    html = page_of(qa, donor_id)
    assert 'id="engine-status">eligible<' in html
    response = qa.post(f"/donors/{donor_id}/decision", data={  # s44: a comment on the positive corrected away
        "decision-meaning": APPROVED, "decision-password": PASSWORD, "decision-screening": _digest(html),
        "decision-comment": "Lab report HIV-REACTIVE read: negative"})
    assert response.status_code == 302, response.status_code
    db_session.rollback()
    assert decisions.donor_gate(db_session, donor_id) == "approved"


def test_an_out_of_window_positive_hbsag_with_no_sample_in_the_window_excludes(app, users, db_session):  # noqa: F811
    collection = DATES["marrow_ssc_bm"][0]  # window -30..0 days: a sample 40 days before is outside it
    donor_id = screened_donor(db_session, "marrow_ssc_bm", skip=("hbsag",))
    donor_services.record_result(db_session, user(db_session, "technician"), donor_id, marker="hbsag",
                                 result="positive", sample_date=collection - timedelta(days=40),
                                 lab_reference="HBSAG-OLD")
    db_session.commit()
    state = _eligibility(app, donor_id)
    reason = next(r for r in state["reasons"] if r["rule_id"] == "marker.hbsag")
    assert state["status"] == "ineligible" and reason["outcome"] == "failed", reason
    assert "POSITIVE" in reason["text"] and "outside the window" in reason["text"]


def test_a_positive_anti_hbc_then_a_negative_still_waits_on_a_risk_assessment_as_its_rule_says(
        app, users, db_session, client_as):  # noqa: F811
    donor_id = screened_donor(db_session, "cord_eu")
    donor_services.record_result(db_session, user(db_session, "technician"), donor_id, marker="anti_hbc",
                                 result="positive", sample_date=TODAY - timedelta(days=5), lab_reference="HBC-R")
    db_session.commit()
    html = page_of(client_as("qa"), donor_id)
    assert 'id="engine-status">pending<' in html and 'id="risk-assessment-needed"' in html


# ---- 2. QA signs the screening QA read --------------------------------------------------------------------------

def test_a_signature_given_on_a_page_that_no_longer_shows_the_screening_is_refused(app, users, db_session,  # noqa: F811
                                                                                   client_as):
    donor_id = screened_donor(db_session, "cord_eu", results={"anti_hbc": "positive"})
    db_session.commit()
    qa = client_as("qa")
    read = page_of(qa, donor_id)  # QA reads the screening: it awaits the anti-HBc risk assessment only
    assert 'id="risk-assessment-needed"' in read
    # meanwhile a technician records a reactive treponemal test (also a risk-assessment marker)
    donor_services.record_result(db_session, user(db_session, "technician"), donor_id, marker="syphilis",
                                 result="positive", sample_date=DATES["cord_eu"][1], lab_reference="TPHA-LATE")
    db_session.commit()
    sign = {"decision-meaning": APPROVED, "decision-comment": RA, "decision-password": PASSWORD}
    response = qa.post(f"/donors/{donor_id}/decision", data={**sign, "decision-screening": _digest(read)})
    html = response.get_data(as_text=True)
    assert response.status_code == 409, response.status_code
    assert "changed since you opened the page" in html and "Read the screening again" in html
    db_session.rollback()
    assert db_session.scalar(select(func.count()).select_from(EligibilityDecision)) == 0
    db_session.rollback()
    # the refusal page shows the screening now, syphilis included; signing from it is judged on what it shows
    assert "TPHA-LATE" in html
    response = qa.post(f"/donors/{donor_id}/decision", data={**sign, "decision-screening": _digest(html)})
    assert response.status_code == 302, response.status_code
    db_session.rollback()
    decision = db_session.scalar(select(EligibilityDecision).where(EligibilityDecision.donor_id == donor_id))
    assert sorted(r["rule_id"] for r in decision.reasons if r["outcome"] == "risk_assessment") == [
        "marker.anti_hbc", "marker.syphilis"]


def test_the_decision_form_carries_the_fingerprint_of_the_screening_shown(app, users, db_session,  # noqa: F811
                                                                         client_as):
    donor_id = screened_donor(db_session, "cord_eu")
    db_session.commit()
    qa = client_as("qa")
    first = _digest(page_of(qa, donor_id))
    assert _digest(page_of(qa, donor_id)) == first  # reading again changes nothing
    donor_services.record_result(db_session, user(db_session, "technician"), donor_id, marker="anti_hcv",
                                 result="negative", sample_date=TODAY, lab_reference="HCV-2")
    db_session.commit()
    assert _digest(page_of(qa, donor_id)) != first


def test_a_decision_form_without_the_fingerprint_is_refused_and_signs_nothing(app, users, db_session,  # noqa: F811
                                                                            client_as):
    """The fingerprint is not optional: a form that does not say which screening QA read (a page from before this
    version, a hand-made post) signs nothing."""
    donor_id = screened_donor(db_session, "adipose_at_don")
    db_session.commit()
    refused = client_as("qa").post(f"/donors/{donor_id}/decision", data={
        "decision-meaning": APPROVED, "decision-password": PASSWORD})
    assert refused.status_code == 409
    assert "does not say which screening" in refused.get_data(as_text=True).replace("&#39;", "'")
    assert db_session.scalar(select(func.count()).select_from(EligibilityDecision)) == 0


# ---- 3. a late positive after a late negative opens a lookback ------------------------------------------------

def test_a_late_positive_after_a_late_negative_opens_a_lookback_linked_to_the_approval(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    tech, clinician = user(session, "technician"), user(session, "clinician")
    donor_id = screened_donor(session, "cord_eu")
    approval = decisions.decide(session, user(session, "qa"), donor_id, APPROVED, PASSWORD)
    donor = session.get(Donor, donor_id)
    code, approval_id = donor.code, approval.id
    lot_with_bags(session, tech, donor, bags=3)
    row = patient(session, clinician)
    prescriptions.prescribe(session, clinician, PASSWORD, row.id)
    allocated = sorted(b.id for b in session.scalars(select(Bag).where(Bag.status == "allocated")))
    set_status(session, tech, allocated[0], "infused")
    session.commit()
    session.close()
    lab = client_as("technician")
    post = {"result-sample_date": site_today().isoformat()}
    # a negative retest supersedes the approval (no lookback: nothing new against the donor)
    assert lab.post(f"/donors/{donor_id}/results", data={**post, "result-marker": "anti_hcv",
                    "result-result": "negative", "result-lab_reference": "RETEST-NEG"}).status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalar(select(func.count()).select_from(DonorLookback)) == 0
    session.close()
    # before QA signs again the confirmatory result comes back POSITIVE: the infused patient must be looked back on
    assert lab.post(f"/donors/{donor_id}/results", data={**post, "result-marker": "anti_hiv_1_2",
                    "result-result": "positive", "result-lab_reference": "LATE-HIV-POS"}).status_code == 302
    # a further non-negative result adds nothing while that lookback is open
    assert lab.post(f"/donors/{donor_id}/results", data={**post, "result-marker": "hbsag",
                    "result-result": "indeterminate", "result-lab_reference": "LATE-HBS-IND"}).status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    lookbacks = list(session.scalars(select(DonorLookback).where(DonorLookback.donor_id == donor_id)))
    assert len(lookbacks) == 1 and lookbacks[0].closed_at is None
    assert lookbacks[0].superseded_decision_id == approval_id
    trigger = session.get(ScreeningResult, lookbacks[0].triggering_result_id)
    assert trigger.lab_reference == "LATE-HIV-POS"
    session.close()
    page = client_as("qa").get("/release").get_data(as_text=True)
    section = page[page.index('id="lookbacks"'):page.index('id="awaiting"')]
    assert code in section  # QA sees the donor waiting for a recall decision


def test_a_positive_for_a_donor_never_approved_opens_no_lookback(app, users, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "cord_eu")
    donor_services.record_result(db_session, user(db_session, "technician"), donor_id, marker="anti_hiv_1_2",
                                 result="positive", sample_date=TODAY, lab_reference="HIV-POS")
    db_session.commit()
    assert db_session.scalar(select(func.count()).select_from(DonorLookback)) == 0


# ---- 4. the recall report: a held bag on the ward is not "in stock" ------------------------------------------

def test_the_recall_report_says_a_held_unallocated_bag_is_on_the_ward(app, users, db_session, client_as):  # noqa: F811
    ward = prescribed_bag(db_session, state="received")
    withdraw(db_session, user(db_session, "clinician"), PASSWORD, ward.patient_id, reason="consent withdrawn")
    started = recall_services.start_recall(db_session, user(db_session, "qa"), scope="lot", target_id=ward.lot_id,
                                           reason="supplier notice", password=PASSWORD)
    db_session.commit()
    report = recall_report(db_session, started.recall_id)
    line = next(line for line in report.lines if line.trace.bag.id == ward.bag_id)
    assert db_session.get(Bag, ward.bag_id).status == "received"
    assert "on the ward" in line.action and "in stock" not in line.action, line.action
    in_stock = [line for line in report.lines if line.trace.bag.status == "stored" and line.hold is not None]
    assert all("in stock" in line.action for line in in_stock)
    db_session.rollback()
    html = client_as("qa").get(f"/recalls/{started.recall_id}").get_data(as_text=True)
    assert "ON HOLD on the ward (received, not allocated to any patient)" in html


def test_a_negative_corrected_into_a_positive_after_a_past_approval_opens_a_lookback(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    donor_id = screened_donor(session, "cord_eu")
    approval = decisions.decide(session, user(session, "qa"), donor_id, APPROVED, PASSWORD)
    approval_id = approval.id
    # a negative retest supersedes the approval; the lab then finds it was typed wrongly: the report says positive
    retest = donor_services.record_result(session, user(session, "technician"), donor_id, marker="anti_hcv",
                                          result="negative", sample_date=site_today(), lab_reference="RETEST-1")
    session.commit()
    retest_id = retest.id
    assert session.scalar(select(func.count()).select_from(DonorLookback)) == 0
    session.close()
    response = client_as("technician").post(f"/donors/results/{retest_id}/correct", data={
        "marker": "anti_hcv", "result": "positive", "sample_date": site_today().isoformat(),
        "lab_reference": "RETEST-1", "reason": "typing error: the lab report says positive"})
    assert response.status_code == 302, response.status_code
    session = app.extensions["mscbatch.db"].new_session()
    lookback = session.scalar(select(DonorLookback).where(DonorLookback.donor_id == donor_id))
    assert lookback is not None and lookback.superseded_decision_id == approval_id
    assert lookback.triggering_result_id == retest_id
    session.close()


def test_an_indeterminate_corrected_into_a_positive_after_a_past_approval_opens_a_lookback(app, users, client_as):
    """Read-through of review 4: only a negative corrected into news opened a lookback; an indeterminate (or another
    marker's result) corrected into a positive did not, though recording the same positive would have."""
    from tests.integration.test_donors import DATES

    session = app.extensions["mscbatch.db"].new_session()
    donor_id = screened_donor(session, "cord_eu")  # every marker negative, in the window
    tech = user(session, "technician")
    # an earlier in-window anti-HIV indeterminate, resolved by the later negative: the donor is eligible
    ind = donor_services.record_result(session, tech, donor_id, marker="anti_hiv_1_2", result="indeterminate",
                                       sample_date=DATES["cord_eu"][1] - timedelta(days=3), lab_reference="HIV-IND")
    session.commit()
    ind_id, ind_date = ind.id, ind.sample_date
    decisions.decide(session, user(session, "qa"), donor_id, APPROVED, PASSWORD)  # lots are made and issued
    # a negative retest supersedes the approval (no lookback: nothing new against the donor)
    donor_services.record_result(session, tech, donor_id, marker="anti_hcv", result="negative",
                                 sample_date=site_today(), lab_reference="RETEST-NEG")
    session.commit()
    assert session.scalar(select(func.count()).select_from(DonorLookback)) == 0
    session.close()
    # the lab's report for the indeterminate said REACTIVE: the technician corrects it into a positive
    response = client_as("technician").post(f"/donors/results/{ind_id}/correct", data={
        "marker": "anti_hiv_1_2", "result": "positive", "sample_date": ind_date.isoformat(),
        "lab_reference": "HIV-IND", "reason": "typing error: the lab report says reactive"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    session = app.extensions["mscbatch.db"].new_session()
    n = session.scalar(select(func.count()).select_from(DonorLookback).where(DonorLookback.donor_id == donor_id))
    session.close()
    assert n == 1, "no lookback opened for an anti-HIV positive after a past approval"
