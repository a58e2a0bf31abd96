"""The lot page: everything the manufacturing record shows, and the cumulative PD / viability plot.

The plot is drawn on the server as inline SVG (no JavaScript, no CDN) from the same numbers as the data table
under it, so what a screen reader reads and what the eye sees cannot differ.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.core.culture import harvest_bounds
from mscbatch.core.site_config import Product
from mscbatch.core.states import LOT, BagStatus
from mscbatch.donors.models import Donor, DonorLookback
from mscbatch.donors.queries import lookbacks_of
from mscbatch.lots.models import (
    Bag,
    Deviation,
    Lot,
    ProcessStep,
    ReagentLot,
    ReagentUse,
    StorageLocation,
    StorageMove,
)
from mscbatch.lots.queries import (
    MoveRow,
    bag_status,
    bags_of,
    get_lot,
    location_path,
    move_rows,
    position_label,
    product_of,
)
from mscbatch.lots.reagent_rules import missing_reagent_types, requirement_words
from mscbatch.lots.services import gate_and_reasons
from mscbatch.lots.steps import steps_of

PLOT_WIDTH, PLOT_HEIGHT, MARGIN = 560, 260, 48


@dataclass(frozen=True)
class BagRow:
    bag: Bag
    status: BagStatus
    location: str
    position: str
    box_id: int | None


@dataclass
class Plot:
    """Coordinates for the SVG: one point per passage for cumulative PD (left axis) and viability (right)."""

    pd_points: list[tuple[float, float, str, Decimal]] = field(default_factory=list)
    viability_points: list[tuple[float, float, str, Decimal]] = field(default_factory=list)
    pd_max: Decimal = Decimal(0)
    pd_limit_y: float | None = None
    pd_limit: Decimal | None = None
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    pd_ticks: list[tuple[float, str]] = field(default_factory=list)
    viability_ticks: list[tuple[float, str]] = field(default_factory=list)
    width: int = PLOT_WIDTH
    height: int = PLOT_HEIGHT
    margin: int = MARGIN

    def polyline(self, points: list[tuple[float, float, str, Decimal]]) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _label, _value in points)


def build_plot(passages: list[ProcessStep], product: Product) -> Plot:
    plot = Plot()
    if not passages:
        return plot
    limit = product.culture_limits.max_cumulative_pd
    top = max([Decimal(s.cumulative_pd or 0) for s in passages] + [limit]) * Decimal("1.1")
    inner_w, inner_h = PLOT_WIDTH - 2 * MARGIN, PLOT_HEIGHT - 2 * MARGIN
    step = inner_w / max(1, len(passages) - 1) if len(passages) > 1 else 0

    def y_for(value: Decimal, scale: Decimal) -> float:
        return float(MARGIN + inner_h - inner_h * (value / scale))

    for index, s in enumerate(passages):
        x = MARGIN + (index * step if len(passages) > 1 else inner_w / 2)
        plot.x_ticks.append((x, s.label))
        plot.pd_points.append((x, y_for(Decimal(s.cumulative_pd or 0), top), s.label, s.cumulative_pd or Decimal(0)))
        if s.viability_percent is not None:
            plot.viability_points.append((x, y_for(s.viability_percent, Decimal(100)), s.label, s.viability_percent))
    plot.pd_max, plot.pd_limit = top, limit
    plot.pd_limit_y = y_for(limit, top)
    plot.pd_ticks = [(y_for(top * k / 4, top), f"{top * k / 4:.0f}") for k in range(5)]
    plot.viability_ticks = [(y_for(Decimal(v), Decimal(100)), f"{v}%") for v in (0, 25, 50, 75, 100)]
    return plot


@dataclass(frozen=True)
class LotRecord:
    lot: Lot
    donor: Donor
    product: Product
    gate_now: str
    gate_reasons: list[str]  # why gate_now is not "approved" (donors.decisions.donor_gate_reasons)
    steps: list[ProcessStep]
    deviations: list[Deviation]
    reagents: list[tuple[ReagentUse, ReagentLot]]
    bags: list[BagRow]
    moves: list[MoveRow]
    lookbacks: list[DonorLookback]
    plot: Plot
    users: dict[int, str]
    next_states: dict[str, tuple[str, ...]]
    #: required reagent types the record does not name yet (lots.reagent_rules.missing_reagent_types): the page
    #: shows them before the technician sends the lot to quarantine, which refuses them
    missing_reagents: list[str] = field(default_factory=list)

    @property
    def passages(self) -> list[ProcessStep]:
        return [s for s in self.steps if s.kind == "passage"]

    @property
    def harvest_range(self) -> tuple[ProcessStep, Decimal, Decimal] | None:
        """The last passage and the total cells its count allows at the harvest (core.culture.check_harvest_count):
        shown by the harvest form, so the technician sees the expected number before typing it."""
        if not self.passages or not self.passages[-1].harvested_cells:
            return None
        last = self.passages[-1]
        return last, *harvest_bounds(Decimal(last.harvested_cells or 0))

    @property
    def required_reagents(self) -> list[str]:
        """The product's required reagent types in plain words ("culture medium", "platelet lysate or FBS", ...)."""
        return [requirement_words(requirement) for requirement in self.product.required_reagent_types]

    @property
    def bag_cells(self) -> int:
        return sum(b.bag.total_cells for b in self.bags)


def lot_record(session: Session, lot_id: int, roles: Any = ()) -> LotRecord:
    lot = get_lot(session, lot_id)
    donor = session.get(Donor, lot.donor_id)
    assert donor is not None
    product = product_of(lot)
    steps = steps_of(session, lot.id)
    deviations = list(session.scalars(select(Deviation).where(Deviation.lot_id == lot.id).order_by(Deviation.id)))
    reagents = [(u, r) for u, r in session.execute(
        select(ReagentUse, ReagentLot).join(ReagentLot, ReagentLot.id == ReagentUse.reagent_lot_id)
        .where(ReagentUse.lot_id == lot.id).order_by(ReagentUse.used_on, ReagentUse.id))]
    rows = []
    for bag in bags_of(session, lot.id):
        box = session.get(StorageLocation, bag.box_id) if bag.box_id else None
        where = (" / ".join(n.name for n in location_path(session, box)) if box else
                 "left storage" if bag.status in ("dispatched", "received", "thawed", "infused", "discarded")
                 else "not placed yet")
        rows.append(BagRow(bag, bag_status(bag, lot), where, position_label(box, bag.position) if box else "—",
                           box.id if box else None))
    moves = list(session.scalars(select(StorageMove).where(StorageMove.bag_id.in_([r.bag.id for r in rows]))
                                 .order_by(StorageMove.moved_at, StorageMove.id))) if rows else []
    user_ids = {lot.created_by_id, *(s.recorded_by_id for s in steps), *(d.recorded_by_id for d in deviations),
                *(u.recorded_by_id for u, _r in reagents), }
    users = {i: n for i, n in session.execute(select(User.id, User.full_name).where(User.id.in_(user_ids)))}
    passages = [s for s in steps if s.kind == "passage"]
    next_states = {role: LOT.allowed_targets(lot.status, {role}) for role in set(roles)}
    gate, gate_reasons = gate_and_reasons(session, lot)  # one judgement of the donor for the whole page
    missing = missing_reagent_types(product, {r.reagent_type for _u, r in reagents}, [row.bag for row in rows])
    return LotRecord(lot, donor, product, gate, gate_reasons, steps, deviations, reagents, rows,
                     move_rows(session, moves),
                     lookbacks_of(session, donor.id), build_plot(passages, product), users, next_states, missing)
