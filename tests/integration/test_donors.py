"""Donor screening and eligibility through the services and the pages (issue 3; DOMAIN.md section 3).

Each scenario is named after the rule it shows. Donors are built by the factories at the top: every criterion
of their rule set met (complete negative panel, every question answered "no") unless the test says otherwise,
with dates relative to today (a sample date may never be in the future).
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.donors import decisions, services
from mscbatch.donors.models import (
    APPROVED,
    INELIGIBLE,
    Donor,
    DonorLookback,
    EligibilityDecision,
    QuestionnaireAnswer,
    ScreeningResult,
)
from mscbatch.donors.queries import evaluate_donor, get_donor, list_donors, rule_sets
from mscbatch.errors import Conflict, PermissionDenied, RecordLocked, ValidationFailed
from mscbatch.signatures.services import signatures_of, verify
from mscbatch.site import site_today
from tests.conftest import PASSWORD, add_user, screening_seen

TODAY = site_today()
#: collection date and an in-window sample date per rule set
DATES = {
    "adipose_at_don": (TODAY - timedelta(days=3), TODAY - timedelta(days=2)),  # window 0..+7 days
    "marrow_ssc_bm": (TODAY + timedelta(days=5), TODAY - timedelta(days=5)),  # window -30..0 days
    "cord_eu": (TODAY - timedelta(days=1), TODAY - timedelta(days=2)),  # window -7..+7 days
}
SOURCES = {"adipose_at_don": "adipose_tissue", "marrow_ssc_bm": "bone_marrow", "cord_eu": "umbilical_cord"}


def user(session: Any, username: str) -> User:
    found = session.scalar(select(User).where(User.username == username))
    assert found is not None, username
    return found


def born_aged(years: int, on: date) -> date:
    return on.replace(year=on.year - years)


def details(rule_set_id: str, **changes: Any) -> services.DonorDetails:
    collection, _sample = DATES[rule_set_id]
    familial = rule_set_id == "marrow_ssc_bm"
    values: dict[str, Any] = dict(
        tissue_source=SOURCES[rule_set_id], rule_set_id=rule_set_id, donor_type="familial" if familial else "unrelated",
        relationship="sibling" if familial else None, recipient_code="SSC-BM-001" if familial else None,
        initials="JD", date_of_birth=born_aged(40, collection), sex="female", weight_kg="70",
        consent_signed=True, consent_date=TODAY - timedelta(days=30), social_security=True,
        childbearing_potential=True, contraception=True, planned_collection_date=collection)
    values.update(changes)
    return services.DonorDetails(**values)


def screen(session: Any, tech: User, donor_id: int, rule_set_id: str, *, results: dict[str, str] | None = None,
           yes: dict[str, str] | None = None, skip: tuple[str, ...] = (), sample: date | None = None) -> None:
    """Every required marker negative (unless `results` says otherwise), every question "no" (unless `yes`)."""
    rule_set = rule_sets()[rule_set_id]
    sample = sample or DATES[rule_set_id][1]
    wanted = {m.id: "negative" for m in rule_set.markers if m.required}
    wanted.update(results or {})
    for n, (marker, value) in enumerate(wanted.items()):
        if marker not in skip:
            services.record_result(session, tech, donor_id, marker=marker, result=value, sample_date=sample,
                                   lab_reference=f"LAB-{donor_id}-{n}")
    answers = {q.id: ("yes", (yes or {})[q.id]) if q.id in (yes or {}) else ("no", "") for q in rule_set.questions}
    if answers:
        services.answer_questionnaire(session, tech, donor_id, answers)


def screened_donor(session: Any, rule_set_id: str, tech: str = "technician", *, results: dict[str, str] | None = None,
                   yes: dict[str, str] | None = None, skip: tuple[str, ...] = (), sample: date | None = None,
                   **changes: Any) -> int:
    technician = user(session, tech)
    donor = services.register_donor(session, technician, details(rule_set_id, **changes))
    screen(session, technician, donor.id, rule_set_id, results=results, yes=yes, skip=skip, sample=sample)
    return donor.id


@pytest.fixture
def db_session(app):  # type: ignore[no-untyped-def]
    """conftest's db_session keeps an app context pushed for the whole test, so every test-client request
    would share one `g` (the first signed-in user and request session stick). This one holds no context."""
    session = app.extensions["mscbatch.db"].new_session()
    yield session
    session.close()


def tech_qa(app: Any) -> None:
    """A person with both roles: may enter screening and may sign, but never both for one donor."""
    add_user(app, "techqa", ["technician", "qa"], "Terry Tech-QA")


def count(session: Any, model: Any) -> int:
    value = session.scalar(select(func.count()).select_from(model))
    session.rollback()  # SQLite: never keep a transaction open while the test client writes
    return int(value or 0)


def page_of(client: Any, donor_id: int) -> str:
    response = client.get(f"/donors/{donor_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


# ---- the engine's verdict, on donors recorded through the services (issue 3, "What it must show") ----------

SCENARIOS = [
    # (test id, rule set, changes to the donor, results, yes-answers, expected status, rule id that decides)
    ("adipose_donor_weighing_48_kg_is_ineligible", "adipose_at_don", {"weight_kg": "48"}, {}, {}, "ineligible",
     "limit.min_weight"),
    ("adipose_donor_weighing_exactly_50_kg_is_eligible", "adipose_at_don", {"weight_kg": "50"}, {}, {}, "eligible",
     "limit.min_weight"),
    ("familial_marrow_donor_aged_66_is_ineligible", "marrow_ssc_bm",
     {"date_of_birth": born_aged(66, DATES["marrow_ssc_bm"][0])}, {}, {}, "ineligible", "limit.age"),
    ("familial_marrow_donor_aged_exactly_65_is_eligible", "marrow_ssc_bm",
     {"date_of_birth": born_aged(65, DATES["marrow_ssc_bm"][0])}, {}, {}, "eligible", "limit.age"),
    ("marrow_donor_with_xylocaine_allergy_is_ineligible", "marrow_ssc_bm", {}, {},
     {"xylocaine_allergy": "lidocaine urticaria"}, "ineligible", "question.xylocaine_allergy"),
    ("adipose_donor_with_hev_positive_is_ineligible", "adipose_at_don", {}, {"hev": "positive"}, {}, "ineligible",
     "marker.hev"),
    ("cmv_igm_positive_adipose_donor_is_ineligible", "adipose_at_don", {}, {"cmv_igm": "positive"}, {}, "ineligible",
     "marker.cmv_igm"),
    ("anti_hbc_positive_hbsag_negative_is_pending_risk_assessment_under_the_eu_rule_set", "cord_eu", {},
     {"anti_hbc": "positive"}, {}, "pending", "marker.anti_hbc"),
    ("anti_hbc_positive_hbsag_negative_is_ineligible_under_the_adipose_rule_set", "adipose_at_don", {},
     {"anti_hbc": "positive"}, {}, "ineligible", "marker.anti_hbc"),
    ("complete_negative_marrow_panel_is_eligible", "marrow_ssc_bm", {}, {}, {}, "eligible", "marker.hiv_nat"),
    ("complete_negative_cord_panel_is_eligible", "cord_eu", {}, {}, {}, "eligible", "marker.syphilis"),
]


@pytest.mark.parametrize("rule_set_id, changes, results, yes, expected, rule_id",
                         [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_recorded_screening_is_judged_by_the_rule_set(db_session, users, rule_set_id, changes, results, yes,
                                                      expected, rule_id):
    donor_id = screened_donor(db_session, rule_set_id, results=results, yes=yes, **changes)
    evaluation = evaluate_donor(db_session, get_donor(db_session, donor_id))
    assert evaluation.status == expected, [r.text for r in evaluation.blocking_reasons]
    reason = evaluation.reason_for(rule_id)
    assert reason is not None
    if expected == "pending":
        assert "risk assessment" in reason.text
    assert (evaluation.ruleset_id, evaluation.ruleset_sha256) == (rule_set_id, rule_sets()[rule_set_id].sha256)


def test_marrow_donor_sampled_35_days_before_collection_is_pending_outside_window(db_session, users):
    collection = DATES["marrow_ssc_bm"][0]
    donor_id = screened_donor(db_session, "marrow_ssc_bm", sample=collection - timedelta(days=35))
    evaluation = evaluate_donor(db_session, get_donor(db_session, donor_id))
    assert evaluation.status == "pending"
    assert "count as missing, not negative" in evaluation.reason_for("marker.anti_hiv_1_2").text


# ---- the whole flow through the pages ---------------------------------------------------------------------

def register_through_the_form(client: Any, **overrides: str) -> Any:
    collection, _ = DATES["adipose_at_don"]
    data = {"rule_set_id": "adipose_at_don", "donor_type": "unrelated", "initials": "MB",
            "date_of_birth": "1980-05-17", "sex": "male", "weight_kg": "72.5", "consent_signed": "yes",
            "consent_date": (TODAY - timedelta(days=10)).isoformat(), "social_security": "yes",
            "planned_collection_date": collection.isoformat()}
    data.update(overrides)
    return client.post("/donors/new", data=data)


def test_a_complete_negative_panel_entered_through_the_pages_is_eligible_and_qa_approves_it(app, client_as, db_session):
    tech, qa = client_as("technician"), client_as("qa")
    response = register_through_the_form(tech)
    assert response.status_code == 302, response.get_data(as_text=True)
    donor_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert "Missing" in page_of(tech, donor_id)  # nothing screened yet: grey

    rule_set = rule_sets()["adipose_at_don"]
    sample = DATES["adipose_at_don"][1].isoformat()
    for marker in (m for m in rule_set.markers if m.required):
        response = tech.post(f"/donors/{donor_id}/results", data={
            "result-marker": marker.id, "result-result": "negative", "result-sample_date": sample,
            "result-lab_reference": f"REP-{marker.id}"})
        assert response.status_code == 302, response.get_data(as_text=True)
    answers = {f"q_{q.id}": "no" for q in rule_set.questions}
    assert tech.post(f"/donors/{donor_id}/questionnaire", data=answers).status_code == 302

    html = page_of(qa, donor_id)
    assert 'id="engine-status">eligible<' in html
    assert "check-red" not in html and "check-grey" not in html
    assert "limit.min_weight" in html and "AT-DON" in html  # rule id and source on each line

    response = qa.post(f"/donors/{donor_id}/decision", data={
        **screening_seen(qa, donor_id), "decision-meaning": APPROVED,
                                                             "decision-password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    html = page_of(qa, donor_id)
    assert "Signed: Qa, " in html and f"“{APPROVED}”" in html and " UTC" in html
    assert decisions.donor_gate(db_session, donor_id) == "approved"
    decision = db_session.scalar(select(EligibilityDecision).where(EligibilityDecision.donor_id == donor_id))
    assert decision.locked_at is not None and decision.engine_status == "eligible"
    assert decision.ruleset_sha256 == rule_set.sha256 and len(decision.reasons) == len(list(rule_set.criteria())) - 3
    assert all(verify(db_session, s, decision).valid for s in signatures_of(db_session, decision))
    db_session.rollback()


def test_bad_input_is_refused_with_the_field_named_and_nothing_written(app, client_as, db_session):
    tech = client_as("technician")
    response = register_through_the_form(tech, rule_set_id="marrow_ssc_bm", donor_type="familial",
                                         relationship="sibling", recipient_code="")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="recipient_code-error">Give the intended recipient&#39;s trial patient code.' in html
    response = register_through_the_form(tech, weight_kg="heavy")
    assert response.status_code == 422 and 'id="weight_kg-error"' in response.get_data(as_text=True)
    response = register_through_the_form(tech, date_of_birth="1980-13-45")
    assert response.status_code == 422 and 'id="date_of_birth-error"' in response.get_data(as_text=True)
    assert count(db_session, Donor) == 0

    donor_id = screened_donor(db_session, "adipose_at_don", skip=("hev",))
    before = count(db_session, ScreeningResult)
    response = tech.post(f"/donors/{donor_id}/results", data={
        "result-marker": "hev", "result-result": "negative",
        "result-sample_date": (TODAY + timedelta(days=2)).isoformat(), "result-lab_reference": "R1"})
    assert response.status_code == 422
    assert 'id="result-sample_date-error">The sample date cannot be in the future.' in response.get_data(as_text=True)
    response = tech.post(f"/donors/{donor_id}/results", data={"result-marker": "hev", "result-result": "negative",
                                                              "result-sample_date": TODAY.isoformat()})
    assert response.status_code == 422 and 'id="result-lab_reference-error"' in response.get_data(as_text=True)
    response = tech.post(f"/donors/{donor_id}/questionnaire", data={"q_lithium": "yes", "d_lithium": ""})
    assert response.status_code == 422
    assert "write what it is" in response.get_data(as_text=True)
    assert count(db_session, ScreeningResult) == before
    assert db_session.scalar(select(QuestionnaireAnswer.answer).where(
        QuestionnaireAnswer.donor_id == donor_id, QuestionnaireAnswer.question_id == "lithium")) == "no"
    db_session.rollback()


def test_a_correction_needs_a_reason_and_the_audit_trail_keeps_the_old_value(app, client_as, db_session):
    donor_id = screened_donor(db_session, "adipose_at_don")
    result_id = db_session.scalar(select(ScreeningResult.id).where(ScreeningResult.donor_id == donor_id,
                                                                   ScreeningResult.marker == "hev"))
    db_session.rollback()
    tech = client_as("technician")
    form = {"marker": "hev", "result": "indeterminate", "sample_date": DATES["adipose_at_don"][1].isoformat(),
            "lab_reference": "LAB-corrected"}
    response = tech.post(f"/donors/results/{result_id}/correct", data=form)
    assert response.status_code == 422 and 'id="reason-error"' in response.get_data(as_text=True)
    response = tech.post(f"/donors/results/{result_id}/correct", data={**form, "reason": "typing error, see report"})
    assert response.status_code == 302
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.entity_type == "donor_screening_result",
                                                       AuditEvent.entity_id == str(result_id),
                                                       AuditEvent.field == "result"))
    assert (event.old_value, event.new_value, event.reason) == ("negative", "indeterminate", "typing error, see report")
    db_session.rollback()
    assert 'id="engine-status">pending<' in page_of(tech, donor_id)


# ---- QA approval, segregation of duties, locking, reopening ------------------------------------------------

def test_qa_approval_is_refused_for_the_person_who_entered_the_screening(app, users, db_session):
    tech_qa(app)
    donor_id = screened_donor(db_session, "adipose_at_don", tech="techqa")
    client = app.test_client()
    client.post("/login", data={"username": "techqa", "password": PASSWORD})
    response = client.post(f"/donors/{donor_id}/decision", data={
        **screening_seen(client, donor_id), "decision-meaning": APPROVED,
                                                                 "decision-password": PASSWORD})
    assert response.status_code == 403
    assert "segregation of duties" in response.get_data(as_text=True)
    assert count(db_session, EligibilityDecision) == 0
    with pytest.raises(PermissionDenied):
        decisions.decide(db_session, user(db_session, "techqa"), donor_id, APPROVED, PASSWORD)
    decisions.decide(db_session, user(db_session, "qa"), donor_id, APPROVED, PASSWORD)  # another QA may


def test_qa_approval_is_refused_for_a_corrector_whose_correction_a_colleague_corrected_again(app, users, db_session):
    """The result row keeps only its last corrector; the audit trail keeps everyone who changed it."""
    tech_qa(app)
    donor_id = screened_donor(db_session, "adipose_at_don")
    row = db_session.scalar(select(ScreeningResult).where(ScreeningResult.donor_id == donor_id,
                                                          ScreeningResult.marker == "hbsag"))
    for who, reference in (("techqa", "LAB-X-1"), ("technician", "LAB-X-2")):
        services.correct_result(db_session, user(db_session, who), row.id, reason="laboratory reference re-read",
                                marker="hbsag", result=row.result, sample_date=row.sample_date,
                                lab_reference=reference)
    assert db_session.get(ScreeningResult, row.id).corrected_by_id != user(db_session, "techqa").id
    db_session.rollback()  # end the read: SQLite's write lock is the request's
    client = app.test_client()
    client.post("/login", data={"username": "techqa", "password": PASSWORD})
    response = client.post(f"/donors/{donor_id}/decision", data={
        **screening_seen(client, donor_id), "decision-meaning": APPROVED,
                                                                 "decision-password": PASSWORD})
    assert response.status_code == 403 and "segregation of duties" in response.get_data(as_text=True)
    assert count(db_session, EligibilityDecision) == 0
    decisions.decide(db_session, user(db_session, "qa"), donor_id, APPROVED, PASSWORD)  # another QA may


def test_a_technician_cannot_approve(client_as, db_session):
    donor_id = screened_donor(db_session, "adipose_at_don")
    response = client_as("technician").post(f"/donors/{donor_id}/decision", data={
        **screening_seen(client_as("qa"), donor_id), "decision-meaning": APPROVED, "decision-password": PASSWORD})
    assert response.status_code == 403
    assert count(db_session, EligibilityDecision) == 0


def test_approval_is_refused_while_the_screening_is_pending_or_ineligible(client_as, db_session):
    pending_id = screened_donor(db_session, "adipose_at_don", skip=("cmv_igm",))
    ineligible_id = screened_donor(db_session, "adipose_at_don", results={"hev": "positive"})
    qa = client_as("qa")
    for donor_id, said in ((pending_id, "pending"), (ineligible_id, "ineligible")):
        response = qa.post(f"/donors/{donor_id}/decision", data={
            **screening_seen(qa, donor_id), "decision-meaning": APPROVED,
                                                                 "decision-password": PASSWORD})
        assert response.status_code == 409
        assert f"the screening says {said}" in response.get_data(as_text=True)
    assert count(db_session, EligibilityDecision) == 0
    response = qa.post(f"/donors/{pending_id}/decision", data={
        **screening_seen(qa, pending_id), "decision-meaning": INELIGIBLE,
                                                               "decision-password": PASSWORD})
    assert response.status_code == 422 and 'id="decision-comment-error"' in response.get_data(as_text=True)
    response = qa.post(f"/donors/{ineligible_id}/decision", data={
        **screening_seen(qa, ineligible_id), "decision-meaning": INELIGIBLE,
                                                                  "decision-password": PASSWORD})
    assert response.status_code == 302
    with pytest.raises(Conflict, match="judged ineligible by QA"):
        decisions.donor_gate(db_session, ineligible_id)
    assert decisions.donor_gate(db_session, pending_id) == "pending"


def test_a_negative_retest_does_not_reopen_qas_ineligible_decision(client_as, db_session):
    """Review finding: any new result superseded QA's "ineligible" and put the donor back to pending review, so a
    technician's negative retest let a lot start from an excluded donor. Only QA reopens that decision."""
    donor_id = screened_donor(db_session, "adipose_at_don", results={"hev": "positive"})
    assert client_as("qa").post(f"/donors/{donor_id}/decision", data={**screening_seen(client_as("qa"), donor_id),
        "decision-meaning": INELIGIBLE, "decision-comment": "HEV RNA positive", "decision-password": PASSWORD,
    }).status_code == 302
    response = client_as("technician").post(f"/donors/{donor_id}/results", data={
        "result-marker": "hev", "result-result": "negative",
        "result-sample_date": DATES["adipose_at_don"][1].isoformat(), "result-lab_reference": "RETEST-1"})
    assert response.status_code == 302, response.get_data(as_text=True)
    db_session.expire_all()
    assert get_donor(db_session, donor_id).status == "ineligible"
    decision = db_session.scalar(select(EligibilityDecision).where(EligibilityDecision.donor_id == donor_id))
    assert decision.meaning == INELIGIBLE and decision.superseded_at is None
    with pytest.raises(Conflict, match="judged ineligible by QA"):
        decisions.donor_gate(db_session, donor_id)


