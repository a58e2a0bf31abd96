"""Donor registration and screening entry: one function per use case, each one audited transaction.

Rules enforced here (DOMAIN.md sections 1, 3, 9):
- only a technician registers donors and enters screening data;
- a correction of recorded data needs a reason (the audit trail keeps the old value);
- once QA has signed a decision the screening is locked: existing results, answers and donor details can no
  longer be changed; a NEW result is still accepted and reopens an approval (decisions.reopen); an ineligible decision stands.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.database import utcnow
from mscbatch.donors.decisions import reopen
from mscbatch.donors.models import (
    ANSWERS,
    APPROVED,
    QA_CORRECTION_MEANING,
    Donor,
    DonorLookback,
    EligibilityDecision,
    QuestionnaireAnswer,
    ScreeningResult,
)
from mscbatch.donors.queries import answers_of, current_decision, get_donor, lock_donor, rule_set_of
from mscbatch.donors.validation import (  # noqa: F401 (DonorDetails, details_problems: the views' names for them)
    DonorDetails,
    check_result,
    clean_details,
    details_problems,
    whose_birth,
)
from mscbatch.errors import Conflict, NotFound, PermissionDenied, RecordLocked, ValidationFailed
from mscbatch.lots.models import Lot
from mscbatch.signatures.services import sign
from mscbatch.site import site_today

ENTRY_ROLE = "technician"

#: the details a technician corrects on the donor's edit page (DonorDetails, as clean_details stores them)
DETAIL_FIELDS = ("tissue_source", "rule_set_id", "protocol", "donor_type", "relationship", "recipient_code", "initials",
                 "date_of_birth", "sex", "weight_kg", "consent_signed", "consent_date", "social_security",
                 "childbearing_potential", "contraception", "retest_180_days_negative", "planned_collection_date")


def _digest(values: Any) -> str:
    return hashlib.sha256(json.dumps(values, default=str, sort_keys=True).encode()).hexdigest()


def details_digest(donor: Donor) -> str:
    """A fingerprint of the donor's recorded details, carried by the edit page: a page opened before a colleague's
    correction would otherwise put back, unseen, every value it still shows (a withdrawn consent back to "yes")."""
    return _digest({key: getattr(donor, key) for key in DETAIL_FIELDS})


def result_digest(row: ScreeningResult) -> str:
    """A fingerprint of a recorded result, carried by its correction page (see details_digest)."""
    return _digest([row.marker, row.method, row.result, row.sample_date, row.lab_reference])


def questionnaire_digest(answers: Mapping[str, QuestionnaireAnswer]) -> str:
    """A fingerprint of the recorded answers, carried by the donor page's questionnaire: the page posts every answer
    it shows, so one opened before a colleague answered "yes" would otherwise put that "yes" back to "no"."""
    return _digest(sorted((qid, row.answer, row.detail) for qid, row in answers.items()))


class ChangedSince(Conflict):
    """The page was opened before a colleague changed the record: nothing was written."""


def _refuse_if_changed_since(seen: str | None, now: str, what: str) -> None:
    """`seen`: the fingerprint the page was given when it was opened (None: an in-process caller, or a form without
    it). Nothing is written when the record changed since: the page would put back the values it showed."""
    if seen and seen != now:
        raise ChangedSince(f"{what} changed since you opened this page (a colleague recorded a change meanwhile): nothing "
                       "was saved, so as not to put back the values the page showed. Read the recorded values again "
                       "below, then make your change.")


def _require_entry_role(actor: Any) -> None:
    if not actor.has_role(ENTRY_ROLE):
        raise PermissionDenied("Only a lab technician registers donors and enters their screening.")


def _next_code(session: Session) -> str:
    """D-<year>-<sequence>: unique, and says nothing about the person. The year is the site's (site_today), as lot
    numbers' and DINs': 00:30 on 1 January in Paris is still the old year in UTC. Writers are serialised (SQLite
    BEGIN IMMEDIATE; an advisory transaction lock on PostgreSQL) so two registrations never draw the same code."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(727003)"))
    prefix = f"D-{site_today().year}-"
    last = session.scalar(select(func.max(Donor.code)).where(Donor.code.like(prefix + "%")))
    number = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{prefix}{number:04d}"


