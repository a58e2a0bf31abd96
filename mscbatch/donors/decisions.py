"""QA eligibility decisions, their reopening by new information, and the donor gate for lots.

DOMAIN.md section 3 and EU 2006/17/EC: QA approves an explained decision with an electronic signature
(21 CFR 11.50: printed name, time, meaning); the person who entered the screening cannot approve it
(segregation of duties, EU GMP ch. 2); a signed decision is never edited, it is superseded when new
information arrives, and an approved donor's reopening opens a lookback for the lots made from it.
"""
from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.eligibility import Decision
from mscbatch.database import utcnow
from mscbatch.donors.models import (
    APPROVED,
    INELIGIBLE,
    MEANINGS,
    QA_CORRECTION_MEANING,
    Donor,
    DonorLookback,
    EligibilityDecision,
    ScreeningResult,
)
from mscbatch.donors.queries import (
    current_decision,
    decisions_of,
    earlier_reactive_of,
    evaluate_donor,
    get_donor,
    lock_donor,
    screening_enterers,
)
from mscbatch.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import sign


def reasons_json(evaluation: Decision) -> str:
    return json.dumps([{"rule_id": r.rule_id, "text": r.text, "source": r.source, "outcome": r.outcome,
                        "values": dict(r.values)} for r in evaluation.reasons], sort_keys=True)


def screening_digest(evaluation: Decision) -> str:
    """A fingerprint of the screening as QA reads it (the verdict, every reason with its values, the rule set): the
    donor page carries it in the decision form, and decide() refuses a signature given on a page that no longer
    shows the screening (a result, answer or detail recorded meanwhile)."""
    text = f"{evaluation.status}|{evaluation.ruleset_id}|{evaluation.ruleset_sha256}|{reasons_json(evaluation)}"
    return hashlib.sha256(text.encode()).hexdigest()


#: A documented risk assessment is written in the decision's comment; shorter than this it documents nothing.
RISK_ASSESSMENT_MIN_CHARS = 40
RISK_ASSESSMENT_FIELD = "comment"


def only_risk_assessments(evaluation: Decision) -> bool:
    """The screening is pending on documented risk assessments alone (EU 2006/17/EC Annex II 1.3 anti-HBc+ with
    HBsAg-, 1.4 reactive treponemal test; a superseded positive): nothing missing, nothing failed."""
    blocking = evaluation.blocking_reasons
    return bool(blocking) and all(r.outcome == "risk_assessment" for r in blocking)


def is_risk_assessed(decision: EligibilityDecision) -> bool:
    """An approval signed on a screening that awaited a documented risk assessment (written in its comment)."""
    return decision.meaning == APPROVED and decision.engine_status == "pending"


def _assessed_rules(decision: EligibilityDecision) -> set[str]:
    return {r["rule_id"] for r in decision.reasons if r.get("outcome") == "risk_assessment"}


def stands_on_risk_assessment(decision: EligibilityDecision | None, evaluation: Decision) -> bool:
    """QA's approval in force was signed on a documented risk assessment of exactly what the screening still
    awaits: the donor is approved while the screening alone says pending (the donor gate, the donor page)."""
    return (decision is not None and is_risk_assessed(decision) and only_risk_assessments(evaluation)
            and {r.rule_id for r in evaluation.blocking_reasons} <= _assessed_rules(decision))


