"""Lots, their manufacturing record, reagent lots, bags and storage (DOMAIN.md sections 4, 7 and 8).

Every table holding recorded data is Audited (edits need a reason, old values kept). Cell counts are integers
(BigInteger: a harvest is ~10^8-10^9 cells), volumes and percentages Numeric: never floats. The lot is
Lockable: the release signature (issue 5) locks it; only its status may still move (expiry, recall).
Counters (DIN and lot number sequences) are system rows, not recorded data: they are not audited, but every
identifier they hand out is, on the bag or lot that receives it.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session

from mscbatch.audit.trail import Audited, Lockable, LockedWithParent, committed_value
from mscbatch.core.culture import format_pd
from mscbatch.database import Base, utcnow
from mscbatch.lots.reagent_rules import REAGENT_TYPES  # noqa: F401 (defined with its rules; imported from here too)

LOT_STATUSES = ("in_process", "quarantine", "conditional_release", "released", "rejected", "expired", "recalled")
STEP_KINDS = {"isolation": "Isolation", "passage": "Passage"}
DEVIATION_SEVERITIES = {"minor": "Minor", "major": "Major", "critical": "Critical"}
TISSUE_UNITS = {"g": "g", "mL": "mL"}
STORAGE_KINDS = {"site": "Site", "freezer": "Freezer", "tank": "Nitrogen tank", "rack": "Rack", "box": "Box"}
#: which kind may hold which: site / freezer or tank / rack / box (DOMAIN.md section 4)
STORAGE_PARENTS = {"site": (None,), "freezer": ("site",), "tank": ("site",), "rack": ("freezer", "tank"),
                   "box": ("rack",)}
PENDING_FLAG = "Donor eligibility pending: release impossible until QA approves the donor."


class Lot(Audited, Lockable, Base):
    """One lot from one donor's collection. `donor_gate` is what the donor gate said when it was started;
    `gate_now` and `eligibility_pending` follow the donor's gate as it is now."""

    __tablename__ = "lot"
    __audit_reason_exempt__ = frozenset({"status", "status_changed_at", "status_changed_by_id"})
    __lock_exempt__ = frozenset({"status", "status_changed_at", "status_changed_by_id"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_number: Mapped[str] = mapped_column(String(40), unique=True)
    product_id: Mapped[str] = mapped_column(String(40))
    product_name: Mapped[str] = mapped_column(String(120))
    product_class: Mapped[str] = mapped_column(String(20))
    donor_id: Mapped[int] = mapped_column(ForeignKey("donor.id"))
    donor_gate: Mapped[str] = mapped_column(String(20))  # approved | pending, when the lot started (not now)
    status: Mapped[str] = mapped_column(String(20), default="in_process")
    collection_at: Mapped[datetime]
    collection_site: Mapped[str] = mapped_column(String(120))
    tissue_amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    tissue_unit: Mapped[str] = mapped_column(String(10))
    harvested_at: Mapped[datetime | None] = mapped_column(default=None)
    harvest_total_cells: Mapped[int | None] = mapped_column(BigInteger)
    harvest_viability_percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    harvest_viable_cells: Mapped[int | None] = mapped_column(BigInteger)
    frozen_at: Mapped[datetime | None] = mapped_column(default=None)
    cell_basis: Mapped[str | None] = mapped_column(String(10))
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    site_config_version: Mapped[str] = mapped_column(String(40))
    site_config_sha256: Mapped[str] = mapped_column(String(64))
    products_version: Mapped[str] = mapped_column(String(40))
    products_sha256: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    status_changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    # The list page filters by one of status / product / donor / collection date and pages by id descending:
    # each composite index serves "WHERE x = ? ORDER BY id DESC LIMIT n" without a sort, at 100 000 lots.
    __table_args__ = (Index("ix_lot_status_id", "status", "id"), Index("ix_lot_product_id", "product_id", "id"),
                      Index("ix_lot_donor_id", "donor_id", "id"), Index("ix_lot_collection_at", "collection_at"))

    @property
    def gate_now(self) -> str:
        """The donor gate NOW ("approved", "pending" or "ineligible"), judged at the lot's collection day: it follows
        QA's later approval, a reopening by new information and a later result. `donor_gate` stays what the gate
        said when the lot was started (kept for the record)."""
        known = self.__dict__.get("known_gate_now")  # set for a list by lots.queries.known_gates, or judged before
        if known is not None:
            return known
        session = object_session(self)
        if session is None or self.donor_id is None:
            return self.donor_gate
        from mscbatch.lots.services import current_gate  # the services import this module

        gate = self.__dict__["known_gate_now"] = current_gate(session, self)  # judged once per lot object
        return gate

    @property
    def eligibility_pending(self) -> bool:
        """Release is impossible now for the donor's sake: its eligibility is not (or no longer) approved."""
        return self.gate_now != "approved"

    def signed_content(self) -> dict[str, object]:
        """What a release signature (issue 5) vouches for: identity, origin and the harvest."""
        return {"lot_number": self.lot_number, "product_id": self.product_id, "donor_id": self.donor_id,
                "collection_at": self.collection_at.isoformat(), "harvest_total_cells": self.harvest_total_cells,
                "harvest_viable_cells": self.harvest_viable_cells,
                "frozen_at": self.frozen_at.isoformat() if self.frozen_at else None,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}


@event.listens_for(Lot, "expire")
def _forget_gate_now(lot: Lot, attributes: object) -> None:
    """A lot expired whole (a rollback, expire_all) judges its donor gate afresh at its next read."""
    if attributes is None and lot is not None:  # None: an instance already collected (its state expired alone)
        lot.__dict__.pop("known_gate_now", None)


class ProcessStep(Audited, Base):
    """Isolation (passage_number None) or passage Pn, with counts and the PD computed by the core."""

    __tablename__ = "lot_process_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"))
    kind: Mapped[str] = mapped_column(String(20))
    passage_number: Mapped[int | None]
    performed_on: Mapped[date] = mapped_column(Date)
    seeded_cells: Mapped[int | None] = mapped_column(BigInteger)
    harvested_cells: Mapped[int | None] = mapped_column(BigInteger)
    viability_percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    days_in_culture: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    population_doublings: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    cumulative_pd: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    warnings: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("lot_id", "kind", "passage_number"), Index("ix_lot_process_step_lot", "lot_id"))

    @property
    def label(self) -> str:
        return "Isolation" if self.kind == "isolation" else f"P{self.passage_number}"

    @property
    def pd_shown(self) -> str | None:
        """The passage's PD as the record shows it (core.culture.format_pd, from its counts): a small loss reads
        "-0.0029", not the stored 2 decimals' "0.00"."""
        if self.seeded_cells and self.harvested_cells:
            return format_pd(self.seeded_cells, self.harvested_cells)
        return None if self.population_doublings is None else str(self.population_doublings)