def _refuse_recipient_of_another_protocol(session: Session, values: Mapping[str, Any]) -> None:
    """A familial donor gives to one recipient of its own protocol: a patient code registered under another protocol
    (or carrying another protocol's name, e.g. SLE-UC-001 for an SSc-BM donor) is refused, naming the field. A code
    not registered yet is accepted: in this app's flow the donor is registered before the patient, who is linked to
    the donor at registration."""
    recipient = values.get("recipient_code")
    if values.get("donor_type") != "familial" or not recipient:
        return
    from mscbatch.patients.models import Patient  # patients read donors: imported when called
    from mscbatch.patients.queries import protocols

    configured = protocols()
    protocol_id = session.scalar(select(Patient.protocol_id).where(Patient.code == recipient))
    if protocol_id is not None:
        found = configured.get(protocol_id)
        name = found.short_name if found is not None else protocol_id
        if name.upper() != str(values["protocol"]).upper():
            raise ValidationFailed(f"Intended recipient: patient {recipient} is in protocol {name}, not in this donor's "
                                   f"protocol {values['protocol']}. Give the code of a {values['protocol']} patient.",
                                   field="recipient_code")
        return
    for other in configured.values():
        prefix = other.short_name.upper() + "-"
        if other.short_name.upper() != str(values["protocol"]).upper() and recipient.startswith(prefix):
            raise ValidationFailed(f"Intended recipient: {recipient} is a code of protocol {other.short_name}, not of "
                                   f"this donor's protocol {values['protocol']}. Give the code of a "
                                   f"{values['protocol']} patient.", field="recipient_code")


def other_donors_of_recipient(session: Session, donor: Donor) -> list[Donor]:
    """The other familial donors registered for the donor's intended recipient, oldest first."""
    if donor.donor_type != "familial" or not donor.recipient_code:
        return []
    return list(session.scalars(select(Donor).where(Donor.donor_type == "familial",
                                                    Donor.recipient_code == donor.recipient_code,
                                                    Donor.id != donor.id).order_by(Donor.id)))


def register_donor(session: Session, actor: Any, details: DonorDetails) -> Donor:
    _require_entry_role(actor)
    values = clean_details(details)
    _refuse_recipient_of_another_protocol(session, values)
    with use_case(session, actor):
        donor = Donor(code=_next_code(session), status="screening", registered_by_id=actor.id, **values)
        session.add(donor)
    return donor


def locked_words(session: Session, donor: Donor, what: str) -> str | None:
    """Why the donor's screening can no longer be changed (QA signed its decision), or None while it can."""
    decision = current_decision(session, donor.id)
    if decision is None:
        return None
    return (f"The screening of donor {donor.code} is locked: QA signed '{decision.meaning}' on "
            f"{decision.judged_at:%Y-%m-%d %H:%M} UTC. {what} Record a new result instead (it reopens "
            "an approval for QA), or ask QA to reopen the screening.")


def _refuse_if_locked(session: Session, donor: Donor, what: str) -> None:
    words = locked_words(session, donor, what)
    if words is not None:
        raise RecordLocked(words)


#: the donor's details that say who may receive its bags (a familial donor's bags are for one recipient only)
DIRECTING_FIELDS = {"donor_type": "donor type", "relationship": "relationship", "recipient_code": "intended recipient"}


def _refuse_recipient_change_after_lots(session: Session, donor: Donor, values: Mapping[str, Any]) -> None:
    """Once a lot exists from the donor, its bags are labelled and allocated for the recipient recorded now (a bag's
    intended recipient is read from its donor): donor type, relationship and recipient can no longer change, even
    after a new result or QA reopened the screening (DOMAIN.md section 2: for use by the intended recipient only)."""
    changed = [key for key in DIRECTING_FIELDS if values[key] != getattr(donor, key)]
    if not changed:
        return
    lots = list(session.scalars(select(Lot.lot_number).where(Lot.donor_id == donor.id).order_by(Lot.id).limit(4)))
    if not lots:
        return
    directed = (f"directed to {donor.recipient_code} only" if donor.donor_type == "familial" and donor.recipient_code
                else "not directed to one recipient (unrelated donor)")
    shown = ", ".join(lots[:3]) + (" and more" if len(lots) > 3 else "")
    field = changed[0]
    raise Conflict(f"The {DIRECTING_FIELDS[field]} of donor {donor.code} cannot change: a lot has been made from this "
                   f"donor ({shown}); its bags are {directed}. Register a new donor for another recipient.",
                   field=field)