def decide(session: Session, signer: Any, donor_id: int, meaning: str, password: str,
           comment: str = "", *, seen_digest: str | None = None) -> EligibilityDecision:
    """QA signs "Donor eligibility approved" (when the engine says eligible, or when it is pending on documented
    risk assessments alone and the comment is that written risk assessment) or "Donor ineligible" (when the engine
    says ineligible, or with a written reason otherwise). The engine's verdict, every reason and the rule set's
    id, version and SHA-256 are stored with the signed decision; the signer never entered the screening.

    `seen_digest`: screening_digest() of the screening the signer read (the donor page's decision form sends it;
    "" when a posted form lacks it, refused; None for in-process callers only). When the screening has changed since (a colleague recorded a result meanwhile), nothing is signed:
    a risk assessment written about what QA read must never cover a result QA never saw."""
    if meaning not in MEANINGS:
        raise ValidationFailed(f"Choose the meaning of the signature: {APPROVED} or {INELIGIBLE}.", field="meaning")
    comment = (comment or "").strip()
    if len(comment) > 2000:
        raise ValidationFailed("The comment is too long (2000 characters at most).", field="comment")
    with use_case(session, signer, f"QA decision: {meaning}"):
        donor = lock_donor(session, donor_id)  # another QA person signing now goes first or after, never beside
        if not signer.has_role("qa"):
            raise PermissionDenied("Only QA signs donor eligibility.")
        current = current_decision(session, donor.id)
        if current is not None:
            raise Conflict(f"QA already signed '{current.meaning}' for donor {donor.code}; it stands until new "
                           "information reopens it.")
        if signer.id in screening_enterers(session, donor):
            raise PermissionDenied(f"You entered or changed screening data of donor {donor.code}: another QA person "
                                   "must sign its eligibility (segregation of duties). Nothing was signed.")
        if meaning == APPROVED:
            _refuse_approval_while_tracing(session, donor)
        evaluation = evaluate_donor(session, donor)
        if seen_digest == "":
            raise Conflict(f"The form does not say which screening of donor {donor.code} you read: nothing was "
                           "signed. Reload the donor's page, read the screening, then sign.")
        if seen_digest is not None and seen_digest != screening_digest(evaluation):
            raise Conflict(f"The screening of donor {donor.code} changed since you opened the page (a result, an "
                           "answer or a detail was recorded meanwhile): nothing was signed. Read the screening again "
                           f"below (now: {evaluation.status}), then sign.")
        if meaning == APPROVED and evaluation.status == "pending" and only_risk_assessments(evaluation):
            if len(comment) < RISK_ASSESSMENT_MIN_CHARS:
                awaited = " ".join(r.text for r in evaluation.blocking_reasons)
                raise ValidationFailed(
                    "Approving this donor needs the documented risk assessment written in the comment (at least "
                    f"{RISK_ASSESSMENT_MIN_CHARS} characters: the investigation done, its results and why the donor "
                    f"is acceptable); it is signed and kept with the decision. Awaiting it: {awaited}",
                    field=RISK_ASSESSMENT_FIELD)
        elif meaning == APPROVED and evaluation.status != "eligible":
            blocking = " ".join(r.text for r in evaluation.blocking_reasons[:3])
            more = len(evaluation.blocking_reasons) - 3
            raise Conflict(f"Eligibility cannot be approved: the screening says {evaluation.status}. {blocking}"
                           + (f" (and {more} more)" if more > 0 else ""), field="meaning")
        if meaning == APPROVED:
            _refuse_approval_over_corrected_reactives(session, donor, comment)
        if meaning == INELIGIBLE and evaluation.status != "ineligible" and not comment:
            raise ValidationFailed("The screening does not say ineligible: write why you judge the donor ineligible.",
                                   field="comment")
        decision = EligibilityDecision(
            donor_id=donor.id, engine_status=evaluation.status, meaning=meaning, reasons_json=reasons_json(evaluation),
            comment=comment, ruleset_id=evaluation.ruleset_id, ruleset_version=evaluation.ruleset_version,
            ruleset_sha256=evaluation.ruleset_sha256, judged_at=utcnow(), decided_by_id=signer.id)
        session.add(decision)
        sign(session, signer, password, decision, meaning, required_role="qa")
        donor.status = "approved" if meaning == APPROVED else "ineligible"
        if meaning == INELIGIBLE:
            _lookback_for_a_past_approval(session, signer, donor)
    return decision


#: the shortest comment that approves a donor whose screening holds a result corrected away from a reactive value
CORRECTED_REACTIVE_COMMENT_MIN_CHARS = 20


def corrected_reactives(session: Session, donor: Donor) -> list[Any]:
    """The corrections of the donor's results away from a reactive value (queries.earlier_reactive_of), oldest
    first: QA answers them in the approval's comment."""
    results = list(session.scalars(select(ScreeningResult).where(ScreeningResult.donor_id == donor.id)
                                   .order_by(ScreeningResult.id)))
    return earlier_reactive_of(session, donor, results)


