"""Electronic signatures: one table for every signed record (donor decisions, releases, prescriptions...)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mscbatch.audit.trail import Audited
from mscbatch.database import Base


class Signature(Audited, Base):
    """The manifestation of a signature (printed name, UTC time, meaning) bound to a record's content."""

    __tablename__ = "signature"
    __append_only__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    printed_name: Mapped[str] = mapped_column(String(120))
    signed_at: Mapped[datetime]
    meaning: Mapped[str] = mapped_column(String(120))
    entity_type: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str] = mapped_column(String(80))
    content_sha256: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_signature_entity", "entity_type", "entity_id"),)

    def manifestation(self) -> str:
        return f"{self.printed_name}, {self.signed_at:%Y-%m-%d %H:%M} UTC, {self.meaning}"
