"""Third review of donors (DOMAIN.md sections 2 and 3): the reviewer's reproductions (/tmp/review-donors/), each
through the pages or the JSON API as the role a user would have, on SQLite and PostgreSQL.

1. a familial donor's intended recipient could be changed after lots were made from it (bags then went to another
   patient); 2. a later indeterminate / positive on a sample after the deciding negative was ignored; 3. a lot's
   "donor pending" flag was frozen at the lot's start; 4. a recipient code growing past 40 characters when
   capitalised was a 500; 5. the cord maternal window's "to confirm" was shown nowhere; 6. a donor awaiting only a
   documented risk assessment could never be approved; 7. a "yes" to a question that excludes nobody was said to
   exclude the donor."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.core.eligibility import MarkerResult, evaluate
from mscbatch.database import utcnow
from mscbatch.donors import decisions, services
from mscbatch.donors.models import APPROVED, Donor, EligibilityDecision
from mscbatch.donors.queries import get_donor, rule_sets
from mscbatch.patients.inventory import candidate_bags
from mscbatch.patients.queries import protocols
from tests.conftest import PASSWORD, add_user, api_token_for, screening_seen
from tests.integration import patient_factories as pf
from tests.integration.lot_factories import COLLECTION_DAYS_AGO, approved_adipose_donor, start_lot
from tests.integration.lot_factories import TODAY as LOT_TODAY
from tests.integration.test_donors import (
    DATES,
    TODAY,
    count,
    db_session,  # noqa: F401 (fixture)
    page_of,
    register_through_the_form,
    screened_donor,
    user,
)
from tests.unit.test_eligibility import ADIPOSE, CORD, day, with_results


def _api(app: Any, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_for(app, username)}"}


def _edit_data(donor: Donor) -> dict[str, str]:
    """The edit form as the technician posts it (read before the test's session lets go of the database)."""
    return {"rule_set_id": donor.rule_set_id, "donor_type": donor.donor_type, "relationship": donor.relationship or "",
            "recipient_code": donor.recipient_code or "", "initials": "JD", "sex": "female", "weight_kg": "70",
            "consent_signed": "yes", "consent_date": donor.consent_date.isoformat(), "social_security": "yes",
            "childbearing_potential": "yes", "contraception": "yes", "date_of_birth": donor.date_of_birth.isoformat(),
            "planned_collection_date": donor.planned_collection_date.isoformat(), "reason": "typo in recipient"}


# ---- 1. the intended recipient is fixed once a lot exists --------------------------------------------------

def test_the_intended_recipient_of_a_donor_with_released_directed_bags_cannot_be_changed(app, users, db_session,  # noqa: F811
                                                                                           client_as):
    donor_id = screened_donor(db_session, "marrow_ssc_bm")  # familial, recipient SSC-BM-001
    decisions.decide(db_session, user(db_session, "qa"), donor_id, APPROVED, PASSWORD)
    pf.lot_with_bags(db_session, user(db_session, "technician"), get_donor(db_session, donor_id), product="BM-MSC")
    db_session.commit()
    directed = {c.intended_recipient_id for c, _b, _l in candidate_bags(db_session, protocols()[pf.SSC], utcnow()).values()}
    assert directed == {"SSC-BM-001"}
    db_session.rollback()
    # a negative NAT recorded later supersedes the approval (no lookback): the donor's details open again
    services.record_result(db_session, user(db_session, "technician"), donor_id, marker="hiv_nat", result="negative",
                           sample_date=DATES["marrow_ssc_bm"][1], lab_reference="LATE-NEG")
    db_session.commit()
    data = _edit_data(get_donor(db_session, donor_id))
    db_session.rollback()
    tech = client_as("technician")
    for changes, field in (({"recipient_code": "SSC-BM-002"}, "recipient_code"),
                           ({"relationship": "parent"}, "relationship")):
        response = tech.post(f"/donors/{donor_id}/edit", data={**data, **changes})
        html = response.get_data(as_text=True)
        assert response.status_code == 409, (field, response.status_code)
        assert f"{field}-error" in html, field
        assert "a lot has been made from this donor" in html and "directed to SSC-BM-001 only" in html
    # the other details may still be corrected (with a reason)
    response = tech.post(f"/donors/{donor_id}/edit", data={**data, "weight_kg": "71"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert get_donor(db_session, donor_id).recipient_code == "SSC-BM-001"
    decisions.decide(db_session, user(db_session, "qa2"), donor_id, APPROVED, PASSWORD)
    db_session.commit()
    directed = {c.intended_recipient_id for c, _b, _l in candidate_bags(db_session, protocols()[pf.SSC], utcnow()).values()}
    assert directed == {"SSC-BM-001"}  # re-approved: the bags still go to the recipient they were made for


def test_an_unrelated_donor_with_a_lot_cannot_become_familial(app, users, db_session, client_as):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    start_lot(db_session, donor_id)
    services.record_result(db_session, user(db_session, "technician"), donor_id, marker="hev", result="negative",
                           sample_date=LOT_TODAY - timedelta(days=COLLECTION_DAYS_AGO - 1), lab_reference="LATE-NEG")
    db_session.commit()
    data = _edit_data(get_donor(db_session, donor_id))
    db_session.rollback()
    response = client_as("technician").post(f"/donors/{donor_id}/edit", data={
        **data, "donor_type": "familial", "relationship": "sibling", "recipient_code": "SLE-UC-001"})
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and "donor_type-error" in html
    assert "not directed to one recipient (unrelated donor)" in html
    db_session.rollback()
    assert get_donor(db_session, donor_id).donor_type == "unrelated"


def test_before_any_lot_the_recipient_may_still_be_corrected(app, users, db_session, client_as):  # noqa: F811
    donor_id = screened_donor(db_session, "marrow_ssc_bm")
    data = _edit_data(get_donor(db_session, donor_id))
    db_session.rollback()
    response = client_as("technician").post(f"/donors/{donor_id}/edit", data={**data, "recipient_code": "ssc-bm-002"})
    assert response.status_code == 302, response.get_data(as_text=True)
    db_session.rollback()
    assert get_donor(db_session, donor_id).recipient_code == "SSC-BM-002"


# ---- 2. a later non-negative result is never ignored ----------------------------------------------------

def test_a_later_indeterminate_outside_the_window_does_not_leave_the_donor_eligible(app, users, db_session, client_as):  # noqa: F811
    collection = TODAY - timedelta(days=30)
    donor_id = screened_donor(db_session, "adipose_at_don", planned_collection_date=collection,
                              sample=collection + timedelta(days=1))  # window 0..+7: all negative at +1
    decisions.decide(db_session, user(db_session, "qa"), donor_id, APPROVED, PASSWORD)
    db_session.rollback()
    api = app.test_client()
    tech = _api(app, "technician")
    # the lab reports a repeat-reactive / indeterminate anti-HIV on a sample taken 20 days after the donation
    response = api.post(f"/api/v1/donors/{donor_id}/results", headers=tech, json={
        "marker": "anti_hiv_1_2", "result": "indeterminate",
        "sample_date": (collection + timedelta(days=20)).isoformat(), "lab_reference": "LATE-IND"})
    assert response.status_code == 201
    state = api.get(f"/api/v1/donors/{donor_id}/eligibility", headers=tech).get_json()
    hiv = next(r for r in state["reasons"] if r["rule_id"] == "marker.anti_hiv_1_2")
    assert state["open_lookbacks"] == 1
    assert hiv["outcome"] == "missing" and "LATER sample is indeterminate" in hiv["text"], hiv["text"]
    assert state["status"] == "pending"
    response = client_as("qa2").post(f"/donors/{donor_id}/decision", data={
        **screening_seen(client_as("qa2"), donor_id), "decision-meaning": APPROVED,
                                                                           "decision-password": PASSWORD})
    assert response.status_code == 409
    # a negative retest sampled after the indeterminate resolves it: QA may approve again
    response = api.post(f"/api/v1/donors/{donor_id}/results", headers=tech, json={
        "marker": "anti_hiv_1_2", "result": "negative",
        "sample_date": (collection + timedelta(days=25)).isoformat(), "lab_reference": "RETEST"})
    assert response.status_code == 201
    assert api.get(f"/api/v1/donors/{donor_id}/eligibility", headers=tech).get_json()["status"] == "eligible"


def test_a_later_positive_outside_the_window_counts_as_the_rules_positive() -> None:
    hiv = evaluate(ADIPOSE, with_results(ADIPOSE, MarkerResult("anti_hiv_1_2", "serology", "positive", day(30))))
    assert hiv.status == "ineligible"
    assert "LATER sample is positive" in hiv.reason_for("marker.anti_hiv_1_2").text
    hbc = evaluate(CORD, with_results(CORD, MarkerResult("anti_hbc", "serology", "positive", day(30))))
    assert hbc.reason_for("marker.anti_hbc").outcome == "risk_assessment"  # Annex II 1.3: as its rule says


def test_an_optional_marker_with_an_indeterminate_outside_its_window_is_not_dropped() -> None:
    late = MarkerResult("hiv_nat", "NAT", "indeterminate", day(20))  # AT-DON does not ask NAT; judged if recorded
    decision = evaluate(ADIPOSE, with_results(ADIPOSE, late))
    reason = decision.reason_for("marker.hiv_nat")
    assert decision.status == "pending" and reason is not None and reason.outcome == "missing"
    assert "INDETERMINATE" in reason.text
    retest = MarkerResult("hiv_nat", "NAT", "negative", day(27))
    assert evaluate(ADIPOSE, with_results(ADIPOSE, late, retest)).status == "eligible"
    later_same = evaluate(ADIPOSE, with_results(ADIPOSE, MarkerResult("hev", "serology", "indeterminate", day(20)),
                                                MarkerResult("hev", "serology", "negative", day(20))))
    assert later_same.status == "pending"  # on one day the worst counts


# ---- 3. the lot list and the API follow the donor gate now ----------------------------------------------

def test_the_lot_list_and_api_follow_the_donor_gate_now(app, users, db_session, client_as):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    lot_id = start_lot(db_session, donor_id)
    services.record_result(db_session, user(db_session, "technician"), donor_id, marker="anti_hiv_1_2",
                           result="positive", sample_date=LOT_TODAY - timedelta(days=COLLECTION_DAYS_AGO - 2),
                           lab_reference="LATE-POS")
    db_session.commit()
    lot = app.test_client().get(f"/api/v1/lots/{lot_id}", headers=_api(app, "qa")).get_json()
    assert "The donor is now ineligible" in client_as("qa").get(f"/lots/{lot_id}").get_data(as_text=True)
    assert lot["eligibility_pending"] is True and lot["donor_gate"] == "ineligible", lot
    assert lot["donor_gate_at_start"] == "approved"
    row = client_as("qa").get("/lots").get_data(as_text=True).split(lot["lot_number"], 1)[1][:600]
    assert "donor ineligible" in row


def test_a_lot_started_pending_is_no_longer_flagged_once_qa_approves_the_donor(app, users, db_session, client_as):  # noqa: F811
    collected = LOT_TODAY - timedelta(days=COLLECTION_DAYS_AGO)
    donor_id = screened_donor(db_session, "adipose_at_don", planned_collection_date=collected,
                              sample=collected + timedelta(days=1), skip=("anti_hiv_1_2",))
    lot_id = start_lot(db_session, donor_id)
    db_session.commit()
    api, headers = app.test_client(), _api(app, "qa")
    lot = api.get(f"/api/v1/lots/{lot_id}", headers=headers).get_json()
    assert lot["eligibility_pending"] is True and lot["donor_gate"] == "pending"
    assert "donor pending" in client_as("qa").get("/lots").get_data(as_text=True).split(lot["lot_number"], 1)[1][:600]
    services.record_result(db_session, user(db_session, "technician"), donor_id, marker="anti_hiv_1_2",
                           result="negative", sample_date=collected + timedelta(days=1), lab_reference="HIV-NEG")
    decisions.decide(db_session, user(db_session, "qa"), donor_id, APPROVED, PASSWORD)
    db_session.commit()
    lot = api.get(f"/api/v1/lots/{lot_id}", headers=headers).get_json()
    assert lot["eligibility_pending"] is False and lot["donor_gate"] == "approved", lot
    assert lot["donor_gate_at_start"] == "pending"
    listed = next(item for item in api.get("/api/v1/lots", headers=headers).get_json()["items"] if item["id"] == lot_id)
    assert listed["eligibility_pending"] is False
    row = client_as("qa").get("/lots").get_data(as_text=True).split(lot["lot_number"], 1)[1][:600]
    assert "donor pending" not in row and "donor ineligible" not in row


# ---- 4. the recipient code is judged as it is stored --------------------------------------------------------

def test_a_recipient_code_that_grows_when_capitalised_is_refused_naming_the_field(app, client_as, db_session):  # noqa: F811
    tech = client_as("technician")
    for code in ("\ufb03" * 14, "SSC BM 1", "-X"):
        response = register_through_the_form(tech, rule_set_id="marrow_ssc_bm", donor_type="familial",
                                             relationship="sibling", recipient_code=code)
        assert response.status_code == 422, (code, response.status_code)
        html = response.get_data(as_text=True)
        assert "recipient_code-error" in html and "trial patient code" in html
    assert db_session.scalar(select(Donor.id)) is None


# ---- 5. the cord maternal window is flagged "to confirm" ----------------------------------------------------

def test_the_cord_donor_page_and_api_say_the_maternal_window_is_to_be_confirmed(app, users, db_session, client_as):  # noqa: F811
    cord_id = screened_donor(db_session, "cord_eu")
    adipose_id = screened_donor(db_session, "adipose_at_don")
    db_session.rollback()
    html = page_of(client_as("qa"), cord_id)
    assert "to-confirm-badge" in html and ">to confirm<" in html
    assert "-7..+7 days from the collection" in html and "US practice" in html
    assert "to-confirm-badge" not in page_of(client_as("qa"), adipose_id)
    api, headers = app.test_client(), _api(app, "qa")
    windows = api.get(f"/api/v1/donors/{cord_id}/eligibility", headers=headers).get_json()["sample_windows"]
    assert [(w["from_days"], w["to_days"], w["to_confirm"]) for w in windows] == [(-7, 7, True)]
    assert "to confirm" in windows[0]["source"]
    windows = api.get(f"/api/v1/donors/{adipose_id}/eligibility", headers=headers).get_json()["sample_windows"]
    assert [(w["from_days"], w["to_days"], w["to_confirm"]) for w in windows] == [(0, 7, False), (-30, 7, False)]


# ---- 6. QA approves on a documented risk assessment ---------------------------------------------------------

ASSESSMENT = "Risk assessment RA-12: anti-HBs 250 IU/L, HBV DNA not detected; acceptable."


def test_qa_can_approve_an_anti_hbc_only_cord_donor_with_a_documented_risk_assessment(app, users, db_session,  # noqa: F811
                                                                                       client_as):
    donor_id = screened_donor(db_session, "cord_eu", results={"anti_hbc": "positive"})
    db_session.rollback()
    qa = client_as("qa")
    assert 'id="risk-assessment-needed"' in page_of(qa, donor_id)
    sign = {"decision-meaning": APPROVED, "decision-password": PASSWORD}
    for comment in ("", "acceptable, see file"):  # none, or too short to document anything
        response = qa.post(f"/donors/{donor_id}/decision", data={
            **screening_seen(qa, donor_id), **sign, "decision-comment": comment})
        assert response.status_code == 422, response.status_code
        assert "comment-error" in response.get_data(as_text=True)
    assert count(db_session, EligibilityDecision) == 0
    tech_qa = client_as("technician")  # the person who entered the screening never signs it
    assert tech_qa.post(f"/donors/{donor_id}/decision", data={
        **screening_seen(qa, donor_id), **sign, "decision-comment": ASSESSMENT}).status_code == 403
    response = qa.post(f"/donors/{donor_id}/decision", data={
        **screening_seen(qa, donor_id), **sign, "decision-comment": ASSESSMENT})
    assert response.status_code == 302, response.status_code
    html = page_of(qa, donor_id)
    assert "Documented risk assessment" in html and ASSESSMENT in html
    db_session.rollback()
    decision = db_session.scalar(select(EligibilityDecision).where(EligibilityDecision.donor_id == donor_id))
    assert decision.engine_status == "pending" and decision.comment == ASSESSMENT
    audited = db_session.scalars(select(AuditEvent.new_value).where(
        AuditEvent.entity_type == "donor_eligibility_decision", AuditEvent.entity_id == str(decision.id))).all()
    assert any(ASSESSMENT in (value or "") for value in audited)
    assert get_donor(db_session, donor_id).status == "approved"
    assert decisions.donor_gate(db_session, donor_id) == "approved"  # a lot from it may be released
    db_session.rollback()
    state = app.test_client().get(f"/api/v1/donors/{donor_id}/eligibility", headers=_api(app, "qa")).get_json()
    assert state["current_decision"]["risk_assessment"] == ASSESSMENT


def test_a_risk_assessment_does_not_approve_a_donor_with_any_other_blocking_reason(app, users, db_session, client_as):  # noqa: F811
    donor_id = screened_donor(db_session, "cord_eu", results={"anti_hbc": "positive"}, skip=("anti_hcv",))
    db_session.rollback()
    response = client_as("qa").post(f"/donors/{donor_id}/decision", data={**screening_seen(client_as("qa"), donor_id),
        "decision-meaning": APPROVED, "decision-password": PASSWORD, "decision-comment": ASSESSMENT})
    assert response.status_code == 409
    assert "Eligibility cannot be approved" in response.get_data(as_text=True)
    assert count(db_session, EligibilityDecision) == 0


def test_a_risk_assessed_approval_does_not_cover_a_new_risk(app, users, db_session):  # noqa: F811
    donor_id = screened_donor(db_session, "cord_eu", results={"anti_hbc": "positive"})
    decisions.decide(db_session, user(db_session, "qa"), donor_id, APPROVED, PASSWORD, ASSESSMENT)
    db_session.commit()
    assert decisions.donor_gate(db_session, donor_id) == "approved"
    # a reactive syphilis test recorded later reopens the approval: the gate is pending until QA assesses it too
    services.record_result(db_session, user(db_session, "technician"), donor_id, marker="syphilis", result="positive",
                           sample_date=DATES["cord_eu"][1], lab_reference="TPHA")
    db_session.commit()
    assert decisions.donor_gate(db_session, donor_id) == "pending"
    # and the gate says why: the new risk, which the assessment signed before never covered
    gate, reasons = decisions.donor_gate_reasons(db_session, donor_id, DATES["cord_eu"][0])
    assert gate == "pending" and any("syphilis" in reason.lower() for reason in reasons), reasons


# ---- 7. a "yes" that excludes nobody is not said to exclude --------------------------------------------------

def test_a_yes_to_a_non_excluding_question_is_not_said_to_exclude(app, users, db_session, client_as):  # noqa: F811
    donor_id = screened_donor(db_session, "cord_eu", skip=("htlv_1_2",))
    db_session.rollback()
    tech = client_as("technician")
    response = tech.post(f"/donors/{donor_id}/questionnaire", data={
        "q_htlv_high_prevalence_origin": "yes", "d_htlv_high_prevalence_origin": "",
        "reason": "mother born in an endemic area"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "excludes the donor" not in html
    assert "does not exclude the donor (the anti-HTLV-I/II test is required)" in html
    response = tech.post(f"/donors/{donor_id}/questionnaire", data={
        "q_malignancy": "yes", "d_malignancy": "", "reason": "history taken again"})
    assert "A &#39;yes&#39; answer excludes the donor" in response.get_data(as_text=True)


def test_every_rule_file_lists_its_windows() -> None:
    for rule_set in rule_sets().values():
        windows = rule_set.windows()
        assert windows and windows[0].from_days == rule_set.sample_window.from_days


def test_the_demo_has_a_cord_donor_awaiting_a_documented_risk_assessment(app, db_session):  # noqa: F811
    from mscbatch.auth.services import create_user
    from mscbatch.donors.demo import DEMO_PASSWORD, RISK_CORD_INITIALS, demo_cord_donor, seed_donors
    from mscbatch.donors.queries import evaluate_donor

    for username, role in (("tech", "technician"), ("qa", "qa")):  # the demo's users, with the demo's password
        create_user(db_session, None, username=username, full_name=f"Demo {role}", password=DEMO_PASSWORD,
                    roles=[role], hash_profile="fast")
    add_user(app, "qa2", ["qa"])
    lines = seed_donors(db_session)
    db_session.commit()
    assert any("risk assessment" in line for line in lines)
    donor = demo_cord_donor(db_session, RISK_CORD_INITIALS)
    evaluation = evaluate_donor(db_session, donor)
    assert evaluation.status == "pending" and decisions.only_risk_assessments(evaluation)
    assert [r.rule_id for r in evaluation.blocking_reasons] == ["marker.anti_hbc"]
    decisions.decide(db_session, user(db_session, "qa2"), donor.id, APPROVED, PASSWORD, ASSESSMENT)
    db_session.commit()
    assert decisions.donor_gate(db_session, donor.id) == "approved"