def _refuse_approval_over_corrected_reactives(session: Session, donor: Donor, comment: str) -> None:
    """A result corrected from positive or indeterminate to negative turned the screening eligible on a correction's
    word: QA approves only with a comment (at least CORRECTED_REACTIVE_COMMENT_MIN_CHARS characters, signed and
    kept with the decision) saying what was checked (the report or retest that shows the result negative). Before,
    a technician's "x" turned an HBsAg positive negative and QA approved with an empty comment."""
    corrected = corrected_reactives(session, donor)
    if not corrected or len(comment) >= CORRECTED_REACTIVE_COMMENT_MIN_CHARS:
        return
    listed = "; ".join(e.words() for e in corrected[:3]) + (f" (and {len(corrected) - 3} more)"
                                                             if len(corrected) > 3 else "")
    raise ValidationFailed(
        f"Comment: approving donor {donor.code} needs a comment signed with the approval (at least "
        f"{CORRECTED_REACTIVE_COMMENT_MIN_CHARS} characters; {len(comment)} given) saying what you checked of the "
        f"result{'s' if len(corrected) > 1 else ''} corrected away from a reactive value (the report or retest that "
        f"shows it negative): {listed}. Nothing was signed.", field="comment")


def _refuse_approval_while_tracing(session: Session, donor: Donor) -> None:
    """No approval while a lookback of the donor is open: the donor's lots are not traced yet, and an approval would
    make them usable again (clearance reads the donor's status). The lookback closes when QA starts the donor's
    recall, or with QA's note on the donor page when there is nothing to recall (lookback_closable)."""
    lookback = session.scalar(select(DonorLookback).where(
        DonorLookback.donor_id == donor.id, DonorLookback.closed_at.is_(None)).order_by(DonorLookback.id).limit(1))
    if lookback is not None:
        raise Conflict(f"Donor {donor.code} cannot be approved while lookback L-{lookback.id} is open (opened "
                       f"{lookback.opened_at:%Y-%m-%d}: {lookback.reason.rstrip('.')}). Close the lookback first: "
                       "start the donor's recall, or, if no lot was made from this donor or QA corrected the result that "
                       "opened it to negative, close it with a note on this page. Nothing was signed.", field="meaning")


def lookback_closable(session: Session, lookback: DonorLookback) -> str | None:
    """Why QA may close this open lookback with a note rather than by the donor's recall, or None:
    - "no_lots": no lot was ever made from the donor: nothing to trace or recall;
    - "corrected": the result that opened it was a typing error, corrected by QA to negative with a signature
      (services.correct_result): the news it carried is gone, and the donor's lots need no recall for it (a recall
      is terminal for a released lot: a typo must not cost the lot)."""
    from mscbatch.lots.models import Lot  # lots read donors: imported when called

    if session.scalar(select(Lot.id).where(Lot.donor_id == lookback.donor_id).limit(1)) is None:
        return "no_lots"
    if lookback.triggering_result_id is None:  # opened by QA signing "ineligible": no result to correct
        return None
    result = session.get(ScreeningResult, lookback.triggering_result_id)
    signed = session.scalar(select(Signature.id).where(
        Signature.entity_type == "donor_screening_result", Signature.entity_id == str(lookback.triggering_result_id),
        Signature.meaning == QA_CORRECTION_MEANING).limit(1))
    return "corrected" if result is not None and result.result == "negative" and signed is not None else None


def close_lookback_without_lots(session: Session, actor: Any, lookback_id: int, note: str) -> DonorLookback:
    """QA closes a donor lookback with a note when there is nothing to recall (lookback_closable): no lot was ever
    made from the donor, or the result that opened it was corrected by QA to negative (a typing error). Otherwise the
    donor's recall closes it (mscbatch.recall)."""
    note = (note or "").strip()
    if not actor.has_role("qa"):
        raise PermissionDenied("Only QA closes a donor lookback.")
    if len(note) < LOOKBACK_NOTE_MIN_CHARS:
        raise ValidationFailed(f"Closing note: write what was checked and why nothing needs tracing, at least "
                               f"{LOOKBACK_NOTE_MIN_CHARS} characters (this one has {len(note)}).", field="note")
    if len(note) > 2000:
        raise ValidationFailed("Closing note: 2000 characters at most.", field="note")
    found = session.get(DonorLookback, lookback_id)
    if found is None:
        raise NotFound(f"No donor lookback with id {lookback_id}.")
    with use_case(session, actor, f"lookback closed without a recall: {note}"):
        donor = lock_donor(session, found.donor_id)
        lookback = session.get(DonorLookback, lookback_id, populate_existing=True)
        if lookback is None:
            raise NotFound(f"No donor lookback with id {lookback_id}: it is no longer recorded. Nothing was recorded.")
        if lookback.closed_at is not None:
            raise Conflict(f"Lookback L-{lookback.id} of donor {donor.code} is closed already. Nothing was recorded.")
        why = lookback_closable(session, lookback)
        if why is None:
            raise Conflict(f"Lots were made from donor {donor.code}: the lookback closes when QA starts the donor's "
                           "recall (Recalls page), or, if the result that opened it was a typing error, once QA has "
                           "corrected that result to negative with a signature. Nothing was recorded.", field="note")
        lookback.closed_at = utcnow()
        lookback.closed_by_id = actor.id
        lookback.closure_note = (f"Closed without a recall ({CLOSABLE_WORDS[why]}): {note}")
    return lookback