def test_a_wrong_password_signs_nothing_and_the_refusal_is_audited(client_as, db_session):
    donor_id = screened_donor(db_session, "adipose_at_don")
    response = client_as("qa").post(f"/donors/{donor_id}/decision", data={
        **screening_seen(client_as("qa"), donor_id), "decision-meaning": APPROVED,
                                                                          "decision-password": "wrong-one"})
    assert response.status_code == 401
    assert 'id="decision-password-error">Signature refused: wrong password.' in response.get_data(as_text=True)
    assert count(db_session, EligibilityDecision) == 0
    assert db_session.scalar(select(func.count()).where(AuditEvent.action == "signature_refused")) == 1
    db_session.rollback()


def approved_donor(db_session: Any, rule_set_id: str = "adipose_at_don") -> int:
    donor_id = screened_donor(db_session, rule_set_id)
    decisions.decide(db_session, user(db_session, "qa"), donor_id, APPROVED, PASSWORD)
    return donor_id


def test_approval_locks_the_screening(client_as, db_session):
    donor_id = approved_donor(db_session)
    result_id = db_session.scalar(select(ScreeningResult.id).where(ScreeningResult.donor_id == donor_id))
    db_session.rollback()
    tech = client_as("technician")
    response = tech.post(f"/donors/results/{result_id}/correct", data={
        "marker": "hev", "result": "positive", "sample_date": DATES["adipose_at_don"][1].isoformat(),
        "lab_reference": "X", "reason": "typo"})
    assert response.status_code == 409
    assert "is locked: QA signed" in response.get_data(as_text=True)
    response = tech.post(f"/donors/{donor_id}/questionnaire", data={"q_lithium": "yes", "d_lithium": "since May",
                                                                    "reason": "donor called back"})
    assert response.status_code == 409 and "questionnaire can no longer be changed" in response.get_data(as_text=True)
    with pytest.raises(RecordLocked):
        services.update_donor(db_session, user(db_session, "technician"), donor_id,
                              details("adipose_at_don", weight_kg="45"), "re-weighed")
    decision = db_session.scalar(select(EligibilityDecision).where(EligibilityDecision.donor_id == donor_id))
    with pytest.raises(RecordLocked):
        with use_case(db_session, user(db_session, "qa"), "tamper"):
            decision.meaning = INELIGIBLE
    db_session.expire_all()
    assert get_donor(db_session, donor_id).status == "approved"
    assert db_session.scalar(select(QuestionnaireAnswer.answer).where(
        QuestionnaireAnswer.donor_id == donor_id, QuestionnaireAnswer.question_id == "lithium")) == "no"
    db_session.rollback()


