"""Donor eligibility engine: a RuleSet (donor_rules.py) plus plain DonorFacts -> Decision.

DOMAIN.md section 3. Each criterion yields one Reason (outcome met / failed / missing / risk_assessment) and
one ChecklistItem (green / red / grey). The status follows one rule so that nothing can be forgotten:
any failed criterion -> "ineligible"; otherwise anything missing, indeterminate or awaiting a risk
assessment -> "pending"; otherwise "eligible". Pending is never eligible: QA resolves it with an e-signature
in the service layer. Reason values are strings (ISO dates, Decimal as text) so they can be stored as JSON.
Serology and NAT results are judged in eligibility_markers.py.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from mscbatch.core.ages import completed_years
from mscbatch.core.donor_rules import Limit, Marker, Question, RequiredFact, RuleSet
from mscbatch.core.eligibility_markers import MarkerResult, Reason, judge_markers

__all__ = ["ChecklistItem", "Decision", "DonorFacts", "MarkerResult", "Reason", "age_in_years", "evaluate", "status_of"]

STATUSES = ("eligible", "ineligible", "pending")
OUTCOMES = ("met", "failed", "missing", "risk_assessment")
#: The checklist has three colours; a risk assessment is grey (not decided yet), its outcome tells it apart.
COLOURS = {"met": "green", "failed": "red", "missing": "grey", "risk_assessment": "grey"}


@dataclass(frozen=True)
class DonorFacts:
    """Everything the engine may look at, as plain values; None always means "not recorded yet".

    `sex` is "female", "male" or anything else; only "male" (or childbearing_potential False) makes the
    contraception rule not applicable. `answers` maps question ids to True (yes: excludes), False (no) or None (answered
    "unknown"; a question not answered is absent). `retest_180_days_negative`
    documents a negative retest 180 days after donation (EU 2006/17/EC Annex II 2.5), which opens the
    extended sample window where the rule set has one.
    """

    collection_date: date | None
    date_of_birth: date | None = None
    sex: str | None = None
    weight_kg: Decimal | None = None
    consent_signed: bool | None = None
    consent_date: date | None = None
    social_security: bool | None = None
    relationship: str | None = None
    childbearing_potential: bool | None = None
    contraception: bool | None = None
    results: Sequence[MarkerResult] = ()
    answers: Mapping[str, bool | None] = field(default_factory=dict)
    retest_180_days_negative: bool | None = None


@dataclass(frozen=True)
class ChecklistItem:
    """One line of the screening checklist a UI shows: the criterion, its colour and why."""

    rule_id: str
    label: str
    source: str
    colour: str
    outcome: str
    detail: str


@dataclass(frozen=True)
class Decision:
    """The verdict with every reason, and the rule set (id, version, sha256) it was judged with.

    `unjudged_results` are results for markers this rule set does not list: shown to QA, never counted.
    """

    status: str
    reasons: tuple[Reason, ...]
    checklist: tuple[ChecklistItem, ...]
    ruleset_id: str
    ruleset_version: str
    ruleset_sha256: str
    unjudged_results: tuple[MarkerResult, ...] = ()

    @property
    def blocking_reasons(self) -> tuple[Reason, ...]:
        """The reasons that keep the donor from being eligible (everything not met)."""
        return tuple(r for r in self.reasons if r.outcome != "met")

    def reason_for(self, rule_id: str) -> Reason | None:
        return next((r for r in self.reasons if r.rule_id == rule_id), None)


#: Whole years completed on a day (SSc-BM age 18-65 is judged on the collection date): the one age function, shared
#: with the patients' enrolment (core.ages), so a donor and a patient born on 29 February age on the same day.
age_in_years = completed_years


def _yes_no(rule_id: str, source: str, value: bool | None, what: str) -> Reason:
    if value is None:
        return Reason(rule_id, f"{what}: not recorded.", source, "missing", {"value": "not recorded"})
    if value:
        return Reason(rule_id, f"{what}: yes.", source, "met", {"value": "yes"})
    return Reason(rule_id, f"{what}: no (excludes).", source, "failed", {"value": "no"})


def _consent(fact: RequiredFact, facts: DonorFacts) -> Reason:
    """Signed informed consent (SSc-BM inclusion 3; EU 2004/23/EC Art. 13: procurement is authorised only once
    consent is given, so a consent dated after the collection does not cover it and excludes the donation)."""
    reason = _yes_no(fact.rule_id, fact.source, facts.consent_signed, "Signed informed consent")
    if reason.outcome != "met" or facts.consent_date is None or facts.collection_date is None:
        return reason
    values = {"value": "yes", "consent_date": facts.consent_date.isoformat(),
              "collection_date": facts.collection_date.isoformat()}
    if facts.consent_date > facts.collection_date:
        return Reason(fact.rule_id, f"Signed informed consent dated {facts.consent_date.isoformat()}, after the "
                      f"collection on {facts.collection_date.isoformat()}: consent must be given before the tissue is "
                      "procured (excludes).", fact.source, "failed", values)
    return Reason(fact.rule_id, f"Signed informed consent: yes, dated {facts.consent_date.isoformat()}.", fact.source,
                  "met", values)


def _social_security(fact: RequiredFact, facts: DonorFacts) -> Reason:
    """Affiliation to social security (SSc-BM inclusion 4 / exclusion 4: French research law)."""
    return _yes_no(fact.rule_id, fact.source, facts.social_security, "Affiliated to social security")


def _relationship(fact: RequiredFact, facts: DonorFacts) -> Reason:
    """SSc-BM inclusion 2: a relative (sibling, parent, cousin, other relative) or the spouse of the recipient."""
    allowed = ", ".join(fact.allowed)
    values = {"relationship": facts.relationship or "not recorded", "allowed": allowed}
    if facts.relationship is None:
        return Reason(fact.rule_id, "Relationship to the recipient: not recorded.", fact.source, "missing", values)
    if facts.relationship in fact.allowed:
        return Reason(fact.rule_id, f"Relationship to the recipient: {facts.relationship}.", fact.source, "met", values)
    return Reason(fact.rule_id, f"Relationship {facts.relationship!r} is not one of: {allowed} (excludes).",
                  fact.source, "failed", values)


def _contraception(fact: RequiredFact, facts: DonorFacts) -> Reason:
    """SSc-BM inclusion 5 / exclusion 3: a woman of childbearing age must be on effective contraception."""
    values = {"sex": facts.sex or "not recorded",
              "childbearing_potential": _text(facts.childbearing_potential),
              "contraception": _text(facts.contraception)}
    # the recorded answers are judged as they are: a "yes" to childbearing potential is never overridden by the sex
    # recorded beside it (the entry refuses the contradiction; data recorded before that is judged on its answer)
    if facts.childbearing_potential is False or (facts.sex == "male" and facts.childbearing_potential is None):
        return Reason(fact.rule_id, "Contraception: not applicable (no childbearing potential).", fact.source, "met", values)
    if facts.childbearing_potential is None:
        return Reason(fact.rule_id, "Childbearing potential: not recorded.", fact.source, "missing", values)
    return _yes_no(fact.rule_id, fact.source, facts.contraception, "Woman of childbearing age on effective contraception")


def _text(value: bool | None) -> str:
    return "not recorded" if value is None else ("yes" if value else "no")


#: Required-fact kinds (donor_rules.FACT_KINDS) -> evaluator; a new kind is one entry here and one there.
FACT_EVALUATORS: dict[str, Callable[[RequiredFact, DonorFacts], Reason]] = {
    "consent": _consent,
    "social_security": _social_security,
    "relationship": _relationship,
    "contraception": _contraception,
}


def _quantity(limit: Limit, facts: DonorFacts) -> tuple[Decimal | None, str]:
    """The donor's value for a limit's quantity, or None with what is missing."""
    if limit.quantity == "weight":
        return facts.weight_kg, "weight not recorded"
    if facts.date_of_birth is None or facts.collection_date is None:
        return None, "date of birth or collection date not recorded"
    return Decimal(age_in_years(facts.date_of_birth, facts.collection_date)), ""


def _judge_limit(limit: Limit, facts: DonorFacts) -> Reason:
    """Bounds are inclusive: AT-DON excludes weight < 50 kg (50 passes); SSc-BM accepts 18 to 65 years."""
    value, missing = _quantity(limit, facts)
    values = {"min": str(limit.min) if limit.min is not None else "", "max": str(limit.max) if limit.max is not None else "",
              "unit": limit.unit}
    if value is None:
        return Reason(limit.rule_id, f"{limit.text} Not judged: {missing}.", limit.source, "missing", values)
    values["value"] = str(value)
    shown = f"{limit.quantity.capitalize()} {value} {limit.unit}"
    if limit.min is not None and value < limit.min:
        return Reason(limit.rule_id, f"{shown} is below the minimum of {limit.min} {limit.unit} (excludes).",
                      limit.source, "failed", values)
    if limit.max is not None and value > limit.max:
        return Reason(limit.rule_id, f"{shown} is above the maximum of {limit.max} {limit.unit} (excludes).",
                      limit.source, "failed", values)
    return Reason(limit.rule_id, f"{shown} is within the limit.", limit.source, "met", values)


def _judge_question(question: Question, facts: DonorFacts) -> Reason:
    """Seed exclusion criteria asked as questions: "yes" excludes; no answer, or an answer "unknown" (recorded as
    None under the question's id), leaves the decision pending."""
    answer = facts.answers.get(question.id)
    values = {"answer": _text(answer)}
    if answer is None and question.id in facts.answers:  # recorded "unknown": still to be found out
        values = {"answer": "unknown"}
        return Reason(question.rule_id, f"{question.text} Answered unknown: needs checking.", question.source,
                      "missing", values)
    if answer is None:
        return Reason(question.rule_id, f"{question.text} Not answered.", question.source, "missing", values)
    if answer and not question.excludes:  # it decides which tests are required (judged with the markers)
        return Reason(question.rule_id, f"{question.text} Yes: {question.note or 'further tests are required.'}",
                      question.source, "met", values)
    if answer:
        return Reason(question.rule_id, f"{question.text} Yes (excludes).", question.source, "failed", values)
    return Reason(question.rule_id, f"{question.text} No.", question.source, "met", values)


def status_of(reasons: Sequence[Reason]) -> str:
    """Any failed -> ineligible; else any missing / risk assessment -> pending; else eligible."""
    outcomes = {r.outcome for r in reasons}
    if "failed" in outcomes:
        return "ineligible"
    if outcomes & {"missing", "risk_assessment"}:
        return "pending"
    return "eligible"


def evaluate(rule_set: RuleSet, facts: DonorFacts) -> Decision:
    """Judge a donor against one rule set; the Decision records the rule set's id, version and sha256."""
    reasons: list[Reason] = [FACT_EVALUATORS[fact.kind](fact, facts) for fact in rule_set.required_facts]
    reasons += [_judge_limit(limit, facts) for limit in rule_set.limits]
    reasons += [_judge_question(question, facts) for question in rule_set.questions]
    marker_reasons, unjudged = judge_markers(rule_set, facts.collection_date, facts.results,
                                             facts.retest_180_days_negative, facts.answers)
    reasons += marker_reasons
    labels = {c.rule_id: c.name if isinstance(c, Marker) else c.text for c in rule_set.criteria()}
    checklist = tuple(ChecklistItem(r.rule_id, labels[r.rule_id], r.source, COLOURS[r.outcome], r.outcome, r.text)
                      for r in reasons)
    return Decision(status_of(reasons), tuple(reasons), checklist, rule_set.id, rule_set.version, rule_set.sha256,
                    tuple(unjudged))
