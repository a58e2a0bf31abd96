"""Out-of-specification investigations (DOMAIN.md section 5; FDA OOS guidance 2006; EU GMP ch. 6 and Part IV 11).

A failing blocking result opens an OOS automatically (no one can forget it). QA investigates and closes it with
an electronic signature, either
- invalidated: the phase I laboratory investigation documents an assignable laboratory cause (one of
  core.oos_causes, signed with the investigation) and a valid retest result (entered after the OOS opened)
  replaces the failing one, which stays recorded, flagged invalid; without an assignable cause there is no
  invalidation (FDA OOS guidance 2006; MHRA OOS guidance): or
- confirmed: the failure stands and the lot is rejected (signed "Rejected") in the same transaction; no cause. A
  lot already released (conditionally, or a late failure) is recalled instead. A lot QA released exceptionally for
  this very OOS (the clinician's signed request and QA's countersignature: exceptional use of an OOS batch to avoid
  a significant hazard, DOMAIN.md section 5, EU GMP Part IV 11.5) was supplied knowing it failed: its confirmation
  concludes "confirmed: lot supplied under exceptional release" (CONFIRMED_SUPPLIED), with no recall.
Either way only by a QA person who neither entered results of the lot nor recorded its manufacture (refuse_involved,
the release's rule: EU GMP ch. 2, Reg. 2017/1569 art. 10).
A failure after a conditional release is a late OOS: it lists every patient who already received the lot.
"""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.core.oos_causes import ASSIGNABLE_CAUSES, cause_words, is_cause
from mscbatch.core.release_spec import ResultValueError, judge_value, parse_result_value
from mscbatch.database import utcnow
from mscbatch.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from mscbatch.lots.models import Lot
from mscbatch.lots.services import lock_lot
from mscbatch.release.models import OOS_CONFIRMED, OOS_INVALIDATED, OOS_OPEN, OosInvestigation, ReleaseResult
from mscbatch.release.texts import SIGNED_TEXT_MAX_CHARS, too_long
from mscbatch.signatures.services import PASSWORD_NOT_TYPED, PasswordNotTyped, sign

INVALIDATED_MEANING = "OOS invalidated (laboratory error, valid retest)"
CONFIRMED_MEANING = "OOS confirmed"
#: the conclusion (OosInvestigation.conclusion, a string column of 20) of an OOS confirmed on a lot released
#: exceptionally for it: the failure stands, the lot was knowingly supplied to its one patient, no recall
CONFIRMED_SUPPLIED = "confirmed_supplied"
#: the investigation and conclusion QA signs, at most: the release record's one rule (texts.SIGNED_TEXT_MAX_CHARS,
#: the form's maxlength too), read at each signature so that a test can write a record from before the rule
INVESTIGATION_MAX_CHARS = SIGNED_TEXT_MAX_CHARS