def test_a_late_positive_result_reopens_the_decision_and_opens_a_lookback(client_as, db_session):
    donor_id = approved_donor(db_session)
    tech = client_as("technician")
    response = tech.post(f"/donors/{donor_id}/results", data={
        "result-marker": "hcv_nat", "result-result": "positive",
        "result-sample_date": DATES["adipose_at_don"][1].isoformat(), "result-lab_reference": "LATE-1"})
    assert response.status_code == 302, response.get_data(as_text=True)
    db_session.expire_all()
    assert get_donor(db_session, donor_id).status == "pending_review"
    old = db_session.scalar(select(EligibilityDecision).where(EligibilityDecision.donor_id == donor_id))
    assert old.superseded_at is not None and old.meaning == APPROVED  # superseded, never edited
    assert all(verify(db_session, s, old).valid for s in signatures_of(db_session, old))
    lookback = db_session.scalar(select(DonorLookback).where(DonorLookback.donor_id == donor_id))
    late = db_session.scalar(select(ScreeningResult).where(ScreeningResult.lab_reference == "LATE-1"))
    assert lookback.triggering_result_id == late.id and lookback.superseded_decision_id == old.id
    assert lookback.closed_at is None and "New HCV NAT result (positive" in lookback.reason
    with pytest.raises(Conflict, match="ineligible on its screening"):
        decisions.donor_gate(db_session, donor_id)
    db_session.rollback()
    html = page_of(client_as("qa"), donor_id)
    assert "superseded" in html and "<strong>Still open.</strong>" in html and 'id="engine-status">ineligible<' in html