#: why a lookback was closed without a recall, as its closing note says
CLOSABLE_WORDS = {"no_lots": "no lot was made from this donor",
                  "corrected": "the result that opened it was corrected by QA to negative, signed"}


#: the shortest note that closes a lookback of a donor with no lot
LOOKBACK_NOTE_MIN_CHARS = 20


def _lookback_for_a_past_approval(session: Session, signer: Any, donor: Donor) -> None:
    """QA judges ineligible a donor approved in the past: lots made under that approval may have been issued, so a
    lookback is opened (DOMAIN.md section 8), as a late positive opens one. Needed where the approval was
    superseded by news that opened none (a negative retest) and what excludes came later (an answer or a detail
    corrected, QA's own judgement); not when a lookback is open or a recall of the donor is in force already."""
    from mscbatch.recall.queries import recall_in_force_of  # recall reads donors: imported when called

    approved = session.scalar(select(EligibilityDecision).where(
        EligibilityDecision.donor_id == donor.id, EligibilityDecision.meaning == APPROVED)
        .order_by(EligibilityDecision.id.desc()).limit(1))
    if approved is None:
        return  # never approved: no lot of this donor could be released
    already_open = session.scalar(select(DonorLookback.id).where(
        DonorLookback.donor_id == donor.id, DonorLookback.closed_at.is_(None)).limit(1))
    if already_open is not None or recall_in_force_of(session, "donor", donor.id) is not None:
        return
    session.add(DonorLookback(
        donor_id=donor.id, opened_by_id=signer.id, superseded_decision_id=approved.id,
        reason=f"QA signed '{INELIGIBLE}' for donor {donor.code}, approved by QA on {approved.judged_at:%Y-%m-%d %H:%M} "
               "UTC" + (f" until {approved.superseded_reason.rstrip('.')}" if approved.superseded_reason else "")
               + ": lots made from this donor under that approval may have been issued."))


def reopen(session: Session, actor: Any, donor: Donor, decision: EligibilityDecision, reason: str, *,
           triggering_result: ScreeningResult | None = None, lookback: bool = True) -> DonorLookback | None:
    """Inside a use case: supersede the signed decision (never edit it), put the donor back to pending review
    and, if the donor was approved, open a lookback that the lot and recall capabilities join to the lots."""
    decision.superseded_at = utcnow()
    decision.superseded_reason = reason
    donor.status = "pending_review"
    if decision.meaning != APPROVED or not lookback:
        return None
    row = DonorLookback(donor_id=donor.id, opened_by_id=actor.id, reason=reason, superseded_decision_id=decision.id,
                        triggering_result_id=triggering_result.id if triggering_result is not None else None)
    session.add(row)
    return row


def reopen_screening(session: Session, actor: Any, donor_id: int, reason: str) -> EligibilityDecision:
    """QA reopens a signed decision on new information that is not a laboratory result (e.g. the donor
    reports an illness): the screening becomes editable again and an approved donor gets a lookback."""
    if not (reason or "").strip():
        raise ValidationFailed("Give the reason for reopening: it goes into the audit trail.", field="reason")
    with use_case(session, actor, reason):
        if not actor.has_role("qa"):
            raise PermissionDenied("Only QA reopens a signed donor decision.")
        donor = lock_donor(session, donor_id)
        decision = current_decision(session, donor.id)
        if decision is None:
            raise Conflict(f"Donor {donor.code} has no signed decision to reopen.")
        reopen(session, actor, donor, decision, reason.strip())
    return decision


