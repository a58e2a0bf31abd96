"""What of a person an audit value may show, to whom: the one rule for the audit viewer and the evidence bundle.

- Identity (initials, date of birth, a patient's wristband): a donor's to the roles that see donor identity
  (donors.queries.can_see_identity), a patient's to the readers of the patient pages; never in an evidence bundle,
  which leaves the site (donors and patients appear there by pseudonymised code only).
- A patient's record (registration, weight, enrolment, withdrawal, prescription, allocation, bedside check, infusion,
  reaction) and what other records say of patients (custody event details, a late OOS's patients to notify): to the
  readers of the patient pages only (a lot's page shows other roles its infusions as counts: infusion_counts). Other roles still see that the record changed, who changed it and when, and the
  bookkeeping that ties it to a bag (ids, dates and times of the steps, status); every other value is masked.
- The reason typed for a patient's use case (a course stopped for a reaction, a withdrawal's reason) is stamped on
  every event of its transaction, bags, custody events and signatures included: to those roles it is masked on all
  of them (patient_cases), and in the `reason` columns those events' rows hold. A use case that changes no patient
  record (a recall, a deviation, a discard of a bag no patient holds) keeps its reason visible.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mscbatch.audit.models import AuditEvent
from mscbatch.custody.models import PATIENT_DETAILS
from mscbatch.donors.queries import can_see_identity
from mscbatch.patients.api import READERS as PATIENT_READERS

REDACTED = "[redacted]"
IDENTITY_FIELDS = {"donor": frozenset({"initials", "date_of_birth"}),
                   "patient": frozenset({"initials", "date_of_birth", "wristband_id"})}
#: tables that are a patient's record: masked whole, bookkeeping aside, for roles that may not read patients
PATIENT_RECORDS = frozenset({"patient", "patient_weight", "patient_weight_error", "patient_enrolment_check",
                             "prescription", "bag_allocation", "two_person_check", "infusion", "infusion_reaction",
                             "patient_withdrawal"})
#: columns of a patient's record that say nothing of the patient (besides *_at times and *_by_id users)
BOOKKEEPING = frozenset({"id", "bag_id", "active_bag_id", "prescription_id", "check_id", "infusion_id", "status",
                         "result", "second_person_id", "second_checker_id"})
#: columns of other tables that hold patient details: JSON whose keys are masked, or text masked whole (None)
ABOUT_PATIENTS: dict[str, dict[str, frozenset[str] | None]] = {
    "custody_event": {"details_json": PATIENT_DETAILS},
    "release_oos": {"patients_to_notify": None},
}
#: keys of other records' event values that are a patient's identity: the wristband scanned at a refused infusion
#: start (custody/infusions.py _audit_refused_start, recorded on the bag), and the band as scanned at a bedside check
#: (the check is a patient's record, yet QA reads it, and the bundle leaves the site)
PATIENT_IDENTITY_ELSEWHERE: dict[str, frozenset[str]] = {"bag": frozenset({"wristband"}),
                                                         "two_person_check": frozenset({"wristband_scan"})}
#: the custody event details' key holding the band scanned with the bag (bedside check confirmed, infusion start)
WRISTBAND_DETAIL = "wristband"
#: JSON columns of other records holding a patient's identity under these keys
PATIENT_IDENTITY_IN_JSON: dict[str, dict[str, frozenset[str]]] = {
    "custody_event": {"details_json": frozenset({WRISTBAND_DETAIL})}}
#: explicit events whose reason is the words a nurse saw about patients (codes of the checked and scanned patient)
PATIENT_REASON_ACTIONS = frozenset({"infusion_start_refused"})
#: how many events a use case's run is followed each way (a course stop writes about five per bag it returns)
RUN_LIMIT = 2000


def patient_custody_reasons(session: Session, custody_event_ids: Any) -> frozenset[int]:
    """Of these custody events, those whose `reason` is a patient use case's (bags back in stock when a course
    stopped or a patient was withdrawn): for a bag's timeline shown to the roles that may not read patients."""
    ids = [str(i) for i in custody_event_ids]
    if not ids:
        return frozenset()
    inserts = list(session.scalars(select(AuditEvent).where(
        AuditEvent.entity_type == "custody_event", AuditEvent.action == "insert", AuditEvent.entity_id.in_(ids))))
    cases = patient_cases(session, inserts)
    return frozenset(int(e.entity_id) for e in inserts if e.seq in cases and e.entity_id)