#: bag custody states meaning the bag has left the unit for its patient (core.states.BAG)
RECEIVED_BAG_STATES = ("dispatched", "received", "thawed", "infused")


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def patients_who_received(session: Session, lot_id: int) -> list[dict[str, Any]]:
    """Every patient who already received a bag of the lot, for a late OOS notification (EU GMP Part IV 11).

    Today "received" is read from the patients and lots tables: the patient holds a signed (locked),
    non-cancelled prescription with an allocation of a bag of this lot, and that bag's custody status is
    dispatched, received, thawed or infused (it has left the unit for that patient). An allocation released
    later without cancelling its prescription still counts: a late OOS rather notifies one patient too many
    than misses one. The custody capability (mscbatch/custody: custody events, infusions) can refine this
    once it lands: infusion start/end, who infused, the volume actually given.

    One entry per patient (JSON values, stored on the OOS): code, ward, prescribing clinician, prescription(s)
    with the signature time, and each bag with its DIN, status and the UTC time it reached that status (from
    the audit trail); `summary` is the same in one line for pages and the certificate.
    """
    from mscbatch.auth.models import User
    from mscbatch.lots.models import Bag
    from mscbatch.patients.models import Allocation, Patient, Prescription

    rows = session.execute(
        select(Allocation, Prescription, Patient, Bag)
        .join(Prescription, Prescription.id == Allocation.prescription_id)
        .join(Patient, Patient.id == Allocation.patient_id)
        .join(Bag, Bag.id == Allocation.bag_id)
        .where(Bag.lot_id == lot_id, Bag.status.in_(RECEIVED_BAG_STATES), Prescription.status != "cancelled",
               Prescription.locked_at.is_not(None))
        .order_by(Patient.code, Allocation.id)).all()
    if not rows:
        return []
    since = _status_times(session, [(bag.id, bag.status) for _a, _p, _pt, bag in rows])
    prescribers = {u.id: u.full_name for u in session.scalars(
        select(User).where(User.id.in_({rx.prescribed_by_id for _a, rx, _pt, _b in rows})))}
    patients: dict[int, dict[str, Any]] = {}
    shown = {bag.din: din_shown(bag) for _a, _p, _pt, bag in rows}  # the summary names a bag as its label does
    for allocation, rx, patient, bag in rows:
        entry = patients.setdefault(patient.id, {
            "patient_code": patient.code, "patient_id": patient.id, "ward": patient.ward,
            "clinician": prescribers.get(rx.prescribed_by_id, ""), "prescriptions": [], "bags": []})
        signed = {"id": rx.id, "signed_at": _iso(rx.locked_at), "status": rx.status}
        if signed not in entry["prescriptions"]:
            entry["prescriptions"].append(signed)
        entry["bags"].append({"din": bag.din, "status": bag.status, "status_since": _iso(since.get(bag.id)),
                              "allocated_at": _iso(allocation.allocated_at), "volume_ml": f"{allocation.volume_ml:f}",
                              "prescription_id": rx.id})
    out = []
    for entry in patients.values():
        bags = "; ".join(f"bag {shown[b['din']]} {b['status']}" + (f" {b['status_since']} UTC" if b["status_since"] else "")
                         for b in entry["bags"])
        signed = ", ".join(f"prescription {p['id']} signed {p['signed_at']} UTC" for p in entry["prescriptions"])
        entry["summary"] = f"{entry['patient_code']} ({entry['ward']}; {entry['clinician']}): {bags}; {signed}"
        out.append({"summary": entry.pop("summary"), **entry})
    return out


def _status_times(session: Session, bags: list[tuple[int, str]]) -> dict[int, Any]:
    """bag id -> when (UTC) the bag last moved to its current status, read from the audit trail."""
    from mscbatch.audit.models import AuditEvent

    wanted = {str(bag_id): status for bag_id, status in bags}
    out: dict[int, Any] = {}
    for event in session.scalars(select(AuditEvent).where(
            AuditEvent.entity_type == "bag", AuditEvent.entity_id.in_(list(wanted)), AuditEvent.field == "status")
            .order_by(AuditEvent.seq)):
        if event.new_value == wanted.get(event.entity_id or ""):
            out[int(event.entity_id or 0)] = event.occurred_at
    return out


def pending_at_conditional_release(session: Session, lot: Lot) -> list[str]:
    """The tests named pending at the lot's signed conditional release, while their results are still awaited: the
    lot is conditionally released, or was recalled from its conditional release (no completion signed). Their
    results are still entered after the recall: a late positive sterility must be documented, and its late OOS
    lists the patients who received the lot (EU GMP Part IV 11)."""
    from mscbatch.release.queries import dispositions_of, named_pending, pending_conditional_tests

    if lot.status == "conditional_release":
        return pending_conditional_tests(session, lot)
    if lot.status != "recalled":
        return []
    signed = [d for d in dispositions_of(session, lot.id) if d.signed_at is not None]
    if any(d.kind in ("completion", "release", "exceptional_release") for d in signed):
        return []  # released in full: nothing was pending any more when it was recalled
    return named_pending(signed)