def _refuse_birth_after_samples(session: Session, donor: Donor, born: date | None) -> None:
    """A corrected date of birth may not fall after a sample already recorded: one of the two dates is wrong."""
    if born is None or born == donor.date_of_birth:
        return
    first = session.scalar(select(func.min(ScreeningResult.sample_date)).where(ScreeningResult.donor_id == donor.id))
    if first is not None and first < born:
        raise ValidationFailed(f"Date of birth {born} is after a sample already recorded for donor {donor.code} "
                               f"(sampled {first}), and {whose_birth(donor.tissue_source)} must come before it: "
                               "check the date of birth, or correct that result's sample date first.",
                               field="date_of_birth")


def update_donor(session: Session, actor: Any, donor_id: int, details: DonorDetails, reason: str, *,
                 seen_digest: str | None = None) -> Donor:
    """Correct the donor's recorded details (reason required; refused once QA has signed, and when the details
    changed since the page was opened: `seen_digest`, details_digest() of what the page showed)."""
    _require_entry_role(actor)
    values = clean_details(details)
    if not (reason or "").strip():
        raise ValidationFailed("Give a reason for the correction: it goes into the audit trail.", field="reason")
    with use_case(session, actor, reason):
        donor = lock_donor(session, donor_id)
        _refuse_if_locked(session, donor, "Its details can no longer be corrected.")
        _refuse_if_changed_since(seen_digest, details_digest(donor), f"The details of donor {donor.code}")
        if values["rule_set_id"] != donor.rule_set_id:
            raise ValidationFailed("The rule set cannot change after registration; register a new donor.",
                                   field="rule_set_id")
        _refuse_recipient_change_after_lots(session, donor, values)
        if values["recipient_code"] != donor.recipient_code:
            _refuse_recipient_of_another_protocol(session, values)
        _refuse_birth_after_samples(session, donor, values["date_of_birth"])
        changed = False
        for key, value in values.items():
            if getattr(donor, key) != value:
                setattr(donor, key, value)
                changed = True
        if changed:
            donor.updated_by_id = actor.id
    return donor


def result_problems(session: Session, donor_id: int, *, marker: str, result: str, sample_date: date | None,
                    lab_reference: str) -> dict[str, list[str]]:
    """Every problem of a result, field by field, for a page that also shows its own parsing errors."""
    try:
        check_result(get_donor(session, donor_id), marker, None, result, sample_date, lab_reference)
    except ValidationFailed as refused:
        return refused.errors
    return {}


def record_result(session: Session, actor: Any, donor_id: int, *, marker: str, result: str,
                  sample_date: date | None, lab_reference: str, method: str | None = None) -> ScreeningResult:
    """Record a serology / NAT result. After QA's approval it is new information: the approval is reopened
    (superseded, donor back to pending review) and a lookback is opened unless the result is negative; a result
    that is not negative for a donor approved in the past (the approval since superseded) opens one too, unless a
    lookback is open for the donor already. QA's
    "ineligible" stands whatever is recorded later: only QA reopens it (reopen_screening), so a technician's
    negative retest cannot turn an excluded donor back into a pending one."""
    _require_entry_role(actor)
    with use_case(session, actor, f"screening result {marker} {result} recorded"):
        donor = lock_donor(session, donor_id)  # a QA signature now either weighs this result or is reopened by it
        method, reference = check_result(donor, marker, method, result, sample_date, lab_reference)
        row = ScreeningResult(donor_id=donor.id, marker=marker, method=method, result=result,
                              sample_date=sample_date, lab_reference=reference, entered_by_id=actor.id)
        session.add(row)
        session.flush()
        decision = current_decision(session, donor.id)
        if decision is not None and decision.meaning == APPROVED:
            reopen(session, actor, donor, decision, f"New {_marker_name(donor, marker)} result ({result}, sample "
                   f"{sample_date}) recorded after the QA decision.", triggering_result=row,
                   lookback=result != "negative")
        elif result != "negative":
            _lookback_after_a_past_approval(session, actor, donor, row)
    return row


