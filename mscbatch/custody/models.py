"""Custody events, bedside two-person checks, infusions and infusion reactions (DOMAIN.md section 8).

CustodyEvent is append-only (the mixin refuses changes in the session; migration 0007 adds database triggers):
a bag's history is the list of its events, each saying who, when (UTC), where and which scan proved it.
A TwoPersonCheck is written for every bedside check, STOP as well as MATCHES (a caught mismatch is a record
too); the second person's confirmation is the only change it may ever take. An Infusion is unique per bag:
the database itself refuses a second infusion of one bag, whatever runs concurrently.
"""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mscbatch.audit.trail import Audited, Lockable
from mscbatch.database import Base, utcnow

#: every kind of custody event, in the order of a bag's life (issue 7 point 3)
EVENT_LABELS = {
    "labelled": "Labelled", "stored": "Stored", "moved": "Moved", "released": "Released",
    "allocated": "Allocated", "dispatched": "Dispatched", "received": "Received on the ward", "thawed": "Thawed",
    "bedside_verified": "Bedside two-person check", "infusion_started": "Infusion started",
    "infusion_ended": "Infusion ended", "returned": "Returned", "discarded": "Discarded",
}

#: CTCAE v5 terms most often seen with cell infusions (the form offers them; any CTCAE term may be typed)
CTCAE_TERMS = (
    "Infusion related reaction", "Allergic reaction", "Anaphylaxis", "Fever", "Chills", "Hypotension",
    "Hypertension", "Sinus tachycardia", "Dyspnea", "Hypoxia", "Bronchospasm", "Nausea", "Vomiting", "Headache",
    "Urticaria", "Rash maculo-papular", "Flushing", "Back pain", "Chest pain - cardiac", "Thromboembolic event",
)
#: the keys of a custody event's details that name the patient (bedside check, infusion start, allocation) or tell
#: of them (an infusion end's "why": the words typed for a dose outside the prescription): shown to the readers of
#: patient records only (dropped by the custody API's bag timeline, redacted by interop.privacy)
PATIENT_DETAILS = frozenset({"patient_id", "wristband", "why"})

GRADES = {1: "1 - mild", 2: "2 - moderate", 3: "3 - severe", 4: "4 - life-threatening", 5: "5 - death"}
#: CTCAE: a reaction of grade 3 (severe) or higher interrupts the infusion, is reported as a serious adverse event and
#: stops the next bag until the prescriber decides; grade 5 is death
SERIOUS_GRADE = 3
DEATH_GRADE = 5


class CustodyEvent(Audited, Base):
    """One hand-over or state change of one bag. Never changed, never deleted."""

    __tablename__ = "custody_event"
    __append_only__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bag.id"))
    kind: Mapped[str] = mapped_column(String(30))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    location: Mapped[str] = mapped_column(String(120), default="")
    scan: Mapped[str] = mapped_column(String(600), default="")  # the scanned code that proved it ("" = typed id)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    details_json: Mapped[str] = mapped_column(Text, default="{}")
    reason: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_custody_event_bag", "bag_id", "id"), Index("ix_custody_event_kind", "kind"))

    @property
    def details(self) -> dict[str, Any]:
        return json.loads(self.details_json or "{}")

    @property
    def label(self) -> str:
        return EVENT_LABELS.get(self.kind, self.kind)