def open_oos(session: Session, lot: Lot, result: ReleaseResult, description: str) -> OosInvestigation:
    """Inside the caller's use case: open the investigation for a failing result (late if the lot is already
    conditionally released, or was recalled from its conditional release before this pending test's result came
    in, with the patients to notify)."""
    late = lot.status == "conditional_release" or (
        lot.status == "recalled" and result.test_id in pending_at_conditional_release(session, lot))
    patients = patients_who_received(session, lot.id) if late else []
    prefix = ("" if not late else "LATE OOS after conditional release: " if lot.status == "conditional_release"
              else "LATE OOS after conditional release (the lot was recalled since): ")
    oos = OosInvestigation(lot_id=lot.id, result_id=result.id, test_id=result.test_id,
                           description=prefix + description,
                           status=OOS_OPEN, late=late, patients_to_notify=json.dumps(patients), opened_at=utcnow())
    session.add(oos)
    session.flush()
    return oos


def open_oos_of(session: Session, lot_id: int) -> list[OosInvestigation]:
    return list(session.scalars(select(OosInvestigation).where(OosInvestigation.lot_id == lot_id,
                                                               OosInvestigation.status == OOS_OPEN)))


def oos_of(session: Session, lot_id: int) -> list[OosInvestigation]:
    return list(session.scalars(select(OosInvestigation).where(OosInvestigation.lot_id == lot_id)
                                .order_by(OosInvestigation.id)))


def get_oos(session: Session, oos_id: int) -> OosInvestigation:
    oos = session.get(OosInvestigation, oos_id)
    if oos is None:
        raise NotFound(f"No OOS investigation with id {oos_id}.")
    return oos


def _open(session: Session, signer: Any, oos_id: int, seen: str | None) -> OosInvestigation:
    """The open investigation, its lot row locked first (lots.services.lock_lot, as a release locks it) and the
    investigation read afresh after the lock: closing it changes the lot's verdict, and confirming it decides the
    lot's status, so a release or another QA person closing it at the same moment goes first or after, not beside.
    Refused, before anything is written or the password checked, if the lot's record changed since its review page
    showed it (`seen`, release.release.check_seen; None: no page, not checked): a confirmation signs the lot's
    rejection or recall, an invalidation signs on the retest's value, as that page showed them. Whoever entered
    results of the lot or recorded its manufacture does not conclude its OOS, either way (refuse_involved): the same
    rule as for its release. The fields QA typed are judged by the caller, all at once (Problems)."""
    from mscbatch.release.release import check_seen

    if signer is None or not signer.has_role("qa"):
        raise PermissionDenied("Only QA concludes an OOS investigation. Nothing was signed.")
    lot = lock_lot(session, get_oos(session, oos_id).lot_id)
    oos = session.get(OosInvestigation, oos_id, populate_existing=True)
    assert oos is not None  # investigations are never deleted
    if oos.status != OOS_OPEN:
        raise Conflict(f"This OOS investigation is already closed ({oos.status}).")
    check_seen(session, lot, seen)
    refuse_involved(session, lot, signer)
    return oos


#: the shortest investigation and conclusion QA signs
INVESTIGATION_MIN_CHARS = 10


#: the close form's fields in the order the page shows them, the order the problems are said in
FORM_ORDER = ("investigation", "assignable_cause", "retest_result_id", "password")