def _marker_name(donor: Donor, marker: str) -> str:
    """The marker as the donor's pages name it (its rule set's name, e.g. "Anti-HCV"), not its stored code: the
    reopening and lookback reasons are read on the donor and lot pages."""
    found = rule_set_of(donor).marker(marker)
    return found.name if found is not None else marker


def _lookback_after_a_past_approval(session: Session, actor: Any, donor: Donor, row: ScreeningResult) -> None:
    """A result that is not negative for a donor whose approval is no longer in force (superseded by an earlier new
    result, e.g. a negative retest, or followed by QA's "ineligible"): lots made under that approval may have been
    issued, so a lookback is opened as for an approval in force, linked to the last approval, unless one is already
    open for the donor (the open one already lists every lot and bag of the donor)."""
    approved = session.scalar(select(EligibilityDecision).where(
        EligibilityDecision.donor_id == donor.id, EligibilityDecision.meaning == APPROVED)
        .order_by(EligibilityDecision.id.desc()).limit(1))
    if approved is None:
        return  # never approved: no lot could be released from this donor (lots start in quarantine)
    already_open = session.scalar(select(DonorLookback.id).where(
        DonorLookback.donor_id == donor.id, DonorLookback.closed_at.is_(None)).limit(1))
    if already_open is not None:
        return
    reason = (f"New {_marker_name(donor, row.marker)} result ({row.result}, sample {row.sample_date}) recorded after QA's approval of "
              f"{approved.judged_at:%Y-%m-%d}" + (f" (superseded {approved.superseded_at:%Y-%m-%d})"
                                                  if approved.superseded_at is not None else "")
              + ": lots made from this donor may have been issued.")
    session.add(DonorLookback(donor_id=donor.id, opened_by_id=actor.id, reason=reason,
                              superseded_decision_id=approved.id, triggering_result_id=row.id))



def late_news_of(session: Session, row: ScreeningResult) -> str | None:
    """Why a recorded result is late news that only QA may correct, with a signature, or None: it opened a lookback,
    or it is not negative and was recorded after a QA approval of the donor. A technician alone correcting it would
    erase the news that reopened the donor, and QA would approve again a donor whose released lots the lookback is
    still tracing."""
    return late_news_for(session, [row])[row.id]


def late_news_for(session: Session, rows: list[ScreeningResult]) -> dict[int, str | None]:
    """late_news_of for each of the results (result id -> words or None), in at most two statements whatever their
    number: the lookbacks they opened, then, for a result not negative that opened none, the first approval of its
    donor dated at or before it was recorded (a negative is no news: no approval is read for it)."""
    news: dict[int, str | None] = {row.id: None for row in rows}
    if not rows:
        return news
    for lookback in session.scalars(select(DonorLookback).where(
            DonorLookback.triggering_result_id.in_(list(news))).order_by(DonorLookback.id)):
        if news[lookback.triggering_result_id] is None:  # the first lookback it opened
            news[lookback.triggering_result_id] = (f"This result opened the donor's lookback L-{lookback.id} "
                                                   f"({lookback.opened_at:%Y-%m-%d})")
    # a negative recorded after an approval reopened it too, but correcting it erases no news (the approval stays
    # superseded; corrected into news it opens a lookback): a technician still corrects it
    news_left = [row.id for row in rows if news[row.id] is None and row.result != "negative"]
    if not news_left:
        return news
    words = {row.id: row.result for row in rows}
    # the first approval (by id) of the result's donor dated at or before the result was recorded: one statement
    first_approval = (select(EligibilityDecision.judged_at).where(
        EligibilityDecision.donor_id == ScreeningResult.donor_id, EligibilityDecision.meaning == APPROVED,
        EligibilityDecision.judged_at <= ScreeningResult.entered_at)
        .order_by(EligibilityDecision.id).limit(1).correlate(ScreeningResult).scalar_subquery())
    for result_id, judged in session.execute(select(ScreeningResult.id, first_approval).where(
            ScreeningResult.id.in_(news_left))):
        if judged is not None:
            news[result_id] = (f"This {words[result_id]} result was recorded after QA's approval of "
                               f"{judged:%Y-%m-%d} and reopened the donor's approval")
    return news


