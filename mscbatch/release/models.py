"""Release testing, OOS investigations and lot dispositions (DOMAIN.md sections 5 and 9; issue 5).

Results are never deleted (ALCOA+): a correction changes the value with a reason (the audit trail keeps the
old one, and `corrected_count` marks the value as changed after first entry: EU GMP Annex 11 8.2); an OOS
investigation that invalidates a result flags it, it stays. Attachments keep their bytes and SHA-256.
A disposition (release, conditional release, exceptional release, rejection, completion of a conditional
release) is the signed record: the signature vouches for the lot's identity and the verdicts it was given.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mscbatch.audit.trail import Audited, Lockable, committed_value
from mscbatch.core.oos_causes import cause_words
from mscbatch.database import Base, utcnow

OOS_OPEN, OOS_INVALIDATED, OOS_CONFIRMED = "open", "invalidated", "confirmed"
DISPOSITION_KINDS = {
    "release": "Released for clinical use",
    "conditional_release": "Conditionally released for clinical use (pending test)",
    "completion": "Conditional release completed",
    "exceptional_release": "Exceptionally released for a named patient (OOS batch)",
    "rejection": "Rejected",
}
CLINICIAN_MEANING = "Clinical justification for exceptional use (OOS batch)"


class ReleaseResult(Audited, Base):
    """One entered release-test result. `value` is the canonical text (a Decimal's digits or the spec word)."""

    __tablename__ = "release_result"
    __audit_reason_exempt__ = frozenset({"invalidated_at", "invalidated_reason"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"))
    test_id: Mapped[str] = mapped_column(String(40))
    spec_id: Mapped[str] = mapped_column(String(40))
    spec_version: Mapped[str] = mapped_column(String(20))
    spec_sha256: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(60))
    unit: Mapped[str] = mapped_column(String(20))
    first_value: Mapped[str] = mapped_column(String(60))
    method: Mapped[str] = mapped_column(String(200))
    analyst: Mapped[str] = mapped_column(String(120))
    tested_on: Mapped[date] = mapped_column(Date)
    instrument: Mapped[str] = mapped_column(String(120), default="")
    reagent_lot: Mapped[str] = mapped_column(String(120), default="")
    entered_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    corrected_count: Mapped[int] = mapped_column(default=0)
    corrected_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    corrected_at: Mapped[datetime | None] = mapped_column(default=None)
    invalidated_at: Mapped[datetime | None] = mapped_column(default=None)
    invalidated_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_release_result_lot_test", "lot_id", "test_id"),)

    @property
    def changed_after_entry(self) -> bool:
        return self.corrected_count > 0


class ResultAttachment(Audited, Base):
    """A file attached to a result (e.g. the cytometer export): bytes, size and SHA-256 kept together."""

    __tablename__ = "release_attachment"
    __append_only__ = True
    __audit_exclude__ = frozenset({"content"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("release_result.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class OosInvestigation(Audited, Lockable, Base):
    """Out of specification: opened by the system on a failing blocking result, closed by QA with a signature.
    `late` = the failure came after a conditional release; `patients_to_notify` lists who received the lot.
    `assignable_cause`: the laboratory cause an invalidation is founded on (a code of core.oos_causes), signed with
    it; None on a confirmed OOS and on one invalidated before causes were recorded (migration 0020)."""

    __tablename__ = "release_oos"
    __audit_reason_exempt__ = frozenset({"status", "closed_at", "closed_by_id", "retest_result_id", "conclusion",
                                         "investigation", "assignable_cause"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), index=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("release_result.id"))
    test_id: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=OOS_OPEN)
    late: Mapped[bool] = mapped_column(default=False)
    patients_to_notify: Mapped[str] = mapped_column(Text, default="[]")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    investigation: Mapped[str] = mapped_column(Text, default="")
    conclusion: Mapped[str | None] = mapped_column(String(20))
    retest_result_id: Mapped[int | None] = mapped_column(ForeignKey("release_result.id"))
    assignable_cause: Mapped[str | None] = mapped_column(String(30))
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    closed_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_release_oos_status", "status"), Index("ix_release_oos_lot_status", "lot_id", "status"))

    @property
    def patients(self) -> list[Any]:
        return list(json.loads(self.patients_to_notify or "[]"))

    @property
    def cause_words(self) -> str:
        """The assignable cause in words (core.oos_causes), or that none was recorded."""
        return cause_words(self.assignable_cause)

    def signed_content(self) -> dict[str, Any]:
        content = {"lot_id": self.lot_id, "result_id": self.result_id, "test_id": self.test_id,
                   "description": self.description, "investigation": self.investigation,
                   "conclusion": self.conclusion, "retest_result_id": self.retest_result_id}
        # the cause an invalidation vouches for; absent (not null) when none was recorded, so that an investigation
        # signed before the column existed (migration 0020) still verifies against the content it was signed on
        if self.assignable_cause is not None:
            content["assignable_cause"] = self.assignable_cause
        return content


class LotDisposition(Audited, Lockable, Base):
    """What QA decided about a lot and what it was judged with: the record the e-signature is bound to."""

    __tablename__ = "release_disposition"
    # A clinician's request for exceptional release is locked at the clinician's signature; QA's countersignature
    # then writes who decided and when, once (lock_exempt_now). Every other disposition is locked whole at once.
    __lock_exempt__ = frozenset({"decided_by_id", "signed_at"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    spec_id: Mapped[str] = mapped_column(String(40))
    spec_version: Mapped[str] = mapped_column(String(20))
    spec_sha256: Mapped[str] = mapped_column(String(64))
    verdicts_json: Mapped[str] = mapped_column(Text)
    lot_content_json: Mapped[str] = mapped_column(Text)
    justification: Mapped[str] = mapped_column(Text, default="")
    pending_tests: Mapped[str] = mapped_column(String(200), default="")
    patient_code: Mapped[str | None] = mapped_column(String(40))
    clinician_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    signed_at: Mapped[datetime | None] = mapped_column(default=None)

    def lock_exempt_now(self) -> frozenset[str]:
        return type(self).__lock_exempt__ if committed_value(self, "signed_at") is None else frozenset()

    @property
    def meaning(self) -> str:
        return DISPOSITION_KINDS[self.kind]

    @property
    def count_justification(self) -> str:
        """QA's justification of a viable cell count above the harvest, signed with this disposition: kept on the
        count's row of the signed verdict snapshot (release.release._snapshot), apart from `justification`, which
        is about the pending tests of a conditional release and never waives the count."""
        return next((row.get("count_justification", "") for row in json.loads(self.verdicts_json or "[]")
                     if row.get("count_justification")), "")

    def signed_content(self) -> dict[str, Any]:
        return {"lot_id": self.lot_id, "kind": self.kind, "spec": [self.spec_id, self.spec_version, self.spec_sha256],
                "verdicts": self.verdicts_json, "lot": self.lot_content_json, "justification": self.justification,
                "pending_tests": self.pending_tests, "patient_code": self.patient_code}


# every outcome a signed deviation assessment may have, each with one meaning (it is signed content): which ones
# QA chooses from depends on whether the lot is still before release (assessment_outcomes)
ASSESSMENT_OUTCOMES = {"no_impact": "No impact on the released bags: the lot stays in use",
                       "recall": "The lot is recalled",
                       "no_impact_release": "No impact on the lot's quality: release may proceed",
                       "reject": "The lot is rejected"}
# EU GMP Annex 16 1.7.17: a deviation of these severities is investigated before certification, so it needs QA's
# own signed assessment before the lot is released; a minor one is weighed by the release signature itself
ASSESSED_BEFORE_RELEASE = ("major", "critical")


def assessment_outcomes(before_release: bool, lot_status: str) -> dict[str, str]:
    """The outcomes QA chooses from: after release, the bags stay in use or the lot is recalled; before release,
    release may proceed or the lot is rejected; a conditionally released lot (its bags may be on a ward) is
    recalled, never rejected (release.release.reject_in_use_case)."""
    if not before_release:
        keys = ("no_impact", "recall")
    elif lot_status == "conditional_release":
        keys = ("no_impact_release", "recall")
    else:
        keys = ("no_impact_release", "reject")
    return {key: ASSESSMENT_OUTCOMES[key] for key in keys}


class DeviationAssessment(Audited, Lockable, Base):
    """QA's signed assessment of a deviation: one recorded after its lot's release, which no release signature
    weighed (the lot stays in use, or it is recalled in the same transaction), or a major or critical one recorded
    before it (release may proceed, or the lot is rejected in the same transaction). One per deviation."""

    __tablename__ = "release_deviation_assessment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deviation_id: Mapped[int] = mapped_column(ForeignKey("lot_deviation.id"), unique=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), index=True)
    severity: Mapped[str] = mapped_column(String(20))  # the deviation as QA read it: signed with the assessment
    description: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(20))  # a key of ASSESSMENT_OUTCOMES
    rationale: Mapped[str] = mapped_column(Text)
    assessed_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    assessed_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def outcome_words(self) -> str:
        return ASSESSMENT_OUTCOMES.get(self.outcome, self.outcome)

    def signed_content(self) -> dict[str, Any]:
        return {"deviation_id": self.deviation_id, "lot_id": self.lot_id, "severity": self.severity,
                "description": self.description, "outcome": self.outcome, "rationale": self.rationale}