class Problems:
    """Every problem of the fields QA filled in, said at once (field -> the refusal naming it and its rule), so that
    a form with three fields wrong is refused once with three messages, not three times with one. Raised together
    before the password is checked or anything is written (refuse)."""

    def __init__(self) -> None:
        self.found: list[tuple[str, DomainError]] = []

    def add(self, error: DomainError) -> None:
        self.found.append((error.field or "", error))

    def check(self, step: Any, *args: Any, **kwargs: Any) -> Any:
        """`step(*args)`, its refusal of a field kept instead of raised (None then); a refusal naming no field (the
        record's, such as a specification that cannot read a stored result) is raised at once."""
        try:
            return step(*args, **kwargs)
        except DomainError as error:
            if not error.field:
                raise
            self.add(error)
            return None

    def refuse(self, password: str) -> None:
        """Nothing found: nothing raised (the password is then verified at the signature). One problem: raised as
        it is (its own status). Several: one ValidationFailed (422) with each field's messages; a password left
        blank is one of them (on its own it is the signature's to refuse, after the account's own refusals)."""
        if not self.found:
            return
        if not password:
            self.add(PasswordNotTyped(PASSWORD_NOT_TYPED, field="password"))
        if len(self.found) == 1:
            raise self.found[0][1]
        self.found.sort(key=lambda found: FORM_ORDER.index(found[0]) if found[0] in FORM_ORDER else len(FORM_ORDER))
        errors: dict[str, list[str]] = {}
        for field, error in self.found:
            errors.setdefault(field, []).append(error.message)
        said = " ".join(error.message for _field, error in self.found)
        raise ValidationFailed(f"{len(self.found)} things to put right; nothing was signed. {said}", errors=errors)


def _investigation(investigation: str | None, *, at_least: int = INVESTIGATION_MIN_CHARS,
                   why: str = "") -> str:
    """The investigation and conclusion as QA wrote it (spaces around it dropped), or ValidationFailed naming
    `investigation`: shorter than `at_least` (`why`: the rule that asks for that many), or longer than the record
    keeps (refused, never cut: the signed text is the one QA wrote)."""
    text = (investigation or "").strip()
    if len(text) < at_least:
        rule = why or "describe the investigation and its conclusion"
        raise ValidationFailed(f"Investigation and conclusion: {rule} (at least {at_least} characters; this has "
                               f"{len(text)}). Nothing was signed.", field="investigation")
    too_long(text, "Investigation and conclusion", "investigation", limit=INVESTIGATION_MAX_CHARS)
    return text


def involved_words(session: Session, lot: Lot, user: Any) -> str | None:
    """Why `user` may not conclude the lot's OOS investigations, in the release's words, or None. Segregation of
    duties (EU GMP ch. 2; Reg. 2017/1569 art. 10): QC and production are independent of QA's decisions, and
    concluding an OOS decides the lot (invalidated: the failure no longer counts; confirmed: the lot is rejected or
    recalled), so whoever the release refuses (release.queries.involvement, the one rule) is refused here too."""
    from mscbatch.release.queries import involvement

    entered, recorded = involvement(session, lot, user.id)
    did = [words for words, done in (("entered results of this lot", entered),
                                     ("recorded the manufacture of this lot", recorded)) if done]
    if not did:
        return None
    return f"You {' and '.join(did)}; another QA person must judge its OOS (segregation of duties, EU GMP ch. 2)."


def refuse_involved(session: Session, lot: Lot, signer: Any) -> None:
    """Conflict (409, as the release's refusal; not audited, as it is not), nothing written."""
    words = involved_words(session, lot, signer)
    if words is not None:
        raise Conflict(words + " Nothing was signed.")


def retest_candidates(session: Session, oos: OosInvestigation) -> list[ReleaseResult]:
    """Valid results of the same test entered after the OOS was opened, that are neither the failing result of an
    investigation (a result under investigation is evidence, not a retest) nor the retest another investigation
    was closed with: each OOS needs its own valid retest (FDA OOS guidance 2006), or one passing value would clear
    two failures of the same test."""
    failing = select(OosInvestigation.result_id)
    cited = select(OosInvestigation.retest_result_id).where(OosInvestigation.retest_result_id.is_not(None),
                                                           OosInvestigation.id != oos.id)
    return list(session.scalars(select(ReleaseResult).where(
        ReleaseResult.lot_id == oos.lot_id, ReleaseResult.test_id == oos.test_id, ReleaseResult.id != oos.result_id,
        ReleaseResult.invalidated_at.is_(None), ReleaseResult.entered_at >= oos.opened_at,
        ReleaseResult.id.not_in(failing), ReleaseResult.id.not_in(cited)).order_by(ReleaseResult.id)))


