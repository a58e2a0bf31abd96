"""Trial patients, weights, enrolment checks, escalation decisions, prescriptions and bag allocations
(DOMAIN.md sections 6 and 8; issue 6).

Every table is Audited (edits of recorded data need a reason, old values kept). The enrolment check, the
investigators' escalation decision and the prescription are Lockable: a clinician's e-signature locks them.
A bag is reserved for a patient by an Allocation row; `active_bag_id` carries the bag id while the allocation
stands and NULL once it is released, under a UNIQUE constraint: the database itself refuses a second active
allocation of one bag, whatever the code or the timing (NULLs are distinct in SQLite and PostgreSQL).
"""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, Numeric, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from mscbatch.audit.trail import Audited, Lockable, committed_value
from mscbatch.database import Base, utcnow

PATIENT_STATUSES = ("registered", "enrolled", "withdrawn")
SEX_LABELS = {"female": "Female", "male": "Male"}
#: who reads patients (pages and API), and whom other capabilities show a patient to
READERS = ("clinician", "nurse", "qa")
ENROLLED = "Patient enrolled in the trial"
ESCALATION_DECIDED = "Dose escalation decision (investigators)"
PRESCRIBED = "Prescribed: dose level, weight and bags"
WITHDRAWN = "Patient withdrawn from the trial"
#: the meanings of the clinician's signature that ends a prescription (prescriptions.cancel): before any bag was given,
#: once some were (the bags not given go back to stock), once every bag was given. The reason is not in the meaning
#: but in the signed content (cancel_reason): a patient's clinical reason is masked from the administrator's audit
#: view, where a signature's meaning is shown as written (as a withdrawal's meaning holds no reason either)
CANCELLED = "Prescription cancelled (the reason recorded with it)"
COURSE_STOPPED = "Course stopped (the reason recorded with it)"
COURSE_CLOSED = "Completed course closed (the note recorded with it)"
ENDED_MEANINGS = (CANCELLED, COURSE_STOPPED, COURSE_CLOSED)
#: a prescription: active (signed, its bags reserved); cancelled (stopped before any bag was given: every bag let go);
#: stopped (the course stopped after some bags were given: those keep their allocation, the others were let go)
PRESCRIPTION_STATUSES = ("active", "cancelled", "stopped")


class Patient(Audited, Base):
    """A trial patient known by a pseudonymised trial code (e.g. SLE-UC-001); initials and date of birth only."""

    __tablename__ = "patient"
    __audit_reason_exempt__ = frozenset({"status"})  # moved by the signed enrolment

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    protocol_id: Mapped[str] = mapped_column(String(60), index=True)
    initials: Mapped[str] = mapped_column(String(10))
    date_of_birth: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(10))
    ward: Mapped[str] = mapped_column(String(80))
    wristband_id: Mapped[str] = mapped_column(String(60), unique=True)
    familial_donor_id: Mapped[int | None] = mapped_column(ForeignKey("donor.id"))
    status: Mapped[str] = mapped_column(String(20), default="registered", index=True)
    registered_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)


# A wristband is one patient's identity at the bedside whatever its case and spacing (patients.queries.
# wristband_identity): "wb-sle-uc-050" or "WB SLE-UC-050" typed at one bed must never name another patient's
# "WB-SLE-UC-050". The services store the normalised spelling; this index holds the rule for any row, written by
# whatever path (on SQLite, where an expression index cannot be reflected, migration 0017 writes it as
# wristband_id COLLATE NOCASE: case only, the spacing being held by the services).
Index("uq_patient_wristband_identity", func.upper(func.replace(Patient.wristband_id, " ", "")), unique=True)


class PatientWithdrawal(Audited, Lockable, Base):
    """The signed withdrawal of a patient from the trial (consent withdrawn, the investigator's decision...): the
    patient is no longer enrolled, the bedside check says STOP for any bag, and no prescription can be made."""

    __tablename__ = "patient_withdrawal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), unique=True)
    withdrawn_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    status_before: Mapped[str] = mapped_column(String(20))
    withdrawn_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    withdrawn_at: Mapped[datetime] = mapped_column(default=utcnow)

    def signed_content(self) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "withdrawn_on": self.withdrawn_on.isoformat(), "reason": self.reason,
                "status_before": self.status_before, "withdrawn_by_id": self.withdrawn_by_id}


class WeightMeasurement(Audited, Base):
    """A weight with the date it was measured: the dose uses the latest one, if recent enough."""

    __tablename__ = "patient_weight"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    weight_kg: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    measured_on: Mapped[date] = mapped_column(Date)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_patient_weight_patient", "patient_id", "measured_on"),)


class WeightError(Audited, Lockable, Base):
    """A weight marked entered in error (a typo, 85 for 58 kg; another patient's weight) by a clinician, with why,
    signed: the mark can lift the bedside's WEIGHT CHANGED stop, as a prescription's signature sets a dose. The
    weight stays on the patient's page, struck through, and is not used again: not by the dose, nor by the checks of
    a new weight, nor by the bedside's "weight recorded since the prescription". Never edited nor undone (locked by
    its signature): a right weight is recorded anew."""

    __tablename__ = "patient_weight_error"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))  # where a refused signature is filed
    weight_id: Mapped[int] = mapped_column(ForeignKey("patient_weight.id"), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    marked_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)

    def signed_content(self) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "weight_id": self.weight_id, "reason": self.reason,
                "marked_by_id": self.marked_by_id}