def test_a_late_negative_result_reopens_without_lookback_and_qa_signs_again(db_session, users):
    donor_id = approved_donor(db_session)
    services.record_result(db_session, user(db_session, "technician"), donor_id, marker="hiv_nat", result="negative",
                           sample_date=DATES["adipose_at_don"][1], lab_reference="NAT-1")
    assert count(db_session, DonorLookback) == 0
    assert decisions.donor_gate(db_session, donor_id) == "pending"
    decisions.decide(db_session, user(db_session, "qa2"), donor_id, APPROVED, PASSWORD)
    assert decisions.donor_gate(db_session, donor_id) == "approved"
    assert len(db_session.scalars(select(EligibilityDecision)).all()) == 2


def test_qa_reopens_a_decision_with_a_reason_and_the_screening_can_be_edited_again(client_as, db_session):
    donor_id = approved_donor(db_session)
    qa = client_as("qa")
    assert qa.post(f"/donors/{donor_id}/reopen", data={"reopen-reason": ""}).status_code == 422
    assert qa.post(f"/donors/{donor_id}/reopen",
                   data={"reopen-reason": "Donor reports lithium treatment"}).status_code == 302
    assert count(db_session, DonorLookback) == 1
    response = client_as("technician").post(f"/donors/{donor_id}/questionnaire", data={
        "q_lithium": "yes", "d_lithium": "lithium since March", "reason": "donor called back"})
    assert response.status_code == 302
    db_session.expire_all()
    assert evaluate_donor(db_session, get_donor(db_session, donor_id)).status == "ineligible"
    db_session.rollback()