def _cited_by(session: Session, retest_id: int, oos: OosInvestigation) -> int | None:
    """The other investigation already closed with this retest, if any."""
    return session.scalar(select(OosInvestigation.id).where(OosInvestigation.retest_result_id == retest_id,
                                                            OosInvestigation.id != oos.id).limit(1))


def _test_entered_under(result: ReleaseResult) -> Any:
    """The result's test in the specification version it was entered under, if that version is installed."""
    from mscbatch.release.specs import all_specs

    for spec in all_specs():
        if (spec.id, spec.version) == (result.spec_id, result.spec_version):
            return next((t for t in spec.tests if t.id == result.test_id), None)
    return None


def _retest(session: Session, oos: OosInvestigation, retest_result_id: int | None) -> ReleaseResult:
    """The retest QA chose to invalidate `oos` with, or the refusal naming `retest_result_id`: none chosen, not a
    valid retest of the test entered after the OOS opened, the retest of another investigation (409), a test no
    longer in the lot's specification (409), or a retest that fails too (409). A stored value the specification
    cannot read is the record's problem, not the field's: raised at once (specs.unreadable)."""
    from mscbatch.lots.queries import get_lot
    from mscbatch.release.specs import spec_of_lot, unreadable

    retest = session.get(ReleaseResult, retest_result_id) if retest_result_id else None
    used_by = None if retest is None else _cited_by(session, retest.id, oos)
    if used_by is not None:
        raise Conflict(f"Retest result: this retest already closed OOS investigation {used_by}: each investigation "
                       "needs its own retest. Ask QC to enter a new retest of this test. Nothing was signed.",
                       field="retest_result_id")
    if retest is None or retest not in retest_candidates(session, oos):
        chosen = "none chosen" if not retest_result_id else f"result {retest_result_id} is not a retest of this OOS"
        raise ValidationFailed(f"Retest result: {chosen}. Choose a valid retest of the same test, entered after the "
                               "OOS was opened (QC enters it first). Nothing was signed.", field="retest_result_id")
    lot = get_lot(session, oos.lot_id)
    spec = spec_of_lot(session, lot)
    try:
        test = spec.test(oos.test_id)
    except KeyError:  # a later version reports it under another test id: the retest is judged under the
        # version it was entered under, which had the test
        test = _test_entered_under(retest)
    if test is None:
        raise Conflict(f"Retest result: test {oos.test_id!r} is no longer in specification {spec.id} version "
                       f"{spec.version}, the version the lot is judged against: the OOS cannot be invalidated with a "
                       "retest of it. Confirm the OOS (the lot is rejected, or recalled if released) if its failure "
                       "stands. Nothing was signed.", field="retest_result_id")
    try:
        retest_value = parse_result_value(test, retest.value, retest.unit)
    except ResultValueError as error:
        raise unreadable(lot, spec, error) from None
    if judge_value(test, retest_value).meets is False:
        raise Conflict("Retest result: the retest fails too: the OOS cannot be invalidated with it; confirm the OOS "
                       "instead. Nothing was signed.", field="retest_result_id")
    return retest


#: "other" names no cause by itself: the investigation must then describe one (any 10 characters would clear an OOS)
OTHER_CAUSE, OTHER_CAUSE_MIN_CHARS = "other", 50

NO_CAUSE_WORDS = ("Assignable cause: choose the laboratory cause the investigation found. Without a documented "
                  "assignable cause the failing result cannot be invalidated: confirm the OOS instead (the failure "
                  "stands). Nothing was signed.")


def _cause(assignable_cause: str | None) -> str:
    """The chosen cause's code, or ValidationFailed (422 naming `assignable_cause`) before anything is written."""
    code = (assignable_cause or "").strip()
    if not code:
        raise ValidationFailed(NO_CAUSE_WORDS, field="assignable_cause")
    if not is_cause(code):
        raise ValidationFailed(f"Assignable cause: {code[:40]!r} is not one of the causes ("
                               f"{', '.join(ASSIGNABLE_CAUSES)}). Nothing was signed.", field="assignable_cause")
    return code