def may_read_patients(user: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.has_role(*PATIENT_READERS))


def infusion_counts(rows: Any) -> dict[str, Any]:
    """What a lot's infusions tell a reader who may not read patients: how many, and how many reactions per CTCAE
    grade (rows: custody.queries.InfusionRow); no patient, no reaction term, no free text."""
    grades = {grade: 0 for grade in range(1, 6)}
    for row in rows:
        for reaction in row.reactions:
            grades[reaction.grade] = grades.get(reaction.grade, 0) + 1
    return {"infusions": len(rows), "reactions_by_grade": grades}


def _bookkeeping(column: str) -> bool:
    return column in BOOKKEEPING or column.endswith(("_at", "_by_id"))


def _typed_reason(column: str | None) -> bool:
    return column is not None and (column == "reason" or column.endswith("_reason"))


def _run(session: Session, event: AuditEvent) -> tuple[int, int]:
    """The seqs of the run of events around `event` with its actor and reason. The chain head is locked from a
    transaction's first event to its commit, so a use case's events are consecutive and share both (use_case
    stamps its reason on each); two use cases in a row by one person with the same reason count as one, which
    only ever masks more."""
    other = or_(AuditEvent.actor_id.is_distinct_from(event.actor_id), AuditEvent.reason.is_distinct_from(event.reason))
    before = session.scalar(select(AuditEvent.seq).where(AuditEvent.seq < event.seq,
                                                         AuditEvent.seq >= event.seq - RUN_LIMIT, other)
                            .order_by(AuditEvent.seq.desc()).limit(1))
    after = session.scalar(select(AuditEvent.seq).where(AuditEvent.seq > event.seq,
                                                        AuditEvent.seq <= event.seq + RUN_LIMIT, other)
                           .order_by(AuditEvent.seq).limit(1))
    return (before + 1 if before is not None else event.seq - RUN_LIMIT,
            after - 1 if after is not None else event.seq + RUN_LIMIT)


def patient_cases(session: Session, events: Any) -> frozenset[int]:
    """The seqs of those `events` that carry the reason of a use case that changed a patient's record: a bag's
    status, a custody event or a signature written by a course stop, a cancellation or a withdrawal."""
    runs: list[tuple[int, int, bool]] = []
    found = set()
    for event in events:
        if not event.reason or event.entity_type in PATIENT_RECORDS:
            continue
        patient = next((about for lo, hi, about in runs if lo <= event.seq <= hi), None)
        if patient is None:
            lo, hi = _run(session, event)
            patient = session.scalar(select(AuditEvent.seq).where(
                AuditEvent.seq.between(lo, hi), AuditEvent.entity_type.in_(PATIENT_RECORDS)).limit(1)) is not None
            runs.append((lo, hi, patient))
        if patient:
            found.add(event.seq)
    return frozenset(found)