class Deviation(Audited, Base):
    """A deviation from the batch record, recorded against the step where it happened."""

    __tablename__ = "lot_deviation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), index=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("lot_process_step.id"))
    severity: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReagentLot(Audited, Base):
    """A supplier's lot of a reagent: recalls happen by reagent lot too (DOMAIN.md section 4)."""

    __tablename__ = "reagent_lot"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reagent_type: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(120))
    supplier: Mapped[str] = mapped_column(String(120))
    lot_number: Mapped[str] = mapped_column(String(60))
    expiry_date: Mapped[date] = mapped_column(Date)
    registered_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("supplier", "lot_number", "reagent_type"),)


class ReagentUse(Audited, Base):
    """A reagent lot used for a cell lot, at a step (or at cryopreservation when step_id is None)."""

    __tablename__ = "reagent_use"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), index=True)
    reagent_lot_id: Mapped[int] = mapped_column(ForeignKey("reagent_lot.id"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("lot_process_step.id"))
    stage: Mapped[str] = mapped_column(String(40))
    used_on: Mapped[date] = mapped_column(Date)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("lot_id", "reagent_lot_id", "stage"),)


class StorageLocation(Audited, Base):
    """A node of the storage tree. Freezers and tanks carry the storage temperature; boxes rows x columns."""

    __tablename__ = "storage_location"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(80))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("storage_location.id"), index=True)
    temperature_max_c: Mapped[Decimal | None] = mapped_column(Numeric(6, 1))
    rows: Mapped[int | None]
    columns: Mapped[int | None]
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("parent_id", "name"),)

    @property
    def capacity(self) -> int | None:
        return self.rows * self.columns if self.rows and self.columns else None