def invalidate_oos(session: Session, signer: Any, oos_id: int, retest_result_id: int, investigation: str,
                   password: str, seen: str | None = None, *, assignable_cause: str | None = None) -> OosInvestigation:
    """QA closes the OOS as invalidated: the failing result is flagged invalid, the passing retest counts.
    `assignable_cause`: the laboratory cause the investigation documents (a code of core.oos_causes), required:
    refused (422 naming it, nothing written or signed) without one, since an OOS with no assignable cause stands.
    `seen`: what the lot's review page showed (_open); None: not checked. The investigation, the cause, the retest
    and a blank password are judged together: every problem is refused at once (Problems), nothing signed."""
    with use_case(session, signer, f"OOS {oos_id} invalidated"):
        oos = _open(session, signer, oos_id, seen)  # refuses whoever the release refuses
        problems = Problems()
        cause = problems.check(_cause, assignable_cause)
        if cause == OTHER_CAUSE:  # the stricter rule, said alone: ten characters would not do either
            text = problems.check(_investigation, investigation, at_least=OTHER_CAUSE_MIN_CHARS, why=(
                f"with \"{cause_words(OTHER_CAUSE)}\", describe the cause the laboratory found: what went wrong, "
                "and why the first result does not stand"))
        else:
            text = problems.check(_investigation, investigation)
        retest = problems.check(_retest, session, oos, retest_result_id)
        problems.refuse(password)
        assert retest is not None and text is not None
        oos.investigation, oos.assignable_cause = text, cause
        failing = session.get(ReleaseResult, oos.result_id)
        assert failing is not None
        failing.invalidated_at = utcnow()
        failing.invalidated_reason = (f"OOS {oos.id} invalidated (assignable cause: {cause_words(oos.assignable_cause)}): "
                                      f"{oos.investigation}")
        oos.status, oos.conclusion, oos.retest_result_id = OOS_INVALIDATED, OOS_INVALIDATED, retest.id
        oos.closed_by_id, oos.closed_at = signer.id, utcnow()
        sign(session, signer, password, oos, INVALIDATED_MEANING, required_role="qa")
    return oos


def exceptional_release_for(session: Session, oos: OosInvestigation) -> Any:
    """The lot's signed exceptional release (release.approve_exceptional_release) that was given for this OOS, or
    None: QA countersigned it while the investigation was open, on results where this test failed (the snapshot
    the clinician and QA signed). Such a lot was supplied to its one named patient knowing the failure."""
    from mscbatch.release.models import LotDisposition

    for disposition in session.scalars(select(LotDisposition).where(
            LotDisposition.lot_id == oos.lot_id, LotDisposition.kind == "exceptional_release",
            LotDisposition.signed_at.is_not(None)).order_by(LotDisposition.id)):
        if disposition.signed_at < oos.opened_at:
            continue
        failed = {row["test_id"] for row in json.loads(disposition.verdicts_json) if row.get("status") == "fail"}
        if oos.test_id in failed:
            return disposition
    return None


def exceptional_words(disposition: Any) -> str:
    """The exceptional release named as the conclusion and its signature name it."""
    return f"exceptional release {disposition.id} for patient {disposition.patient_code}"


def confirm_words(session: Session, oos: OosInvestigation, lot: Lot) -> str:
    """The confirm button of an open investigation: what the signature does to the lot (confirm_oos decides the
    same way)."""
    if lot.status == "released" and exceptional_release_for(session, oos) is not None:
        return "Confirm OOS: lot supplied under exceptional release, no recall (sign)"
    if lot.status in ("conditional_release", "released"):
        return "Confirm OOS and recall the lot (sign)"
    if lot.status in ("in_process", "quarantine"):
        return "Confirm OOS and reject the lot (sign)"
    return "Confirm OOS (sign)"