@dataclass(frozen=True)
class AuditMask:
    """The masking of audit values for one reader."""

    identity_of: frozenset[str]  # entity types whose identity fields are masked
    patient_records: bool  # mask patients' records and what other records say of patients

    @classmethod
    def for_reader(cls, user: Any, *, leaves_the_site: bool = False) -> AuditMask:
        patients = may_read_patients(user)
        identity = set(IDENTITY_FIELDS) if leaves_the_site else (
            ({"donor"} if not can_see_identity(user) else set()) | ({"patient"} if not patients else set()))
        return cls(frozenset(identity), not patients)

    def patient_cases(self, session: Session, events: Any) -> frozenset[int]:
        """The events (seqs) whose reason this reader may not see: see patient_cases()."""
        return patient_cases(session, events) if self.patient_records else frozenset()

    def hidden(self, entity_type: str, column: str, *, patient_case: bool = False) -> frozenset[str] | None | bool:
        """False: shown; True or None: masked whole; a set: a JSON value with these keys masked."""
        if self.patient_records and entity_type in PATIENT_RECORDS:
            return not _bookkeeping(column)
        if self.patient_records and column in ABOUT_PATIENTS.get(entity_type, {}):
            return ABOUT_PATIENTS[entity_type][column]
        if self.patient_records and patient_case and _typed_reason(column):
            return True
        if "patient" in self.identity_of and column in PATIENT_IDENTITY_ELSEWHERE.get(entity_type, ()):
            return True
        if "patient" in self.identity_of and column in PATIENT_IDENTITY_IN_JSON.get(entity_type, {}):
            return PATIENT_IDENTITY_IN_JSON[entity_type][column]
        return entity_type in self.identity_of and column in IDENTITY_FIELDS.get(entity_type, ())

    def value(self, entity_type: str, field: str | None, value: str | None, *, patient_case: bool = False) -> str | None:
        """An audit event's old or new value as this reader may see it: one column's value, or (field None) the
        row's JSON snapshot with the hidden columns masked. `patient_case`: the event belongs to a patient's use
        case (patient_cases), so the reason columns of its row are that use case's reason."""
        if value is None:
            return None
        if field is not None:
            return _masked(value, self.hidden(entity_type, field, patient_case=patient_case))
        snapshot = _object(value)
        if snapshot is None:  # not a row snapshot: shown only when nothing of this record type is hidden
            hides = (self.patient_records and (entity_type in PATIENT_RECORDS or entity_type in ABOUT_PATIENTS)) \
                or entity_type in self.identity_of
            return REDACTED if hides else value
        masked = {column: _masked(item, self.hidden(entity_type, column, patient_case=patient_case))
                  for column, item in snapshot.items()}
        if masked == snapshot:  # nothing hidden: the value exactly as recorded
            return value
        return json.dumps(masked, sort_keys=True, ensure_ascii=False, separators=(",", ":"))  # as the audit hooks

    def reason(self, entity_type: str, reason: str | None, *, action: str | None = None,
               patient_case: bool = False) -> str | None:
        """The reason typed for a change of a patient's record may tell of the patient: masked with its values, on
        every event of its use case (patient_case), and on a refused infusion start (the patients' codes)."""
        if reason and self.patient_records and (entity_type in PATIENT_RECORDS or patient_case
                                                or action in PATIENT_REASON_ACTIONS):
            return REDACTED
        return reason

    def details(self, details: dict[str, Any]) -> dict[str, Any]:
        """A custody event's details with what names the patient masked: the wristband scanned too wherever patients'
        identity is masked (an evidence bundle, even QA's: the band may have been scanned in a spelling, or worn
        before a correction, that no mask of the patient's band of today finds)."""
        hidden = PATIENT_DETAILS if self.patient_records else (
            frozenset({WRISTBAND_DETAIL}) if "patient" in self.identity_of else frozenset())
        if not hidden:
            return details
        return {key: REDACTED if key in hidden and value is not None else value for key, value in details.items()}


def _object(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _masked(value: Any, hidden: frozenset[str] | None | bool) -> Any:
    if value is None or hidden is False:
        return value
    if isinstance(hidden, frozenset):
        inner = _object(value)
        if inner is None:
            return REDACTED
        masked = {key: REDACTED if key in hidden and item is not None else item for key, item in inner.items()}
        return value if masked == inner else json.dumps(masked, ensure_ascii=False)
    return REDACTED