class Bag(Audited, LockedWithParent, Base):
    """One cryopreserved bag = one division of the lot, with its own DIN (unique per FIN and year).

    (box_id, position) is unique: the database itself refuses two bags in one position, whatever the code.
    """

    __tablename__ = "bag"
    __audit_reason_exempt__ = frozenset({"status", "box_id", "position"})  # custody moves give their own reason
    # the bag's identity and content (what the dose is calculated from) are part of the lot's record: once the lot
    # is signed (released or rejected) and locked, only custody still moves the bag
    __lock_exempt__ = frozenset({"status", "box_id", "position"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), index=True)
    bag_number: Mapped[int]
    bag_count: Mapped[int]
    division: Mapped[str] = mapped_column(String(2))
    din: Mapped[str] = mapped_column(String(13), unique=True)
    din_fin: Mapped[str] = mapped_column(String(5))
    din_year: Mapped[int]
    din_sequence: Mapped[int]
    check_character: Mapped[str] = mapped_column(String(1))
    product_code: Mapped[str] = mapped_column(String(8))
    volume_ml: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    cells_per_ml: Mapped[int] = mapped_column(BigInteger)
    total_cells: Mapped[int] = mapped_column(BigInteger)
    dmso_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    expires_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="stored")
    box_id: Mapped[int | None] = mapped_column(ForeignKey("storage_location.id"))
    position: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("din_fin", "din_year", "din_sequence"), UniqueConstraint("box_id", "position"),
                      UniqueConstraint("lot_id", "bag_number"), Index("ix_bag_status", "status"))

    @property
    def din_display(self) -> str:
        return f"{self.din_fin} {self.din_year:02d} {self.din_sequence:06d}"

    def locking_parent(self) -> Lot | None:
        session = object_session(self)
        lot_id = committed_value(self, "lot_id") or self.lot_id  # the lot it belonged to, were it moved to another
        return session.get(Lot, lot_id) if session is not None and lot_id is not None else None


class StorageMove(Audited, Base):
    """Every placement or move of a bag: from where to where, who, when and why (chain of custody)."""

    __tablename__ = "storage_move"
    __append_only__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bag_id: Mapped[int] = mapped_column(ForeignKey("bag.id"), index=True)
    from_box_id: Mapped[int | None] = mapped_column(ForeignKey("storage_location.id"))
    from_position: Mapped[int | None]
    to_box_id: Mapped[int] = mapped_column(ForeignKey("storage_location.id"))
    to_position: Mapped[int]
    reason: Mapped[str] = mapped_column(Text, default="")
    moved_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    moved_at: Mapped[datetime] = mapped_column(default=utcnow)


class DinCounter(Base):
    """The last DIN sequence handed out per FIN and 2-digit year: only ever incremented, never reset."""

    __tablename__ = "din_counter"

    fin: Mapped[str] = mapped_column(String(5), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_sequence: Mapped[int] = mapped_column(default=0)


class LotNumberCounter(Base):
    """The last lot number sequence handed out per year (site format, config/site.toml)."""

    __tablename__ = "lot_number_counter"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_sequence: Mapped[int] = mapped_column(default=0)