class TwoPersonCheck(Audited, Lockable, Base):
    """A bedside check: what was scanned, what the server answered, who checked and who confirmed. Both people
    sign it at the confirmation (DOMAIN.md 8: "Both people sign"), which locks it."""

    __tablename__ = "two_person_check"
    __audit_reason_exempt__ = frozenset({"second_checker_id", "confirmed_at"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bag_id: Mapped[int | None] = mapped_column(ForeignKey("bag.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), index=True)
    wristband_scan: Mapped[str] = mapped_column(String(120))
    bag_scan: Mapped[str] = mapped_column(String(600))
    result: Mapped[str] = mapped_column(String(10))  # matches | stop
    failures_json: Mapped[str] = mapped_column(Text, default="[]")
    notes_json: Mapped[str] = mapped_column(Text, default="[]")
    checked_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    second_checker_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (CheckConstraint("second_checker_id IS NULL OR second_checker_id <> checked_by_id",
                                      name="two_people"),
                      Index("ix_two_person_check_result", "result", "checked_at"))  # admin's STOP counters

    def signed_content(self) -> dict[str, Any]:
        """What both signatures vouch for: the scans, the answer, and the two people."""
        return {"id": self.id, "bag_id": self.bag_id, "patient_id": self.patient_id,
                "wristband_scan": self.wristband_scan, "bag_scan": self.bag_scan, "result": self.result,
                "failures": self.failures_json, "checked_by_id": self.checked_by_id,
                "checked_at": self.checked_at.isoformat(), "second_checker_id": self.second_checker_id,
                "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None}

    @property
    def failures(self) -> list[dict[str, str]]:
        return json.loads(self.failures_json or "[]")

    @property
    def notes(self) -> list[str]:
        return json.loads(self.notes_json or "[]")


class Infusion(Audited, Base):
    """The infusion of one bag into one patient. UNIQUE bag_id: a bag is infused once, by construction."""

    __tablename__ = "infusion"
    __audit_reason_exempt__ = frozenset({"ended_at", "ended_by_id", "volume_infused_ml", "volume_reason"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bag.id"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    check_id: Mapped[int] = mapped_column(ForeignKey("two_person_check.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    second_person_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    volume_infused_ml: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    #: why the volume given (or the course) is outside the prescription, given at the end; None when inside
    volume_reason: Mapped[str | None] = mapped_column(Text, default=None)


class InfusionReaction(Audited, Base):
    """An infusion reaction entered at the bedside: CTCAE term and grade (1-5) with free text."""

    __tablename__ = "infusion_reaction"
    __append_only__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    infusion_id: Mapped[int] = mapped_column(ForeignKey("infusion.id"), index=True)
    ctcae_term: Mapped[str] = mapped_column(String(120))
    grade: Mapped[int]
    description: Mapped[str] = mapped_column(Text, default="")
    onset_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("grade BETWEEN 1 AND 5", name="grade_range"),)


#: QA's decisions on a bag returned to the unit (EU GMP Part I 5.65: a product that has left the unit's care goes
#: back into stock only when its quality is without doubt satisfactory, after QA's critical assessment of its
#: storage conditions, condition, history and time out; otherwise it is destroyed)
RETURN_DECISIONS = {"restock": "Back into stock", "discard": "Discard"}


class ReturnAssessment(Audited, Lockable, Base):
    """QA's signed assessment of one return of a bag to the unit: back into stock (the shipper's temperature
    logger stayed cold enough, the bag is intact) or discarded. One per return (its "returned" custody event)."""

    __tablename__ = "custody_return_assessment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bag.id"), index=True)
    return_event_id: Mapped[int] = mapped_column(ForeignKey("custody_event.id"), unique=True)
    decision: Mapped[str] = mapped_column(String(10))  # a key of RETURN_DECISIONS
    #: the warmest temperature the logger that travelled with the bag recorded (°C); required to restock
    logger_max_c: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    intact: Mapped[bool]  # bag, overwrap and label seen intact
    minutes_out: Mapped[int | None]  # from its dispatch to its return (None: no dispatch recorded)
    rationale: Mapped[str] = mapped_column(Text)
    assessed_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    assessed_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def decision_words(self) -> str:
        return RETURN_DECISIONS.get(self.decision, self.decision)

    def signed_content(self) -> dict[str, Any]:
        return {"bag_id": self.bag_id, "return_event_id": self.return_event_id, "decision": self.decision,
                "logger_max_c": None if self.logger_max_c is None else f"{self.logger_max_c}",
                "intact": self.intact, "minutes_out": self.minutes_out, "rationale": self.rationale}