def correct_result(session: Session, actor: Any, result_id: int, *, reason: str, marker: str, result: str,
                   sample_date: date | None, lab_reference: str, seen_digest: str | None = None,
                   password: str | None = None) -> ScreeningResult:
    """Correct a recorded result (typing error): reason required, old value kept by the audit trail. `seen_digest`:
    result_digest() of the result the correction page showed; refused when it was corrected since.

    A technician corrects results that are not late news. Late news (late_news_of: the result reopened an approval
    or opened a lookback) is corrected only by QA (`password` given: QA's e-signature, bound to the corrected
    result), the lookback still open: the donor stays unapproved until QA closes it (a corrected typing error closes
    it with a note, decisions.lookback_closable) and another approval is signed."""
    by_qa = password is not None
    if by_qa:
        if not actor.has_role("qa"):
            raise PermissionDenied("Only QA corrects, with a signature, a result that reopened a donor's approval.")
    else:
        _require_entry_role(actor)
    if not (reason or "").strip():
        raise ValidationFailed("Give a reason for the correction: it goes into the audit trail.", field="reason")
    with use_case(session, actor, reason):
        row = session.get(ScreeningResult, result_id)
        if row is None:
            raise NotFound(f"No screening result with id {result_id}.")
        donor = lock_donor(session, row.donor_id)
        # read again under the donor's lock: a correction committed meanwhile (PostgreSQL) is what this one
        # changes, and the trail's old value is that correction's, never the value from before it
        session.refresh(row)
        _refuse_if_locked(session, donor, "Its results can no longer be corrected.")
        late = late_news_of(session, row)
        if late is not None and not by_qa:
            raise Conflict(f"{late}: only QA can correct it, with a signature. Nothing was corrected.", field="result")
        if late is None and by_qa:
            raise Conflict("This result did not reopen the donor's approval: a technician corrects it. Nothing was "
                           "corrected.", field="result")
        _refuse_if_changed_since(seen_digest, result_digest(row), f"This result of donor {donor.code}")
        _refuse_marker_change_of_a_reactive(session, donor, row, marker)
        weak = reactive_correction_reason_problem(row.result, result, reason)
        if weak is not None:
            raise ValidationFailed(weak, field="reason")
        method, reference = check_result(donor, marker, None, result, sample_date, lab_reference)
        new = dict(marker=marker, method=method, result=result, sample_date=sample_date, lab_reference=reference)
        if all(getattr(row, k) == v for k, v in new.items()):
            raise ValidationFailed("Nothing was changed.", field="result")
        before = (row.marker, row.result)
        for key, value in new.items():
            setattr(row, key, value)
        row.corrected_by_id = actor.id
        if by_qa:
            assert password is not None
            sign(session, actor, password, row, QA_CORRECTION_MEANING, required_role="qa", lock=False)
        if result != "negative" and (marker, result) != before:  # news: a negative, an indeterminate or another
            session.flush()  # marker's result corrected into a result that is not negative for this marker
            _lookback_after_a_past_approval(session, actor, donor, row)
    return row


#: the shortest reason that corrects a reactive result (positive, indeterminate) to negative, as a lookback's
#: closing note: "typo" or "x" documents nothing, and the correction removes the news QA would have read
REACTIVE_CORRECTION_REASON_MIN_CHARS = 20


def reactive_correction_reason_problem(was: str, result: str, reason: str | None) -> str | None:
    """Why the reason cannot correct a result recorded `was` to `result`, or None. A reactive result (anything not
    negative: positive, indeterminate) corrected to negative removes an exclusion or a lookback's news: its reason
    must say why, and which report or retest shows it (at least REACTIVE_CORRECTION_REASON_MIN_CHARS characters).
    The same rule for a technician's correction and QA's signed one."""
    given = len((reason or "").strip())
    if was == "negative" or result != "negative" or given >= REACTIVE_CORRECTION_REASON_MIN_CHARS:
        return None
    article = "an" if was[:1] in "aeiou" else "a"
    return (f"Reason: {article} {was} (reactive) result corrected to negative needs the reason and the report or retest that "
            f"shows it (at least {REACTIVE_CORRECTION_REASON_MIN_CHARS} characters; {given} given). Nothing was "
            "corrected.")