#: the donor gate for a lot now: "ineligible" where donor_gate refuses
GateNow = Literal["approved", "pending", "ineligible"]


def donor_gate(session: Session, donor_id: int, collected_on: date | None = None) -> Literal["approved", "pending"]:
    """May a lot be started from this donor, and how (DOMAIN.md section 3, issue 3 point 6)?

    `collected_on`: the day the lot's tissue was really collected. QA approves a donor on the screening judged at
    the planned collection; a lot collected on another day is judged again at its own day, since a sample outside
    its window counts as missing (a donation months after the samples is not covered by them).

    "approved": QA's signed approval stands and the screening still says eligible, or still awaits only the risk
    assessments that approval documented -> a lot for clinical use.
    "pending": no decision yet, or reopened -> a lot may start in QUARANTINE only (released once approved).
    An ineligible donor (signed by QA, or the screening says so now) raises Conflict: no lot at all.
    """
    gate, refusal = _judged_gate(session, donor_id, collected_on, explain=False)
    if gate == "ineligible":
        raise Conflict(refusal[0])
    return gate


def donor_gate_reasons(session: Session, donor_id: int, collected_on: date) -> tuple[GateNow, list[str]]:
    """The donor gate for a lot collected on `collected_on` ("approved", "pending" or "ineligible", never raising)
    and why it does not say "approved", in the gate's own terms: the refusal's sentence for an ineligible donor; no
    signed decision, a decision reopened by new information, or a screening that no longer holds at that day (e.g.
    samples outside their windows for a lot collected later than planned, while the donor itself is approved).
    No reasons when the gate says "approved". One judgement of the donor, the same as donor_gate's."""
    return _judged_gate(session, donor_id, collected_on, explain=True)


def _judged_gate(session: Session, donor_id: int, collected_on: date | None,
                 explain: bool) -> tuple[GateNow, list[str]]:
    """donor_gate's one body: the gate, with the refusal's sentence for an ineligible donor and, when `explain`,
    the reasons of a pending gate (the lot's collection day `collected_on` named in them)."""
    donor = get_donor(session, donor_id)
    decision = current_decision(session, donor.id)
    if decision is not None and decision.meaning == INELIGIBLE:
        return "ineligible", [f"Donor {donor.code} was judged ineligible by QA on {decision.judged_at:%Y-%m-%d}: "
                              "no lot can be made from this donor."]
    evaluation = evaluate_donor(session, donor, collected_on)
    if evaluation.status == "ineligible":
        failed = " ".join(r.text for r in evaluation.reasons if r.outcome == "failed")
        return "ineligible", [f"Donor {donor.code} is ineligible on its screening: {failed} No lot can be made from "
                              "this donor."]
    if decision is not None and decision.meaning == APPROVED and evaluation.status == "eligible":
        return "approved", []
    if stands_on_risk_assessment(decision, evaluation):
        return "approved", []  # QA approved on a documented risk assessment of exactly these reasons
    if not explain:
        return "pending", []
    reasons: list[str] = []
    if decision is None:
        reopened = next((d for d in decisions_of(session, donor.id) if d.superseded_at is not None), None)
        if reopened is not None:
            reasons.append(f"QA's decision on donor {donor.code} ({reopened.meaning}, {reopened.judged_at:%Y-%m-%d}) "
                           f"was reopened on {reopened.superseded_at:%Y-%m-%d}"
                           + (f": {reopened.superseded_reason.rstrip('.')}" if reopened.superseded_reason else "")
                           + ". QA must sign the donor's eligibility again.")
        else:
            reasons.append(f"QA has not signed donor {donor.code}'s eligibility yet.")
    blocking = [r.text for r in evaluation.blocking_reasons]
    day = collected_on.isoformat() if collected_on is not None else ""
    if decision is not None and decision.meaning == APPROVED:
        reasons.append(f"QA approved donor {donor.code} on {decision.judged_at:%Y-%m-%d}, but judged at this lot's "
                       f"collection day ({day}) the screening says {evaluation.status}" + (":" if blocking else "."))
    elif blocking:
        reasons.append(f"Judged at this lot's collection day ({day}) the screening says {evaluation.status}:")
    reasons.extend(blocking)
    return "pending", reasons