class EnrolmentCheck(Audited, Lockable, Base):
    """The values entered and the core's verdict per criterion, with the protocol id/version/hash used.
    Signing it (only when eligible) enrols the patient and locks the check."""

    __tablename__ = "patient_enrolment_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    on_date: Mapped[date] = mapped_column(Date)
    values_json: Mapped[str] = mapped_column(Text)
    results_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    protocol_id: Mapped[str] = mapped_column(String(60))
    protocol_version: Mapped[str] = mapped_column(String(20))
    protocol_sha256: Mapped[str] = mapped_column(String(64))
    checked_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def results(self) -> list[dict[str, Any]]:
        return json.loads(self.results_json)

    @property
    def values(self) -> dict[str, Any]:
        return json.loads(self.values_json)

    def signed_content(self) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "on_date": self.on_date.isoformat(), "values": self.values_json,
                "results": self.results_json, "status": self.status, "protocol_id": self.protocol_id,
                "protocol_version": self.protocol_version, "protocol_sha256": self.protocol_sha256}


class EscalationDecisionRecord(Audited, Lockable, Base):
    """The investigators' choice of level for an escalation stage, citing the toxicity review (signed)."""

    __tablename__ = "escalation_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    protocol_id: Mapped[str] = mapped_column(String(60))
    protocol_version: Mapped[str] = mapped_column(String(20))
    stage_id: Mapped[str] = mapped_column(String(40))
    chosen_cells_per_kg: Mapped[int] = mapped_column(BigInteger)
    toxicity_review: Mapped[str] = mapped_column(Text)
    decided_on: Mapped[date] = mapped_column(Date)
    decided_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("uq_escalation_decision_stage", "protocol_id", "stage_id", unique=True),)

    def signed_content(self) -> dict[str, Any]:
        return {"protocol_id": self.protocol_id, "protocol_version": self.protocol_version, "stage_id": self.stage_id,
                "chosen_cells_per_kg": self.chosen_cells_per_kg, "toxicity_review": self.toxicity_review,
                "decided_on": self.decided_on.isoformat(), "decided_by_id": self.decided_by_id}


class Prescription(Audited, Lockable, Base):
    """A signed prescription: dose level, the weight used, and the calculation (bags and volumes) as JSON.
    Only its status may move once signed (active -> cancelled, or stopped once a bag was given; the cancelled_*
    columns then say who stopped it, when and why)."""

    __tablename__ = "prescription"
    __audit_reason_exempt__ = frozenset({"status"})
    __lock_exempt__ = frozenset({"status", "cancelled_at", "cancelled_by_id", "cancel_reason"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    protocol_id: Mapped[str] = mapped_column(String(60))
    protocol_version: Mapped[str] = mapped_column(String(20))
    protocol_sha256: Mapped[str] = mapped_column(String(64))
    dose_level_cells_per_kg: Mapped[int] = mapped_column(BigInteger)
    weight_id: Mapped[int] = mapped_column(ForeignKey("patient_weight.id"))
    weight_kg: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    weight_measured_on: Mapped[date] = mapped_column(Date)
    target_cells: Mapped[int] = mapped_column(BigInteger)
    delivered_cells: Mapped[int] = mapped_column(BigInteger)
    total_volume_ml: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    dmso_g: Mapped[Decimal] = mapped_column(Numeric(8, 3))
    dmso_g_per_kg: Mapped[Decimal] = mapped_column(Numeric(8, 4))
    calculation_json: Mapped[str] = mapped_column(Text)
    planned_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    prescribed_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    prescribed_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def calculation(self) -> dict[str, Any]:
        return json.loads(self.calculation_json)

    def signed_content(self) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "protocol_id": self.protocol_id,
                "protocol_version": self.protocol_version, "protocol_sha256": self.protocol_sha256,
                "dose_level_cells_per_kg": self.dose_level_cells_per_kg, "weight_id": self.weight_id,
                "weight_kg": str(self.weight_kg), "weight_measured_on": self.weight_measured_on.isoformat(),
                "calculation": self.calculation_json, "planned_at": self.planned_at.isoformat()}

    def signed_content_for(self, meaning: str) -> dict[str, Any]:
        """The signature that cancels, stops or closes the course vouches for that too (its status, who, when and
        why), so that an altered reason fails its verification; the prescription's own signature keeps its content."""
        content = self.signed_content()
        if meaning in ENDED_MEANINGS:
            content.update(status=self.status, cancelled_by_id=self.cancelled_by_id, cancel_reason=self.cancel_reason,
                           cancelled_at=self.cancelled_at.isoformat() if self.cancelled_at else None)
        return content

    def lock_exempt_now(self) -> frozenset[str]:
        """The end (status, who, when, why) may be written once, while the prescription is active: the clinician's
        signature then vouches for it, and it is locked like the rest."""
        return type(self).__lock_exempt__ if committed_value(self, "status") == "active" else frozenset()


class Allocation(Audited, Base):
    """One bag reserved for one patient by a prescription, with the volume to draw from it."""

    __tablename__ = "bag_allocation"
    __audit_reason_exempt__ = frozenset({"active_bag_id", "released_at", "released_by_id"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prescription_id: Mapped[int] = mapped_column(ForeignKey("prescription.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bag.id"), index=True)
    active_bag_id: Mapped[int | None] = mapped_column(ForeignKey("bag.id"), unique=True)
    volume_ml: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    cells: Mapped[int] = mapped_column(BigInteger)
    partial: Mapped[bool]
    conditional_release: Mapped[bool] = mapped_column(default=False)
    allocated_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(default=None)
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    @property
    def active(self) -> bool:
        return self.active_bag_id is not None
