"""What of a person an audit value may show, to whom: the one rule for the audit viewer and the evidence bundle.

- Identity (initials, date of birth, a patient's wristband): a donor's to the roles that see donor identity
  (donors.queries.can_see_identity), a patient's to the readers of the patient pages; never in an evidence bundle,
  which leaves the site (donors and patients appear there by pseudonymised code only).
- A patient's record (registration, weight, enrolment, withdrawal, prescription, allocation, bedside check, infusion,
  reaction) and what other records say of patients (custody event details, a late OOS's patients to notify): to the
  readers of the patient pages only (a lot's page shows other roles its infusions as counts: infusion_counts). Other roles still see that the record changed, who changed it and when, and the
  bookkeeping that ties it to a bag (ids, dates and times of the steps, status); every other value is masked.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mscbatch.custody.models import PATIENT_DETAILS
from mscbatch.donors.queries import can_see_identity
from mscbatch.patients.api import READERS as PATIENT_READERS

REDACTED = "[redacted]"
IDENTITY_FIELDS = {"donor": frozenset({"initials", "date_of_birth"}),
                   "patient": frozenset({"initials", "date_of_birth", "wristband_id"})}
#: tables that are a patient's record: masked whole, bookkeeping aside, for roles that may not read patients
PATIENT_RECORDS = frozenset({"patient", "patient_weight", "patient_enrolment_check", "prescription", "bag_allocation",
                             "two_person_check", "infusion", "infusion_reaction", "patient_withdrawal"})
#: columns of a patient's record that say nothing of the patient (besides *_at times and *_by_id users)
BOOKKEEPING = frozenset({"id", "bag_id", "active_bag_id", "prescription_id", "check_id", "infusion_id", "status",
                         "result", "second_person_id", "second_checker_id"})
#: columns of other tables that hold patient details: JSON whose keys are masked, or text masked whole (None)
ABOUT_PATIENTS: dict[str, dict[str, frozenset[str] | None]] = {
    "custody_event": {"details_json": PATIENT_DETAILS},
    "release_oos": {"patients_to_notify": None},
}


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

    def hidden(self, entity_type: str, column: str) -> frozenset[str] | None | bool:
        """False: shown; True or None: masked whole; a set: a JSON value with these keys masked."""
        if self.patient_records and entity_type in PATIENT_RECORDS:
            return not _bookkeeping(column)
        if self.patient_records and column in ABOUT_PATIENTS.get(entity_type, {}):
            return ABOUT_PATIENTS[entity_type][column]
        return entity_type in self.identity_of and column in IDENTITY_FIELDS[entity_type]

    def value(self, entity_type: str, field: str | None, value: str | None) -> str | None:
        """An audit event's old or new value as this reader may see it: one column's value, or (field None) the
        row's JSON snapshot with the hidden columns masked."""
        if value is None:
            return None
        if field is not None:
            return _masked(value, self.hidden(entity_type, field))
        snapshot = _object(value)
        if snapshot is None:  # not a row snapshot: shown only when nothing of this record type is hidden
            hides = (self.patient_records and (entity_type in PATIENT_RECORDS or entity_type in ABOUT_PATIENTS)) \
                or entity_type in self.identity_of
            return REDACTED if hides else value
        masked = {column: _masked(item, self.hidden(entity_type, column)) for column, item in snapshot.items()}
        if masked == snapshot:  # nothing hidden: the value exactly as recorded
            return value
        return json.dumps(masked, sort_keys=True, ensure_ascii=False, separators=(",", ":"))  # as the audit hooks

    def reason(self, entity_type: str, reason: str | None) -> str | None:
        """The reason typed for a change of a patient's record may tell of the patient: masked with its values."""
        if reason and self.patient_records and entity_type in PATIENT_RECORDS:
            return REDACTED
        return reason

    def details(self, details: dict[str, Any]) -> dict[str, Any]:
        """A custody event's details with what names the patient masked."""
        if not self.patient_records:
            return details
        return {key: REDACTED if key in PATIENT_DETAILS and value is not None else value
                for key, value in details.items()}


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