def reactive_value_of(session: Session, row: ScreeningResult) -> str | None:
    """The first value other than negative the result ever had ("positive", "indeterminate"), now or before a
    correction (the audit trail keeps each old value), or None for a result that was always negative."""
    if row.result != "negative":
        return row.result
    for old in session.scalars(select(AuditEvent.old_value).where(
            AuditEvent.entity_type == ScreeningResult.__tablename__, AuditEvent.entity_id == str(row.id),
            AuditEvent.action == "update", AuditEvent.field == "result").order_by(AuditEvent.seq)):
        value = (old or "").strip('"')
        if value and value != "negative":
            return value
    return None


def _refuse_marker_change_of_a_reactive(session: Session, donor: Donor, row: ScreeningResult, marker: str) -> None:
    """A result that was ever positive or indeterminate keeps its marker: a correction that also changed the marker
    turned an Anti-HIV-1/2 positive into a CMV IgM negative, and QA's warning then named CMV IgM. The other marker's
    result is recorded as a new result; this one's result is corrected, with its reason."""
    if marker == row.marker:
        return
    was = reactive_value_of(session, row)
    if was is None:
        return
    raise Conflict(f"A result recorded {was.upper()} for {_marker_name(donor, row.marker)} keeps its marker: record "
                   "the other marker as a new result; correct this one's result with its reason. Nothing was "
                   "corrected.", field="marker")


def _yes_needs_detail(question: Any) -> str:
    """What a "yes" means for this question, and that its detail is needed (donor_rules.Question.excludes)."""
    if question.excludes:
        return "A 'yes' answer excludes the donor: write what it is."
    consequence = (question.note or "it decides which tests are required.").rstrip(".")
    return f"A 'yes' here does not exclude the donor ({consequence}): write the detail (what, where, who)."


def answer_questionnaire(session: Session, actor: Any, donor_id: int, answers: Mapping[str, tuple[str, str]],
                         reason: str | None = None, *, seen_digest: str | None = None) -> int:
    """Record the exclusion questionnaire: question id -> (yes | no | unknown, detail). A "yes" needs its
    detail. Changing an earlier answer needs a reason. Returns how many answers were written. `seen_digest`:
    questionnaire_digest() of the answers the page showed; refused when they changed since."""
    _require_entry_role(actor)
    with use_case(session, actor, reason):
        donor = lock_donor(session, donor_id)
        questions = {q.id: q for q in rule_set_of(donor).questions}
        errors: dict[str, list[str]] = {}
        for question_id, (answer, detail) in answers.items():
            if question_id not in questions:
                errors[f"q_{question_id}"] = ["Not a question of this donor's rule set."]
            elif answer not in ANSWERS:
                errors[f"q_{question_id}"] = ["Answer yes, no or unknown."]
            elif answer == "yes" and not (detail or "").strip():
                errors[f"d_{question_id}"] = [_yes_needs_detail(questions[question_id])]
        if errors:
            raise ValidationFailed("Some answers need attention; see the marked questions.", errors=errors)
        existing = answers_of(session, donor.id)
        written = 0
        changes = [(qid, a, (d or "").strip()) for qid, (a, d) in answers.items()
                   if qid not in existing or (existing[qid].answer, existing[qid].detail) != (a, (d or "").strip())]
        if changes:
            _refuse_if_locked(session, donor, "Its questionnaire can no longer be changed.")
            _refuse_if_changed_since(seen_digest, questionnaire_digest(existing),
                                     f"The questionnaire of donor {donor.code}")
        if any(qid in existing for qid, _a, _d in changes) and not (reason or "").strip():
            raise ValidationFailed("You changed earlier answers: give a reason (it goes into the audit trail).",
                                   field="reason")
        for question_id, answer, detail in changes:
            row = existing.get(question_id)
            if row is None:
                session.add(QuestionnaireAnswer(donor_id=donor.id, question_id=question_id, answer=answer,
                                                detail=detail, answered_by_id=actor.id))
            else:
                row.answer, row.detail, row.answered_by_id, row.answered_at = answer, detail, actor.id, utcnow()
            written += 1
    return written