# ---- who sees what --------------------------------------------------------------------------------------

def test_a_nurse_sees_the_donor_code_but_not_its_identity_fields(client_as, db_session):
    donor_id = screened_donor(db_session, "adipose_at_don", initials="ZQX", date_of_birth=date(1979, 2, 3))
    nurse_html = page_of(client_as("nurse"), donor_id)
    assert "ZQX" not in nurse_html and "1979-02-03" not in nurse_html
    assert "Hidden for your role" in nurse_html and "D-" in nurse_html
    for role in ("technician", "qa"):
        html = page_of(client_as(role), donor_id)
        assert "ZQX" in html and "1979-02-03" in html


def test_the_donor_list_filters_by_source_and_status_searches_and_pages(client_as, db_session):
    adipose_id = approved_donor(db_session)
    screened_donor(db_session, "cord_eu")
    marrow_id = screened_donor(db_session, "marrow_ssc_bm", recipient_code="SSC-BM-042")
    code = get_donor(db_session, adipose_id).code
    assert [d.id for d in list_donors(db_session, source="bone_marrow").donors] == [marrow_id]
    assert [d.id for d in list_donors(db_session, status="approved").donors] == [adipose_id]
    assert [d.id for d in list_donors(db_session, search="bm-042").donors] == [marrow_id]
    paged = list_donors(db_session, per_page=2, page=2)
    assert (paged.total, paged.pages, len(paged.donors)) == (3, 2, 1)
    db_session.rollback()
    html = client_as("nurse").get("/donors?source=adipose_tissue").get_data(as_text=True)
    assert code in html and "Umbilical cord</td>" not in html
    assert client_as("clinician").get(f"/donors?q={code}&status=approved").status_code == 200


