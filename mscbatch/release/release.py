"""QA disposition of a lot with an electronic signature: release, conditional release, its completion,
exceptional release of an OOS batch, rejection (issue 5 points 4-6 and 8; DOMAIN.md sections 4, 5, 9).

Each is one use case that first locks the lot row (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the
transaction is BEGIN IMMEDIATE, so writers are serialised) and re-reads its status: of two QA people
releasing at the same moment exactly one succeeds, with one signature; the other is told who was first.
The state change itself goes through lots.services.apply_lot_transition (core.states.LOT, donor gate).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.auth.models import User
from mscbatch.core.verdicts import (
    VIABLE_COUNT_TEST_ID,
    LotVerdict,
    VerdictStatus,
    can_release,
    count_above_harvest,
)
from mscbatch.custody import log as custody_log
from mscbatch.donors.models import Donor
from mscbatch.errors import Conflict, PermissionDenied, ValidationFailed
from mscbatch.lots.models import Bag, Deviation, Lot
from mscbatch.lots.record_corrections import record_corrections
from mscbatch.lots.services import apply_lot_transition, current_gate, expiry_passed, lock_lot
from mscbatch.patients.queries import familial_donor_of, patient_by_code, protocols
from mscbatch.recall.queries import recall_words, recalls_covering
from mscbatch.release.models import CLINICIAN_MEANING, DISPOSITION_KINDS, DeviationAssessment, LotDisposition
from mscbatch.release.oos import oos_of, open_oos_of
from mscbatch.release.queries import (
    RELEASED_KINDS,
    deviations_after_release,
    deviations_before_release,
    dispositions_of,
    involvement,
    pending_conditional_tests,
    waiting_exceptional_request,
)
from mscbatch.release.results import uninvestigated_failures
from mscbatch.release.specs import lot_verdict, results_of, spec_of_lot
from mscbatch.release.texts import too_long
from mscbatch.signatures.services import sign
from mscbatch.site import local_and_utc


def _already(session: Session, lot: Lot, wanted: str) -> Conflict:
    if lot.status == "in_process":  # not "already": it has not reached quarantine yet
        return Conflict(f"Lot {lot.lot_number} is still in process (not yet in quarantine): it cannot be {wanted} "
                        "now. Nothing was signed.")
    who = session.get(User, lot.status_changed_by_id) if lot.status_changed_by_id else None
    by = f" by {who.full_name}" if who else ""
    when = f" at {local_and_utc(lot.status_changed_at)}" if lot.status_changed_at else ""
    return Conflict(f"Lot {lot.lot_number} is already {lot.status.replace('_', ' ')}{by}{when}: it cannot be "
                    f"{wanted} now. Nothing was signed.")


#: the parts of what the review page shows that a signature on it rests on, in the order of `page_fingerprint`,
#: each with the words saying that it changed
FINGERPRINT_PARTS = (("results", "its results or verdicts"), ("deviations", "its deviations or their assessments"),
                     ("oos", "its OOS investigations"), ("lot", "its status, donor eligibility or manufacturing record"),
                     ("dispositions", "its signatures or clinician's requests"),
                     ("corrections", "its manufacturing record's corrections after first entry"))


def _digest(content: Any) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def page_fingerprint(session: Session, lot: Lot, verdict: LotVerdict | None = None) -> str:
    """What the lot's review page showed QA (or the clinician), as one text its signature forms carry (`seen`): a
    digest of each part (FINGERPRINT_PARTS): the verdicts the release signature vouches for (_snapshot, with the
    specification) and the results the page lists (a retest's value included), the deviations and their
    assessments, the OOS investigations, the lot's signed content with its status and donor gate, the dispositions,
    and every correction of the manufacturing record (lots.record_corrections: a bag's content corrected in quarantine
    after QA opened the page is not signed for unseen; Annex 11 8.2). The signature is refused (check_seen) when the record changed since: it vouches only for what was shown."""
    verdict = verdict or lot_verdict(session, lot)
    # every result the page lists, as it lists it: a retest (the one an OOS is invalidated with) corrected while its
    # failing result still stands leaves the verdicts as they were, yet the page showed another value
    shown = [(r.id, r.test_id, r.value, r.unit, r.corrected_count, r.invalidated_at is not None)
             for r in results_of(session, lot.id)]
    deviations = [(d.id, d.severity, d.description, d.recorded_at)
                  for d in session.scalars(select(Deviation).where(Deviation.lot_id == lot.id).order_by(Deviation.id))]
    assessed = [(a.id, a.deviation_id, a.outcome) for a in session.scalars(
        select(DeviationAssessment).where(DeviationAssessment.lot_id == lot.id).order_by(DeviationAssessment.id))]
    parts = {
        "results": [verdict.spec_id, verdict.spec_version, verdict.spec_sha256, _snapshot(verdict), shown],
        "deviations": [deviations, assessed],
        "oos": [(o.id, o.result_id, o.status, o.retest_result_id, o.late) for o in oos_of(session, lot.id)],
        "lot": [lot.status, current_gate(session, lot), lot.signed_content()],
        "dispositions": [(d.id, d.kind, d.signed_at, d.patient_code) for d in dispositions_of(session, lot.id)],
        "corrections": [c.fingerprinted() for c in record_corrections(session, lot)],
    }
    return ".".join(_digest(parts[name]) for name, _words in FINGERPRINT_PARTS)


class RecordChanged(Conflict):
    """A signature posted from a review page that showed another record than the lot's now (check_seen)."""


def check_seen(session: Session, lot: Lot, seen: str | None, verdict: LotVerdict | None = None) -> None:
    """Refuse (409, nothing signed) a signature posted from a review page that showed another record than the lot's
    now (page_fingerprint), saying what changed. `seen` None: no page (the API, in-process callers), not checked."""
    if seen is None:
        return
    now = page_fingerprint(session, lot, verdict)
    if seen == now:
        return
    shown, current = seen.split("."), now.split(".")
    if len(shown) != len(current):
        raise RecordChanged("The form does not say which record of the lot the page showed you: open the lot's review "
                       "page again, review it, then sign. Nothing was signed.")
    changed = [words for (_name, words), a, b in zip(FINGERPRINT_PARTS, shown, current, strict=True) if a != b]
    raise RecordChanged(f"The lot's record changed since you opened this page ({', '.join(changed)} changed): review it "
                   "again; nothing was signed.")


class Refused(Conflict):
    """A signature refused for reasons the lot's page lists as its blockers. The message says them in one line (the
    API's problem detail, a log); `heading` and `reasons` let a page list them, one a line, rather than run them
    together."""

    def __init__(self, heading: str, reasons: Iterable[str]):
        self.heading, self.reasons = heading, list(reasons)
        super().__init__(f"{heading}: " + "; ".join(self.reasons) + ". Nothing was signed.")


#: a justification QA signs with the release (conditional release, a count above the harvest) says something
JUSTIFICATION_MIN_CHARS = 10


def refusals(session: Session, lot: Lot, user: Any, conditional_tests: Iterable[str] = (),
             verdict: LotVerdict | None = None, count_justification: str = "") -> list[str]:
    """Every reason `user` may not release the lot now (core.verdicts.can_release), in plain words. A viable cell
    count above the harvest's (count_discrepancy) is one, unless `count_justification` (its own justification,
    signed with this release) or a release signature already justified this very count. The justification of a
    conditional release is about the pending tests: it never waives the count."""
    verdict = verdict or lot_verdict(session, lot)
    entered, recorded = involvement(session, lot, user.id) if user is not None else (False, False)
    # can_release words segregation for the QA person about to sign ("you ...; another QA person must release it");
    # a reader who cannot release (a technician on the review page) is told the rule itself, still as a refusal
    releaser = user is not None and user.has_role("qa")
    reasons = can_release(verdict.verdicts, donor_approved=current_gate(session, lot) == "approved",
                          open_oos=len(open_oos_of(session, lot.id)), releaser_entered_results=entered and releaser,
                          releaser_recorded_manufacture=recorded and releaser, conditional_tests=conditional_tests)
    if not releaser:
        reasons += [f"whoever {did} cannot release it (segregation of duties, EU GMP ch. 2)"
                    for did, done in (("entered results of this lot", entered),
                                      ("recorded the manufacture of this lot", recorded)) if done]
    discrepancy = count_discrepancy(session, lot, verdict)
    if discrepancy and len((count_justification or "").strip()) >= JUSTIFICATION_MIN_CHARS:
        discrepancy = None
    return (reasons + ([discrepancy] if discrepancy else []) + failed_without_oos(session, lot, verdict)
            + [f"the lot is covered by {recall_words(recall)}" for recall in recalls_covering(session, lot)]
            + awaiting_assessment(session, lot) + expired(lot))


def failed_without_oos(session: Session, lot: Lot, verdict: LotVerdict) -> list[str]:
    """What to do about a blocking test failing only under the version in force (results.uninvestigated_failures):
    no OOS was opened when its result was entered, so the page would show the fail with nothing for QA to close."""
    failing = [v for v in verdict.verdicts if v.blocking and v.status is VerdictStatus.FAIL]
    if not failing:
        return []
    spec = spec_of_lot(session, lot)
    return [f"{v.name}: its failing result was entered under an earlier version of the specification and has no OOS "
            f"investigation yet; a technician enters a retest, which opens it, then QA closes it"
            for v in failing if uninvestigated_failures(session, lot, spec, spec.test(v.test_id))]


def expired(lot: Lot) -> list[str]:
    """The lot's shelf life (set at cryopreservation, lots.bags) ran out before QA signed: no release, conditional
    release, completion or exceptional release of it. The state machine has no way from quarantine to "expired"
    (core.states.LOT): QA rejects the lot; a conditionally released one is recalled, as its bags may be on a ward.
    The date as the lot's page shows its expiry (site time). Said only while a release signature is still to come:
    a released lot's expiry is not a reason against a release already signed."""
    if lot.status not in ("in_process", "quarantine", "conditional_release") or not expiry_passed(lot):
        return []
    assert lot.expires_at is not None
    when = local_and_utc(lot.expires_at)
    way_out = ("recall it (Recalls) to take its bags out of use" if lot.status == "conditional_release"
               else "reject it instead (Sign: Rejected, giving the expiry as the reason)")
    return [f"lot expired on {when}: an expired lot cannot be released; {way_out}"]


def count_discrepancy(session: Session, lot: Lot, verdict: LotVerdict) -> str | None:
    """The viable cell count result above the harvest's viable cells (core.verdicts.count_above_harvest), unless a
    signed release of the lot was justified with this same count (a conditional release: its completion)."""
    found = count_above_harvest(verdict.verdicts, lot.harvest_viable_cells)
    if found is None:
        return None
    count = next(v.value_text for v in verdict.verdicts if v.test_id == VIABLE_COUNT_TEST_ID)
    for disposition in dispositions_of(session, lot.id):
        if (disposition.kind in RELEASED_KINDS and disposition.signed_at is not None
                and any(row["test_id"] == VIABLE_COUNT_TEST_ID and row["value"] == count
                        and len(row.get("count_justification", "").strip()) >= JUSTIFICATION_MIN_CHARS
                        for row in json.loads(disposition.verdicts_json))):
            return None
    return found + COUNT_REMEDY


#: what QA can do about a count above the harvest when signing a release (its own justification field)
COUNT_REMEDY = (". A technician corrects the result, or you write why the count stands under \"Justification of the "
                "viable cell count above the harvest\" and sign it with the release")
#: an exceptional release is a countersignature with no justification of QA's own: the result is corrected first
COUNT_REMEDY_EXCEPTIONAL = (". A technician corrects the result; the clinician then asks again on the corrected "
                            "results, and you countersign that request")


def _count_justified(lot: Lot, verdict: LotVerdict, count_justification: str) -> str:
    """The count justification to sign: only when the count is above the harvest (a justification typed for a
    count that needs none is not printed on the certificate as if it did)."""
    return count_justification if count_above_harvest(verdict.verdicts, lot.harvest_viable_cells) else ""


def awaiting_assessment(session: Session, lot: Lot) -> list[str]:
    """Deviations waiting for QA's signed assessment (release.deviations), each named. A major or critical one
    recorded before release is investigated before certification (EU GMP Annex 16 1.7.17): no release signature
    until it is assessed. One recorded after the lot's last release signature: a new release signature (the
    completion of a conditional release) would become the last one and take the deviation off every list with
    nothing signed about it, so QA assesses it first."""
    before = [f"deviation {d.id} ({d.severity}, recorded {local_and_utc(d.recorded_at)}: "
              f"{_shortened(d.description)}) needs QA's own signed assessment before release: assess it under "
              "\"Deviations to assess\" on the lot's review page, then sign"
              for d, _lot in deviations_before_release(session, lot.id)]
    return before + [
        f"deviation {d.id} ({d.severity}, recorded {local_and_utc(d.recorded_at)} after the release: "
        f"{_shortened(d.description)}) awaits QA's assessment: assess it first on the lot's review page, "
        "under \"Deviations recorded after release\", then sign"
        for d, _lot in deviations_after_release(session, lot.id)]


def _shortened(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _snapshot(verdict: LotVerdict, count_justification: str = "") -> str:
    """The verdicts signed; the count's own justification, when QA gave one, on the count's row (no column of its
    own: LotDisposition.count_justification reads it back)."""
    rows = [{"test_id": v.test_id, "status": str(v.status), "value": v.value_text, "reason": v.reason}
            for v in verdict.verdicts]
    for row in rows:
        if count_justification and row["test_id"] == VIABLE_COUNT_TEST_ID:
            row["count_justification"] = count_justification
    return json.dumps(rows, sort_keys=True)


def _disposition(lot: Lot, verdict: LotVerdict, kind: str, signer: Any, count_justification: str = "",
                 **extra: Any) -> LotDisposition:
    return LotDisposition(lot_id=lot.id, kind=kind, spec_id=verdict.spec_id, spec_version=verdict.spec_version,
                          spec_sha256=verdict.spec_sha256, verdicts_json=_snapshot(verdict, count_justification),
                          lot_content_json=json.dumps(lot.signed_content(), sort_keys=True, default=str),
                          decided_by_id=None if signer is None else signer.id, **extra)


def _sign_and_move(session: Session, signer: Any, password: str, lot: Lot, disposition: LotDisposition,
                   target: str) -> LotDisposition:
    session.add(disposition)
    signature = sign(session, signer, password, disposition, disposition.meaning, required_role="qa", lock=False)
    disposition.signed_at = signature.signed_at  # not signed content: the signature's own time, shown on the record
    session.flush()
    if disposition.locked_at is None:  # a clinician's request was locked at the clinician's signature
        disposition.locked_at = signature.signed_at  # then the lock, alone (the hook refuses other edits beside it)
    apply_lot_transition(session, signer, lot, target)
    if target in ("released", "conditional_release"):
        for bag in session.scalars(select(Bag).where(Bag.lot_id == lot.id)):
            custody_log.note(session, signer, bag, "released", details={"lot_status": target})
    if lot.locked_at is None:
        lot.locked_at = signature.signed_at  # the signed lot is locked: only its status may still move
    return disposition


def _require_qa(signer: Any) -> None:
    if signer is None or not signer.has_role("qa"):
        raise PermissionDenied("Only QA releases or rejects a lot.")


def release_lot(session: Session, signer: Any, lot_id: int, password: str, *, conditional_tests: Iterable[str] = (),
                justification: str = "", count_justification: str = "", seen: str | None = None) -> LotDisposition:
    """QA signs "Released for clinical use" (or a conditional release naming the still-pending slow tests,
    EU GMP Part IV 11, with a written justification). Refused with every reason unless all blocking tests
    pass (or are named and allowed to be pending), the donor is approved, no OOS is open, and the signer
    neither entered results nor recorded the manufacture of the lot. A viable cell count above the harvest needs
    `count_justification`, its own (refusals). `seen`: what the review page showed (check_seen); None: not checked."""
    _require_qa(signer)
    pending = sorted(set(conditional_tests))
    justification = (justification or "").strip()
    count_justification = (count_justification or "").strip()
    too_long(justification, "Justification", "justification")
    too_long(count_justification, "Justification of the viable cell count above the harvest", "count_justification")
    if pending and len(justification) < JUSTIFICATION_MIN_CHARS:
        raise ValidationFailed(f"Conditional release: write the justification (at least {JUSTIFICATION_MIN_CHARS} "
                               "characters).", field="justification")
    kind = "conditional_release" if pending else "release"
    with use_case(session, signer, DISPOSITION_KINDS[kind]):
        lot = lock_lot(session, lot_id)
        if lot.status != "quarantine":
            raise _already(session, lot, "released")
        verdict = lot_verdict(session, lot)
        check_seen(session, lot, seen, verdict)
        by_id = {v.test_id: v for v in verdict.verdicts}
        for test_id in pending:
            if test_id in by_id and by_id[test_id].status is not VerdictStatus.PENDING:
                raise ValidationFailed(f"{by_id[test_id].name} already has a result: it cannot be named as pending.",
                                       field="conditional_tests")
        reasons = refusals(session, lot, signer, pending, verdict, count_justification)
        if reasons:  # not the password's fault: said above the form, not under the password field
            raise Refused("Release refused", reasons)
        disposition = _disposition(lot, verdict, kind, signer, _count_justified(lot, verdict, count_justification),
                                   justification=justification, pending_tests=",".join(pending))
        _sign_and_move(session, signer, password, lot, disposition,
                       "conditional_release" if pending else "released")
    return disposition


def complete_conditional_release(session: Session, signer: Any, lot_id: int, password: str,
                                  count_justification: str = "", seen: str | None = None) -> LotDisposition:
    """The final result is in and passes: QA's second signature turns the conditional release into a release.
    `count_justification`: only needed for a viable cell count above the harvest not justified at conditional
    release (the conditional release's justification, about the pending tests, does not justify it)."""
    count_justification = (count_justification or "").strip()
    _require_qa(signer)
    too_long(count_justification, "Justification of the viable cell count above the harvest", "count_justification")
    with use_case(session, signer, DISPOSITION_KINDS["completion"]):
        lot = lock_lot(session, lot_id)
        if lot.status != "conditional_release":
            raise _already(session, lot, "completed")
        verdict = lot_verdict(session, lot)
        check_seen(session, lot, seen, verdict)
        reasons = refusals(session, lot, signer, (), verdict, count_justification)
        if reasons:
            raise Refused("Completion refused", reasons)
        disposition = _disposition(lot, verdict, "completion", signer,
                                   _count_justified(lot, verdict, count_justification))
        _sign_and_move(session, signer, password, lot, disposition, "released")
    return disposition


def reject_in_use_case(session: Session, signer: Any, lot_id: int, password: str, reason: str,
                       seen: str | None = None) -> LotDisposition:
    _require_qa(signer)
    lot = lock_lot(session, lot_id)
    if lot.status == "conditional_release":  # checked before the password, which would otherwise count as wrong
        raise Conflict(f"Lot {lot.lot_number} is conditionally released: its bags may already be on a ward. It is "
                       "not rejected but recalled (Recalls, or confirm its OOS), so that every patient is found.")
    if lot.status not in ("in_process", "quarantine"):
        raise _already(session, lot, "rejected")
    verdict = lot_verdict(session, lot)
    check_seen(session, lot, seen, verdict)
    disposition = _disposition(lot, verdict, "rejection", signer, justification=reason)
    return _sign_and_move(session, signer, password, lot, disposition, "rejected")


def reject_lot(session: Session, signer: Any, lot_id: int, password: str, reason: str,
               seen: str | None = None) -> LotDisposition:
    """QA signs "Rejected" with the reason; the lot is locked and none of its bags can be used."""
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise ValidationFailed("Give the reason for the rejection.", field="justification")
    too_long(reason, "Reason for the rejection", "justification")
    with use_case(session, signer, f"Rejected: {reason}"):
        disposition = reject_in_use_case(session, signer, lot_id, password, reason, seen)
    return disposition


def patient_refusal(session: Session, lot: Lot, patient_code: str) -> str | None:
    """Why the OOS batch cannot be released for the patient `patient_code` names, in plain words, or None. The
    patient exists, is not withdrawn from the trial, and could be given the lot's bags by a prescription
    (core.dosing.offered_bags): the patient's protocol takes the lot's product, a familial donor's cells go to
    the recipient that donor names only, and a directed protocol takes its patient's familial donor's cells only.
    Otherwise the lot would leave quarantine released for a patient who can never receive it."""
    patient = patient_by_code(session, patient_code)
    if patient is None:
        return (f"Patient code: no patient has the code {patient_code}. An exceptional release names a registered "
                "patient: check the code on the patient's page.")
    if patient.status == "withdrawn":
        return (f"Patient code: patient {patient.code} has been withdrawn from the trial: no batch can be released "
                "for them.")
    protocol = protocols().get(patient.protocol_id)
    if protocol is None:
        return f"Patient code: patient {patient.code} is in protocol {patient.protocol_id}, no longer configured."
    if lot.product_id not in protocol.products:
        return (f"Patient code: patient {patient.code} is in {protocol.short_name}, which takes "
                f"{', '.join(protocol.products)}, not {lot.product_id}: this lot cannot be given to them.")
    donor = session.get(Donor, lot.donor_id)
    if donor is not None and donor.donor_type == "familial" and donor.recipient_code \
            and donor.recipient_code != patient.code:
        return (f"Patient code: lot {lot.lot_number} comes from familial donor {donor.code}, whose cells are for "
                f"patient {donor.recipient_code} only, not {patient.code}.")
    if protocol.directed:
        own = familial_donor_of(session, patient)
        if own is None or own.id != lot.donor_id:
            return (f"Patient code: {protocol.short_name} gives patient {patient.code} only the cells of their own "
                    f"familial donor; lot {lot.lot_number} is not from that donor.")
    return None


def _refuse_patient(session: Session, lot: Lot, patient_code: str) -> None:
    reason = patient_refusal(session, lot, patient_code)
    if reason is not None:
        raise ValidationFailed(reason + " Nothing was signed.", field="patient_code")


def request_exceptional_release(session: Session, clinician: Any, lot_id: int, patient_code: str,
                                justification: str, password: str, seen: str | None = None) -> LotDisposition:
    """The clinician documents why this OOS batch must be given to one named patient (significant hazard
    otherwise, EU GMP Part IV 11.5) and signs; QA's signature then releases it for that patient only. The patient
    must be able to receive the lot (patient_refusal: registered, not withdrawn, a protocol taking the lot's product
    and donor), else ValidationFailed(field="patient_code"), nothing signed; QA's countersignature checks it again.

    One request waits at a time (queries.waiting_exceptional_request): a new one supersedes the request waiting
    (a corrected patient code, or a request made again on changed results), which is withdrawn: QA can no longer
    countersign it, and the audit trail of the new request names it and says why.

    `seen`: what the lot's review page showed the clinician (check_seen: the request signs the results and the lot
    that page showed, and is refused if they changed since); None (no page): not checked."""
    if clinician is None or not clinician.has_role("clinician"):
        raise PermissionDenied("Only a clinician requests the exceptional use of an OOS batch.")
    patient_code = (patient_code or "").strip().upper()
    if not patient_code or len(patient_code) > 40:
        raise ValidationFailed("Name the patient (trial patient code).", field="patient_code")
    if len((justification or "").strip()) < 20:
        raise ValidationFailed("Write the clinical justification (at least 20 characters).", field="justification")
    too_long((justification or "").strip(), "Clinical justification", "justification")
    with use_case(session, clinician, "exceptional release requested"):
        lot = lock_lot(session, lot_id)
        if lot.status != "quarantine":
            raise _already(session, lot, "exceptionally released")
        verdict = lot_verdict(session, lot)
        check_seen(session, lot, seen, verdict)
        if not any(v.blocking and v.status is VerdictStatus.FAIL for v in verdict.verdicts):
            raise Conflict(f"Lot {lot.lot_number} has no failing test: exceptional release is only for an OOS batch.")
        _refuse_patient(session, lot, patient_code)
        waiting = waiting_exceptional_request(session, lot.id)
        if waiting is not None:  # the reason written on this use case's audit events
            session.info["audit_reason"] = (
                f"exceptional release requested for patient {patient_code}; this request supersedes request "
                f"{waiting.id} for patient {waiting.patient_code} (signed by {_name(session, waiting.clinician_id)}), "
                "which is withdrawn: QA can no longer countersign it")
        disposition = _disposition(lot, verdict, "exceptional_release", None, justification=justification.strip(),
                                   patient_code=patient_code, clinician_id=clinician.id)
        session.add(disposition)
        # locked at once: what the clinician signed (patient, justification, results) cannot change while it waits
        sign(session, clinician, password, disposition, CLINICIAN_MEANING, required_role="clinician")
    return disposition


def approve_exceptional_release(session: Session, signer: Any, lot_id: int, password: str,
                                request_id: int | None = None, seen: str | None = None) -> LotDisposition:
    """QA's countersignature of the clinician's request `request_id` (the one the review page showed QA): the OOS
    batch is released for the patient that request names only (flagged everywhere). Refused, with nothing signed,
    unless that request is the one waiting (queries.waiting_exceptional_request): one superseded by a later request
    is not signed in its place. Every user path names the request (views.release_lot); None, for in-process
    callers only, means the one waiting."""
    _require_qa(signer)
    with use_case(session, signer, DISPOSITION_KINDS["exceptional_release"]):
        lot = lock_lot(session, lot_id)
        if lot.status != "quarantine":
            raise _already(session, lot, "exceptionally released")
        request = waiting_exceptional_request(session, lot.id)
        if request_id is not None and (request is None or request.id != request_id):
            raise _not_waiting(session, lot, request_id, request)
        if request is None:
            raise Conflict(f"No clinician's request for exceptional release of lot {lot.lot_number} is waiting for "
                           "QA's countersignature. Nothing was signed.")
        check_seen(session, lot, seen)
        if request.clinician_id == signer.id:
            raise Conflict("QA's approval must come from another person than the clinician who asked for it. "
                           "Nothing was signed.")
        # the patient is checked again: withdrawn since the request, or a request made before this check existed
        _refuse_patient(session, lot, request.patient_code or "")
        verdict = lot_verdict(session, lot)
        changed = _changed_tests(request.verdicts_json, verdict)
        if changed:  # the clinician weighed the hazard on the results of the request, not on these
            raise Conflict("Exceptional release refused: the results changed since the clinician's request ("
                           + "; ".join(changed) + "). The clinician must ask again on the current results. "
                           "Nothing was signed.")
        # the failures are what the exceptional release is for, with or without their investigation opened yet
        failures = _fail_reasons(verdict) | set(failed_without_oos(session, lot, verdict))
        reasons = [r.replace(COUNT_REMEDY, COUNT_REMEDY_EXCEPTIONAL) for r in refusals(session, lot, signer, (), verdict)
                   if not (r.startswith("an OOS") or "OOS investigations" in r or r in failures)]
        if reasons:
            raise Refused("Exceptional release refused", reasons)
        request.decided_by_id = signer.id
        _sign_and_move(session, signer, password, lot, request, "released")
    return request


def _name(session: Session, user_id: int | None) -> str:
    who = session.get(User, user_id) if user_id else None
    return who.full_name if who is not None else "an unknown user"


def _not_waiting(session: Session, lot: Lot, request_id: int, waiting: LotDisposition | None) -> Conflict:
    """QA countersigned a request that is not the one waiting: said in plain words, nothing signed."""
    named = session.get(LotDisposition, request_id)
    if named is None or named.lot_id != lot.id or named.kind != "exceptional_release":
        return Conflict(f"There is no request {request_id} for exceptional release of lot {lot.lot_number}: reload "
                        "the lot's page and countersign the request it shows. Nothing was signed.")
    what = f"The request you countersigned (request {named.id}, for patient {named.patient_code})"
    if waiting is None:
        return Conflict(f"{what} is no longer waiting for QA. Nothing was signed.")
    return Conflict(
        f"{what} is no longer waiting: {_name(session, waiting.clinician_id)} signed a new request since, for patient "
        f"{waiting.patient_code} (request {waiting.id}), which withdrew it. Read that request and its justification "
        "on the lot's page, then countersign it if it is justified. Nothing was signed.")


def _changed_tests(requested_json: str, verdict: LotVerdict) -> list[str]:
    """The tests whose verdict or value differs from the snapshot the clinician signed, in plain words."""
    before = {row["test_id"]: row for row in json.loads(requested_json)}
    changed = []
    for v in verdict.verdicts:
        old = before.pop(v.test_id, None)
        if old is None or old["status"] != str(v.status) or old["value"] != v.value_text:
            was = "no result" if old is None else f"{old['status']} {old['value'] or ''}".strip()
            changed.append(f"{v.name}: {was} then, {v.status} {v.value_text or ''} now".strip())
    changed.extend(f"{row['test_id']}: no longer in the specification" for row in before.values())
    return changed


def _fail_reasons(verdict: LotVerdict) -> set[str]:
    return {v.reason for v in verdict.verdicts if v.blocking and v.status is VerdictStatus.FAIL}


__all__ = ["Refused", "release_lot", "complete_conditional_release", "reject_lot", "request_exceptional_release",
           "approve_exceptional_release", "refusals", "lock_lot", "pending_conditional_tests", "page_fingerprint",
           "check_seen"]
