"""Donors, their screening (laboratory results, exclusion questionnaire), QA eligibility decisions and
lookbacks (DOMAIN.md section 3).

Every table is Audited: edits of recorded data need a reason and keep the old value in the audit trail. A QA
decision is Lockable and signed; it is never edited afterwards, only superseded when new information arrives.
The intended recipient of a familial donor is stored as the trial patient code (text) until the patients
capability (issue 6) adds a patient table to link to.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mscbatch.audit.trail import Audited, Lockable
from mscbatch.database import Base, utcnow

SOURCE_LABELS = {"adipose_tissue": "Adipose tissue", "bone_marrow": "Bone marrow", "umbilical_cord": "Umbilical cord"}
DONOR_TYPE_LABELS = {"unrelated": "Allogeneic, unrelated", "familial": "Allogeneic, familial (one intended recipient)"}
RELATIONSHIP_LABELS = {"sibling": "Sibling", "parent": "Parent", "cousin": "Cousin",
                       "other_relative": "Other relative", "spouse": "Spouse"}
SEX_LABELS = {"female": "Female", "male": "Male"}
#: screening: no QA decision yet; approved / ineligible: signed by QA; pending_review: a signed decision was
#: reopened by new information and waits for QA again.
DONOR_STATUSES = ("screening", "approved", "ineligible", "pending_review")
STATUS_LABELS = {"screening": "screening", "approved": "approved", "ineligible": "ineligible",
                 "pending_review": "pending review"}
ANSWERS = ("yes", "no", "unknown")
APPROVED = "Donor eligibility approved"
#: the meaning of QA's signature on a correction of a result that was late news (services.late_news_of)
QA_CORRECTION_MEANING = "Screening result corrected by QA"
INELIGIBLE = "Donor ineligible"
MEANINGS = (APPROVED, INELIGIBLE)


class Donor(Audited, Base):
    """A donor known by a generated pseudonymised code; identity fields are shown only to identity roles."""

    __tablename__ = "donor"
    __audit_reason_exempt__ = frozenset({"status"})  # moved by decisions and reopenings, which give reasons

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    tissue_source: Mapped[str] = mapped_column(String(20), index=True)
    rule_set_id: Mapped[str] = mapped_column(String(60))
    protocol: Mapped[str] = mapped_column(String(40))
    donor_type: Mapped[str] = mapped_column(String(20))
    relationship: Mapped[str | None] = mapped_column(String(20))
    recipient_code: Mapped[str | None] = mapped_column(String(40))  # trial patient code; linked by issue 6
    initials: Mapped[str | None] = mapped_column(String(10))  # identity
    date_of_birth: Mapped[date | None] = mapped_column(Date)  # identity
    sex: Mapped[str | None] = mapped_column(String(10))
    weight_kg: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    consent_signed: Mapped[bool | None]
    consent_date: Mapped[date | None] = mapped_column(Date)
    social_security: Mapped[bool | None]
    childbearing_potential: Mapped[bool | None]
    contraception: Mapped[bool | None]
    retest_180_days_negative: Mapped[bool | None]
    planned_collection_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="screening", index=True)
    registered_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class ScreeningResult(Audited, Base):
    """One serology / NAT result (for a cord donation: the mother's). Corrections need a reason."""

    __tablename__ = "donor_screening_result"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    donor_id: Mapped[int] = mapped_column(ForeignKey("donor.id"))
    marker: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(20))
    result: Mapped[str] = mapped_column(String(20))
    sample_date: Mapped[date] = mapped_column(Date)
    lab_reference: Mapped[str] = mapped_column(String(60))
    entered_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    corrected_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    __table_args__ = (Index("ix_donor_screening_result_donor", "donor_id", "marker"),)

    def signed_content(self) -> dict[str, Any]:
        """What QA's signature on a correction of late news vouches for (services.correct_result): the result as
        corrected. Never locked by it: a later correction is signed again."""
        return {"donor_id": self.donor_id, "marker": self.marker, "method": self.method, "result": self.result,
                "sample_date": self.sample_date.isoformat(), "lab_reference": self.lab_reference}


class QuestionnaireAnswer(Audited, Base):
    """The answer to one exclusion question of the donor's rule set: yes (excludes), no, or unknown."""

    __tablename__ = "donor_questionnaire_answer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    donor_id: Mapped[int] = mapped_column(ForeignKey("donor.id"))
    question_id: Mapped[str] = mapped_column(String(80))
    answer: Mapped[str] = mapped_column(String(10))
    detail: Mapped[str] = mapped_column(Text, default="")
    answered_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("donor_id", "question_id"),)


class EligibilityDecision(Audited, Lockable, Base):
    """QA's signed decision with the engine's snapshot (status, every reason, rule set id/version/sha256).

    Never edited once signed; new information supersedes it (superseded_at / superseded_reason are the only
    fields that may still be set on the locked row).
    """

    __tablename__ = "donor_eligibility_decision"
    __lock_exempt__ = frozenset({"superseded_at", "superseded_reason"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    donor_id: Mapped[int] = mapped_column(ForeignKey("donor.id"), index=True)
    engine_status: Mapped[str] = mapped_column(String(20))
    meaning: Mapped[str] = mapped_column(String(60))
    reasons_json: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text, default="")
    ruleset_id: Mapped[str] = mapped_column(String(60))
    ruleset_version: Mapped[str] = mapped_column(String(20))
    ruleset_sha256: Mapped[str] = mapped_column(String(64))
    judged_at: Mapped[datetime]
    decided_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    superseded_at: Mapped[datetime | None] = mapped_column(default=None)
    superseded_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def reasons(self) -> list[dict[str, Any]]:
        return json.loads(self.reasons_json)

    @property
    def is_current(self) -> bool:
        return self.superseded_at is None

    def signed_content(self) -> dict[str, Any]:
        return {"donor_id": self.donor_id, "engine_status": self.engine_status, "meaning": self.meaning,
                "reasons": self.reasons_json, "comment": self.comment, "ruleset_id": self.ruleset_id,
                "ruleset_version": self.ruleset_version, "ruleset_sha256": self.ruleset_sha256,
                "judged_at": self.judged_at.isoformat(), "decided_by_id": self.decided_by_id}


class DonorLookback(Audited, Base):
    """A lookback opened when an approved donor's eligibility is reopened by new information.

    Lots do not exist yet: the lot and recall capabilities join this row to every lot made from the donor
    (donor_id) and close it (closed_at, closed_by_id, closure_note) after the investigation.
    """

    __tablename__ = "donor_lookback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    donor_id: Mapped[int] = mapped_column(ForeignKey("donor.id"), index=True)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    reason: Mapped[str] = mapped_column(Text)
    triggering_result_id: Mapped[int | None] = mapped_column(ForeignKey("donor_screening_result.id"))
    superseded_decision_id: Mapped[int] = mapped_column(ForeignKey("donor_eligibility_decision.id"))
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    closure_note: Mapped[str | None] = mapped_column(Text)