def test_a_donor_code_is_generated_unique_and_says_nothing_about_the_person(db_session, users):
    ids = [screened_donor(db_session, "cord_eu") for _ in range(3)]
    codes = [get_donor(db_session, i).code for i in ids]
    assert len(set(codes)) == 3
    assert all(c.startswith("D-") and "JD" not in c for c in codes)
    db_session.rollback()


def test_protocol_ssc_bm_takes_familial_donors_only(db_session, users):
    with pytest.raises(ValidationFailed) as refused:
        services.register_donor(db_session, user(db_session, "technician"),
                                details("marrow_ssc_bm", donor_type="unrelated", relationship=None,
                                        recipient_code=None))
    assert refused.value.field == "donor_type"
    assert count(db_session, Donor) == 0


def test_a_user_without_the_technician_role_cannot_enter_screening_through_the_service(db_session, users):
    with pytest.raises(PermissionDenied):
        services.register_donor(db_session, user(db_session, "qa"), details("cord_eu"))
    assert isinstance(user(db_session, "qa"), User)
    db_session.rollback()


def test_correcting_the_donors_details_needs_a_reason_and_changes_the_verdict(client_as, db_session):
    donor_id = screened_donor(db_session, "adipose_at_don")
    tech = client_as("technician")
    form = tech.get(f"/donors/{donor_id}/edit")
    assert form.status_code == 200 and 'value="70.0"' in form.get_data(as_text=True)
    collection = DATES["adipose_at_don"][0].isoformat()
    data = {"rule_set_id": "adipose_at_don", "donor_type": "unrelated", "initials": "JD", "sex": "female",
            "weight_kg": "48", "consent_signed": "yes", "consent_date": (TODAY - timedelta(days=30)).isoformat(),
            "planned_collection_date": collection, "date_of_birth": "1984-01-01"}
    response = tech.post(f"/donors/{donor_id}/edit", data=data)
    assert response.status_code == 422 and 'id="reason-error"' in response.get_data(as_text=True)
    response = tech.post(f"/donors/{donor_id}/edit", data={**data, "reason": "re-weighed on the day"})
    assert response.status_code == 302
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.entity_type == "donor",
                                                       AuditEvent.field == "weight_kg"))
    assert (event.old_value, event.new_value, event.reason) == ("70", "48", "re-weighed on the day")
    db_session.rollback()
    assert 'id="engine-status">ineligible<' in page_of(tech, donor_id)