def conclusion_words(session: Session, oos: OosInvestigation) -> str | None:
    """The conclusion of a closed investigation in words, when its status alone does not say it, else None."""
    if oos.conclusion == NOT_OOS:
        from mscbatch.signatures.services import signatures_of

        meaning = next((s.meaning for s in signatures_of(session, oos) if s.meaning.startswith(NOT_OOS_MEANING)),
                       NOT_OOS_MEANING)
        return (f"{meaning}: the result meets that version's limit; it was out of specification only under the "
                "version it was opened under, and stays the lot's result (not invalidated).")
    if oos.conclusion == CONFIRMED_SUPPLIED:
        disposition = exceptional_release_for(session, oos)
        ref = exceptional_words(disposition) if disposition is not None else "exceptional release"
        return (f"Confirmed — lot supplied under {ref}: the failure stands; the lot was knowingly given to that "
                "patient only, and is not recalled for it.")
    return None


def confirm_oos(session: Session, signer: Any, oos_id: int, investigation: str, password: str,
                seen: str | None = None) -> OosInvestigation:
    """QA confirms the OOS, in one transaction with its consequence for the lot: a lot in quarantine is rejected
    with its own "Rejected" signature; a conditionally released lot, whose bags may already be on a ward or
    infused, is recalled (DOMAIN.md section 4: conditional_release -> released | recalled), so that its unused
    bags are held and the recall report lists every patient to notify (section 5, late OOS). A lot released
    exceptionally for this OOS (exceptional_release_for) was supplied knowing the failure (DOMAIN.md section 5,
    "exceptional use of an OOS batch ... documented, signed"): the OOS concludes CONFIRMED_SUPPLIED, signed with the
    exceptional release named, and the lot stays released for its one patient (no recall, no status change).
    `seen`: what the lot's review page showed (_open); None: not checked."""
    from mscbatch.recall.services import start_recall_in_use_case
    from mscbatch.release.release import reject_in_use_case

    with use_case(session, signer, f"OOS {oos_id} confirmed"):
        oos = _open(session, signer, oos_id, seen)  # refuses whoever the release refuses
        problems = Problems()
        text = problems.check(_investigation, investigation)
        problems.refuse(password)
        lot = session.get(Lot, oos.lot_id)  # locked and read afresh by _open
        assert lot is not None
        supplied = exceptional_release_for(session, oos)
        oos.investigation = text
        oos.status, oos.conclusion = OOS_CONFIRMED, OOS_CONFIRMED if supplied is None else CONFIRMED_SUPPLIED
        oos.closed_by_id, oos.closed_at = signer.id, utcnow()
        if supplied is not None:
            ref = exceptional_words(supplied)
            session.info["audit_reason"] = (f"OOS {oos.id} confirmed: lot supplied under {ref}; the failure was "
                                            "known when it was released, the lot is not recalled for it")
            sign(session, signer, password, oos, f"{CONFIRMED_MEANING}: lot supplied under {ref}"[:120],
                 required_role="qa")
            return oos
        sign(session, signer, password, oos, CONFIRMED_MEANING, required_role="qa")
        if lot.status in ("conditional_release", "released"):
            start_recall_in_use_case(session, signer, scope="lot", target_id=lot.id, password=password,
                                     reason=f"OOS confirmed after release: {oos.description}")
        elif lot.status in ("in_process", "quarantine"):
            reject_in_use_case(session, signer, oos.lot_id, password, f"OOS confirmed: {oos.description}")
        # else the lot is already out of use (recalled by a donor or reagent recall, rejected, expired): the OOS is
        # closed and signed, and the lot stays where it is
    return oos


#: the conclusion (and status) of an OOS opened under an earlier version of the specification whose result meets the
#: version the lot is now judged against: it is not out of specification, so neither invalidated (no laboratory error)
#: nor confirmed (the lot would be rejected for a result that passes)
NOT_OOS = "not_oos"
NOT_OOS_MEANING = "Not out of specification under the version in force"


