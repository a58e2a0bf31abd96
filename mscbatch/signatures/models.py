"""Electronic signatures: one table for every signed record (donor decisions, releases, prescriptions...)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mscbatch.audit.trail import Audited
from mscbatch.database import Base
from mscbatch.site import local_and_utc


class Signature(Audited, Base):
    """The manifestation of a signature (printed name, date-time, meaning) bound to a record's content."""

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
        """The signature as people read it (21 CFR 11.50): the printed name, the instant in the site's local time
        with UTC beside it (site.local_and_utc, as the pages say every time: UTC alone dates an evening signature
        to the next day) and the meaning. Machine-read instants (the API) stay ISO 8601 in UTC."""
        return f"{self.printed_name}, {local_and_utc(self.signed_at)}, “{self.meaning}”"
