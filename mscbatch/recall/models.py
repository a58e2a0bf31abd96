"""Recalls and bag holds (issue 7, DOMAIN.md section 8: lookback / recall).

A Recall starts from a donor (late positive marker), a lot or a reagent lot, with a reason and QA's
signature; it puts every affected bag not yet infused on hold at once (one BagHold per bag). The bedside
check refuses a bag with an active hold (mscbatch.recall.queries.bag_hold). A recall leaves "active" once, signed,
one of two ways: "ended" (found invalid: its holds are lifted) or "completed" (found valid and done, EU GMP Part I
8.30: every affected bag infused or destroyed; its holds stay and its origin stays recalled). Nothing is deleted.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mscbatch.audit.trail import Audited, Lockable, committed_value
from mscbatch.database import Base, utcnow

RECALL_SCOPES = {"donor": "Donor", "lot": "Lot", "reagent_lot": "Reagent lot"}
RECALL_STATUSES = {"active": "Active", "ended": "Ended (found invalid)", "completed": "Completed"}
# The end signature's meaning. Its content includes the ending (who, when, why); end signatures made before it
# existed had the meaning "Recall ended: found invalid, holds lifted" and the start content, and still verify.
END_MEANING = "Recall ended: found invalid, holds lifted, end reason signed"
# The completion signature's meaning; its content includes the closing (who, when, the closing note), as the end's.
COMPLETE_MEANING = "Recall completed: every affected bag accounted for"


class Recall(Audited, Lockable, Base):
    """One recall / lookback. The start signature locks what it vouches for; only the closing may follow: the
    ended_* columns say who closed it and when, either way; end_reason is why it was ended (found invalid), or the
    closing note of a completed recall (effectiveness check, reconciliation of delivered and recovered bags)."""

    __tablename__ = "recall"
    __audit_reason_exempt__ = frozenset({"status", "ended_at", "ended_by_id", "end_reason"})
    __lock_exempt__ = frozenset({"status", "ended_at", "ended_by_id", "end_reason"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(20))
    donor_id: Mapped[int | None] = mapped_column(ForeignKey("donor.id"), index=True)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lot.id"), index=True)
    reagent_lot_id: Mapped[int | None] = mapped_column(ForeignKey("reagent_lot.id"), index=True)
    lookback_id: Mapped[int | None] = mapped_column(ForeignKey("donor_lookback.id"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="active")
    started_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    end_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_recall_status_id", "status", "id"),)

    def signed_content(self) -> dict[str, object]:
        """What the start signature vouches for: the origin and the reason."""
        return {"scope": self.scope, "donor_id": self.donor_id, "lot_id": self.lot_id,
                "reagent_lot_id": self.reagent_lot_id, "reason": self.reason,
                "started_at": self.started_at.isoformat() if self.started_at else None}

    def signed_content_for(self, meaning: str) -> dict[str, object]:
        """The end and completion signatures vouch for the closing too (who, when, why or the closing note, and
        which way: the status), so that an altered note or closer fails their verification; the start signature
        keeps its own content."""
        content = self.signed_content()
        if meaning in (END_MEANING, COMPLETE_MEANING):
            content.update(status=self.status, ended_by_id=self.ended_by_id, end_reason=self.end_reason,
                           ended_at=self.ended_at.isoformat() if self.ended_at else None)
        return content

    def lock_exempt_now(self) -> frozenset[str]:
        """The closing may be written once, while the recall is active: the end or completion signature then
        vouches for it (who, when, the reason or closing note), and it is locked like the start."""
        return type(self).__lock_exempt__ if committed_value(self, "status") == "active" else frozenset()

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def status_words(self) -> str:
        return RECALL_STATUSES.get(self.status, self.status)


class BagHold(Audited, Base):
    """A bag on hold because of a recall. Active while lifted_at is None."""

    __tablename__ = "bag_hold"
    __audit_reason_exempt__ = frozenset({"lifted_at", "lifted_by_id"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recall_id: Mapped[int] = mapped_column(ForeignKey("recall.id"), index=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bag.id"))
    bag_status_at_hold: Mapped[str] = mapped_column(String(20))
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
    lifted_at: Mapped[datetime | None] = mapped_column(default=None)
    lifted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    __table_args__ = (UniqueConstraint("recall_id", "bag_id"), Index("ix_bag_hold_bag", "bag_id", "lifted_at"))

    @property
    def active(self) -> bool:
        return self.lifted_at is None


#: how a clinician was told of a recall reaching their patient (RecallNotice.how), in the words the pages use
NOTICE_HOW = {"phone": "by phone", "in_person": "in person", "letter": "by letter", "email": "by email",
              "in_app": "in the app"}
#: the ways QA records; "in the app" is the clinician's own acknowledgement on their home page
QA_NOTICE_HOW = ("phone", "in_person", "letter", "email")


class RecallNotice(Audited, Base):
    """A patient's clinician told of a recall that reached the patient (DOMAIN.md sections 5 and 8: notify the
    clinician of every patient who received the product; EU GMP Part IV 11). One per patient on a recall's notify
    list: recorded by QA (who was told, how, when) or by the clinician acknowledging it in the app (clinician_id
    set, how "in_app"). A recall is not completed while a patient on its notify list has none. Never edited."""

    __tablename__ = "recall_notice"
    __append_only__ = True  # evidence that a clinician was told; the database refuses UPDATE and DELETE (0021)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recall_id: Mapped[int] = mapped_column(ForeignKey("recall.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    clinician_name: Mapped[str] = mapped_column(String(200))
    clinician_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))  # the clinician's own account
    how: Mapped[str] = mapped_column(String(20))
    told_at: Mapped[datetime] = mapped_column()
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("recall_id", "patient_id"),)

    @property
    def how_words(self) -> str:
        return NOTICE_HOW.get(self.how, self.how)