def _judged_in_force(session: Session, oos: OosInvestigation) -> tuple[Any, Any, Any, Any]:
    """(lot, specification in force for it, test, the failing result's judgement under that version)."""
    from mscbatch.lots.queries import get_lot
    from mscbatch.release.specs import spec_of_lot, unreadable

    lot = get_lot(session, oos.lot_id)
    spec = spec_of_lot(session, lot)
    failing = session.get(ReleaseResult, oos.result_id)
    assert failing is not None  # results are never deleted
    try:
        test = spec.test(oos.test_id)
    except KeyError:
        return lot, spec, None, None
    try:
        judgement = judge_value(test, parse_result_value(test, failing.value, failing.unit))
    except ResultValueError as error:
        raise unreadable(lot, spec, error) from None
    return lot, spec, test, judgement


def not_oos_refusal(session: Session, oos: OosInvestigation) -> str | None:
    """Why this OOS cannot be concluded "not out of specification under the version in force", or None: only a
    failing result that meets, as it was entered, the limit of the version the lot is judged against now (a
    revised specification, release.specs.spec_of_lot), and that still blocks under it."""
    _lot, spec, test, judgement = _judged_in_force(session, oos)
    version = f"{spec.id} v{spec.version}"
    if test is None:
        return (f"test {oos.test_id!r} is not in specification {version}, the version in force for this lot: "
                "confirm or invalidate the OOS")
    if judgement.meets is not True:
        return (f"the result does not meet {test.name} {test.limit_text} under {version}, the version in force "
                f"for this lot ({judgement.comparison}): it is out of specification")
    return None


def not_oos_words(session: Session, oos: OosInvestigation) -> str:
    """The button offering that conclusion, naming the version (shown only when not_oos_refusal says None)."""
    _lot, spec, _test, _judgement = _judged_in_force(session, oos)
    return f"Not out of specification under {spec.id} v{spec.version} (sign)"


def close_not_oos(session: Session, signer: Any, oos_id: int, investigation: str, password: str,
                  seen: str | None = None) -> OosInvestigation:
    """QA concludes the OOS "not out of specification under the version in force (spec vN)": the result, as it was
    entered and never changed, meets the limit of the specification version the lot is judged against now (a
    revision after the OOS was opened). Refused (409 naming `action`, nothing signed) otherwise: not a way to clear a
    failure. The failing result is not invalidated (there was no laboratory error): it stays the lot's result and is
    judged under the version in force. Signed with the version named; audited with the reason."""
    with use_case(session, signer, f"OOS {oos_id}: not out of specification under the version in force"):
        oos = _open(session, signer, oos_id, seen)  # refuses whoever the release refuses
        problems = Problems()
        text = problems.check(_investigation, investigation)
        refusal = not_oos_refusal(session, oos)
        if refusal is not None:
            problems.add(Conflict(f"Not out of specification: {refusal}. Nothing was signed.", field="action"))
        problems.refuse(password)
        _lot, spec, test, judgement = _judged_in_force(session, oos)
        version = f"{spec.id} v{spec.version}"
        session.info["audit_reason"] = (f"OOS {oos.id} closed: not out of specification under {version}, the version "
                                        f"in force ({test.name} {judgement.comparison}, limit {test.limit_text})")
        oos.investigation = text
        oos.status, oos.conclusion = NOT_OOS, NOT_OOS
        oos.closed_by_id, oos.closed_at = signer.id, utcnow()
        sign(session, signer, password, oos, f"{NOT_OOS_MEANING} ({version})"[:120], required_role="qa")
    return oos


def recalled_awaiting_results(session: Session) -> list[Lot]:
    """Lots recalled from their conditional release while a test it named pending still has no valid result: they
    still await that result (a late failure opens a late OOS listing the patients to notify), so the dashboard's
    list of conditional releases awaiting a result keeps them (for the dashboard's query, release.queries.dashboard,
    to add beside the conditionally released lots)."""
    waiting = []
    for lot in session.scalars(select(Lot).where(Lot.status == "recalled").order_by(Lot.id)):
        pending = pending_at_conditional_release(session, lot)
        if not pending:
            continue
        entered = set(session.scalars(select(ReleaseResult.test_id).where(
            ReleaseResult.lot_id == lot.id, ReleaseResult.test_id.in_(pending),
            ReleaseResult.invalidated_at.is_(None))))
        if set(pending) - entered:
            waiting.append(lot)
    return waiting
