"""Label prints (issue 7): every print and reprint of bag labels, with the layout it used and why.

A LabelPrint is one print job (one bag, a whole lot, or an A4 sheet); LabelPrintItem names each bag printed.
Both are append-only: a print happened, it cannot be un-happened. A bag printed before makes the next print of
it a reprint, which needs a reason and is marked "REPRINT" on the label.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from mscbatch.audit.trail import Audited
from mscbatch.database import Base, utcnow

PRINT_FORMATS = {"bag": "One bag (label printer)", "lot": "Whole lot (label printer)", "sheet": "A4 sheet"}


class LabelPrint(Audited, Base):
    """One print job: who, when, which layout (id, version, sha256), reprint flag and reason, PDF hash."""

    __tablename__ = "label_print"
    __append_only__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), index=True)
    print_format: Mapped[str] = mapped_column(String(10))
    layout_id: Mapped[str] = mapped_column(String(60))
    layout_version: Mapped[str] = mapped_column(String(40))
    layout_sha256: Mapped[str] = mapped_column(String(64))
    bag_count: Mapped[int]
    reprint: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    printed_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    printed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelPrintItem(Audited, Base):
    """One bag of a print job, with the release state of its lot at print time: `lot_status` (quarantine,
    released, conditional_release) and `released`, true when the label printed is the released one (the lot
    released, conditionally or exceptionally, and the label carrying that state: its CONDITIONAL or EXCEPTIONAL
    RELEASE marker, an exceptional release's patient). A bag leaves the unit only with its released label
    (labelling.services.dispatch_label_problem). Items printed before migration 0014 have lot_status NULL and
    released false: their release state was not recorded, so they do not count as the released label."""

    __tablename__ = "label_print_item"
    __append_only__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    print_id: Mapped[int] = mapped_column(ForeignKey("label_print.id"), index=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bag.id"))
    reprint: Mapped[bool] = mapped_column(default=False)
    lot_status: Mapped[str | None] = mapped_column(String(30), default=None)
    released: Mapped[bool] = mapped_column(default=False, server_default=false())

    __table_args__ = (Index("ix_label_print_item_bag", "bag_id"),)
