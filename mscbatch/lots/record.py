"""The lot page: everything the manufacturing record shows, and the cumulative PD / viability plot.

The plot is drawn on the server as inline SVG (no JavaScript, no CDN) from the same numbers as the data table
under it, so what a screen reader reads and what the eye sees cannot differ.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.core.culture import format_cells, harvest_bounds
from mscbatch.core.site_config import Product
from mscbatch.core.states import LOT, BagStatus, effective_bag_status
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
    move_rows,
    position_label,
    product_of,
    storage_paths,
)
from mscbatch.lots.reagent_rules import missing_reagent_types, requirement_words
from mscbatch.lots.services import gate_and_reasons
from mscbatch.lots.steps import steps_of

if TYPE_CHECKING:  # record_corrections reads this module's _history: imported for the type only
    from mscbatch.lots.record_corrections import RecordCorrection

PLOT_WIDTH, PLOT_HEIGHT, MARGIN = 560, 400, 48
#: two panels, one above the other, each series on its own axis with its own lines (session 42): on one frame with
#: two axes the viability (95 % on the right axis) was drawn on the PD limit line (25 on the left) and read
#: against it. Viability on top (0-100 %), cumulative PD below, its axis at the foot of the figure (pixels)
VIABILITY_TOP, VIABILITY_BOTTOM, PD_TOP = MARGIN, 160, 222

#: the lot fields whose latest change the page names (who, when, why): the state, the harvest and the freezing
NAMED_FIELDS = {"status": "status", "harvest_total_cells": "harvest", "frozen_at": "frozen"}
#: what a correction changed, in the batch record's words
CORRECTED_FIELDS = {"harvested_at": "harvest time", "harvest_total_cells": "total cells",
                    "harvest_viability_percent": "viability %", "harvest_viable_cells": "viable cells",
                    "performed_on": "date", "seeded_cells": "cells seeded", "harvested_cells": "cells harvested",
                    "viability_percent": "viability %", "days_in_culture": "days in culture",
                    "reagent_lot_id": "reagent lot", "used_on": "date of use"}


CELL_FIELDS = frozenset({"harvest_total_cells", "harvest_viable_cells", "seeded_cells", "harvested_cells"})


@dataclass(frozen=True)
class Entry:
    """Who made a change of the record, when, and the reason they gave (from the audit trail)."""

    by: str
    at: Any
    reason: str


@dataclass(frozen=True)
class Correction:
    """A corrected harvest or passage: what it was, what it is, who, when and why."""

    what: str
    by: str
    at: Any
    reason: str
    changes: list[tuple[str, str, str]]  # (field in words, old, new)


@dataclass(frozen=True)
class ReagentLotFix:
    """A correction of a reagent lot this lot used (its name, supplier, lot number or expiry date): part of this
    record, which names that reagent lot. `correction.what` names it as it is registered now, with the steps it was
    used at; `reagent_lot_id` links to its page."""

    reagent_lot_id: int
    correction: RecordCorrection


@dataclass(frozen=True)
class BagRow:
    bag: Bag
    status: BagStatus
    location: str
    position: str
    box_id: int | None


@dataclass(frozen=True)
class ViabilityLimit:
    """The lowest viability the lot's release specification accepts (its "viability" test): `strict` means the
    value must be above it, not at it. No product sets a viability warning level (config/products.toml)."""

    minimum: Decimal
    strict: bool
    spec_title: str

    @property
    def words(self) -> str:
        return f"{'above' if self.strict else 'at least'} {self.minimum}\u00a0%"  # no line break before the %


@dataclass
class Plot:
    """Coordinates for the SVG: one point per passage for viability (upper panel) and cumulative PD (lower)."""

    pd_points: list[tuple[float, float, str, Decimal]] = field(default_factory=list)
    viability_points: list[tuple[float, float, str, Decimal]] = field(default_factory=list)
    pd_max: Decimal = Decimal(0)
    pd_limit_y: float | None = None
    pd_limit: Decimal | None = None
    #: each series against its own lines (session 42): PD against the product's PD warning and limit (lower panel),
    #: viability against the release specification's viability minimum (upper panel, 0-100 %)
    pd_warn: Decimal | None = None
    pd_warn_y: float | None = None
    viability_limit: ViabilityLimit | None = None
    viability_limit_y: float | None = None
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    pd_ticks: list[tuple[float, str]] = field(default_factory=list)
    viability_ticks: list[tuple[float, str]] = field(default_factory=list)
    width: int = PLOT_WIDTH
    height: int = PLOT_HEIGHT
    margin: int = MARGIN
    viability_top: int = VIABILITY_TOP
    viability_bottom: int = VIABILITY_BOTTOM
    pd_top: int = PD_TOP

    def polyline(self, points: list[tuple[float, float, str, Decimal]]) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _label, _value in points)


def build_plot(passages: list[ProcessStep], product: Product,
               viability_limit: ViabilityLimit | None = None) -> Plot:
    plot = Plot()
    if not passages:
        return plot
    limit = product.culture_limits.max_cumulative_pd
    values = [Decimal(s.cumulative_pd or 0) for s in passages]
    top = max([*values, limit]) * Decimal("1.1")
    # a cumulative PD below 0 (stored by a version that summed negative PDs, before core.culture counted a loss as
    # 0: fewer cells harvested than seeded, as at a marrow P0 where only some of the cells seeded adhere) is drawn
    # on the axis, not below its 0 and out of the figure
    bottom = min([*values, Decimal(0)]) * Decimal("1.1")
    inner_w = PLOT_WIDTH - 2 * MARGIN
    step = inner_w / max(1, len(passages) - 1) if len(passages) > 1 else 0
    pd_bottom = PLOT_HEIGHT - MARGIN

    def y_for(value: Decimal, scale: Decimal, low: Decimal = Decimal(0)) -> float:
        """A cumulative PD in the lower panel."""
        return float(pd_bottom - (pd_bottom - PD_TOP) * ((value - low) / (scale - low)))

    def y_viability(percent: Decimal) -> float:
        """A viability (0-100 %) in the upper panel."""
        return float(VIABILITY_BOTTOM - (VIABILITY_BOTTOM - VIABILITY_TOP) * (percent / 100))

    for index, s in enumerate(passages):
        x = MARGIN + (index * step if len(passages) > 1 else inner_w / 2)
        plot.x_ticks.append((x, s.label))
        plot.pd_points.append((x, y_for(values[index], top, bottom), s.label, s.cumulative_pd or Decimal(0)))
        if s.viability_percent is not None:
            plot.viability_points.append((x, y_viability(s.viability_percent), s.label, s.viability_percent))
    plot.pd_max, plot.pd_limit = top, limit
    plot.pd_limit_y = y_for(limit, top, bottom)
    warn = product.culture_limits.warn_cumulative_pd
    if warn is not None:
        plot.pd_warn, plot.pd_warn_y = warn, y_for(warn, top, bottom)
    if viability_limit is not None:
        plot.viability_limit = viability_limit
        plot.viability_limit_y = y_viability(viability_limit.minimum)
    ticks = [bottom + (top - bottom) * k / 4 for k in range(5)]
    plot.pd_ticks = [(y_for(tick, top, bottom), f"{tick:.0f}".replace("-0", "0") if abs(tick) < 1 else f"{tick:.0f}")
                     for tick in ticks]
    plot.viability_ticks = [(y_viability(Decimal(v)), f"{v}%") for v in (0, 50, 100)]
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
    #: "status", "harvest", "frozen" -> who made the latest change, when, why
    history: dict[str, Entry] = field(default_factory=dict)
    corrections: list[Correction] = field(default_factory=list)
    #: deviations recorded after the lot's first release signature: no release signature weighed them
    late_deviations: set[int] = field(default_factory=set)
    #: the corrections of the reagent lots used, oldest first (listed among the record's corrections on QA's
    #: release review, the certificate and the trace PDF: lots.record_corrections)
    reagent_lot_corrections: list[ReagentLotFix] = field(default_factory=list)

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


def lot_record(session: Session, lot_id: int, roles: Any = (),
               paths: dict[int, list[StorageLocation]] | None = None) -> LotRecord:
    """The lot page's record. `paths`: queries.storage_paths already read for the page (else read here, once, when
    a bag is placed): each bag's box is named from it, not walked up to its site bag by bag."""
    lot = get_lot(session, lot_id)
    donor = session.get(Donor, lot.donor_id)
    assert donor is not None
    product = product_of(lot)
    steps = steps_of(session, lot.id)
    deviations = list(session.scalars(select(Deviation).where(Deviation.lot_id == lot.id).order_by(Deviation.id)))
    reagents = [(u, r) for u, r in session.execute(
        select(ReagentUse, ReagentLot).join(ReagentLot, ReagentLot.id == ReagentUse.reagent_lot_id)
        .where(ReagentUse.lot_id == lot.id).order_by(ReagentUse.used_on, ReagentUse.id))]
    # recall builds on lots: imported here, not at module level
    from mscbatch.recall.queries import held_bag_ids
    rows = []
    bags = bags_of(session, lot.id)
    held = held_bag_ids(session, [bag.id for bag in bags])  # a held bag said "stored" here, "on hold" everywhere else
    if paths is None and any(bag.box_id for bag in bags):
        paths = storage_paths(session)
    for bag in bags:
        path = paths[bag.box_id] if paths is not None and bag.box_id else []
        box = path[-1] if path else None
        where = (" / ".join(n.name for n in path) if box else
                 "left storage" if bag.status in ("dispatched", "received", "thawed", "infused", "discarded")
                 else "not placed yet")
        status = (effective_bag_status(lot.status, bag.status, on_hold=True, placed=bag.box_id is not None)
                  if bag.id in held else bag_status(bag, lot))
        rows.append(BagRow(bag, status, where, position_label(box, bag.position) if box else "—",
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
    history, corrections = _history(session, lot, steps, [u for u, _r in reagents])
    first_release = _first_release(session, lot.id) if deviations else None
    late = {d.id for d in deviations if first_release is not None and d.recorded_at > first_release}
    return LotRecord(lot, donor, product, gate, gate_reasons, steps, deviations, reagents, rows,
                     move_rows(session, moves),
                     lookbacks_of(session, donor.id), build_plot(passages, product, _viability_limit(session, lot)),
                     users, next_states, missing,
                     history, corrections, late, _reagent_lot_fixes(session, [u for u, _r in reagents]))


def _reagent_lot_fixes(session: Session, uses: list[ReagentUse]) -> list[ReagentLotFix]:
    """The corrections of each reagent lot the uses name, as QA's release review reads them, each with the id its
    link needs, oldest first."""
    # record_corrections builds on this module (_history): imported here, not at module level
    from mscbatch.lots.record_corrections import reagent_lot_record_corrections_by_lot

    fixes = [ReagentLotFix(reagent_lot_id, fix)
             for reagent_lot_id, fix in reagent_lot_record_corrections_by_lot(session, uses)]
    return sorted(fixes, key=lambda f: f.correction.at)


def _viability_limit(session: Session, lot: Lot) -> ViabilityLimit | None:
    """The viability minimum of the specification the lot is judged against, for the plot; none when the
    specification has no viability test or cannot be used (the release pages say why, not the lot page)."""
    # release builds on lots: imported here, not at module level
    from mscbatch.errors import DomainError
    from mscbatch.release.specs import spec_of_lot

    try:
        spec = spec_of_lot(session, lot)
    except DomainError:
        return None
    test = next((t for t in spec.tests if t.id == "viability" and t.min is not None), None)
    if test is None or test.min is None:
        return None
    return ViabilityLimit(Decimal(test.min), test.strict, spec.title)


def _shown(name: str, value: str | None, reagent_words: dict[int, str] | None = None) -> str:
    """An audited value as the page shows it: cell counts as 120 x10^6, like every count of the lot page; a
    reagent lot by its name, supplier and lot number."""
    if value is None or value == "":
        return "—"
    if name == "reagent_lot_id" and value.isdigit():
        return (reagent_words or {}).get(int(value), f"reagent lot #{value}")
    if name in CELL_FIELDS and value.isdigit():
        return f"{format_cells(int(value))} cells"
    return value


def _first_release(session: Session, lot_id: int) -> Any:
    """QA's first release signature of the lot (conditional, full or exceptional), None before any."""
    # release builds on lots: imported here, not at module level
    from mscbatch.release.models import LotDisposition
    from mscbatch.release.queries import RELEASED_KINDS

    return session.scalar(select(func.min(LotDisposition.signed_at)).where(
        LotDisposition.lot_id == lot_id, LotDisposition.signed_at.is_not(None),
        LotDisposition.kind.in_(RELEASED_KINDS)))


def _history(session: Session, lot: Lot, steps: list[ProcessStep],
             uses: list[ReagentUse]) -> tuple[dict[str, Entry], list[Correction]]:
    """Read off the audit trail of the lot, its steps and its reagent uses (indexed by entity): the latest state
    change, harvest and freezing with who and why, and every correction with its old and new values."""
    labels = {str(s.id): s.label for s in steps}
    stages = {str(u.id): u.stage for u in uses}
    events = session.scalars(select(AuditEvent).where(or_(
        and_(AuditEvent.entity_type == "lot", AuditEvent.entity_id == str(lot.id)),
        and_(AuditEvent.entity_type == ProcessStep.__tablename__, AuditEvent.entity_id.in_(list(labels))),
        and_(AuditEvent.entity_type == ReagentUse.__tablename__, AuditEvent.entity_id.in_(list(stages)))))
        .order_by(AuditEvent.seq))
    events = list(events)
    reagent_ids = {int(v) for e in events if e.field == "reagent_lot_id"
                   for v in (e.old_value, e.new_value) if v and v.isdigit()}
    reagent_words = {r.id: f"{r.name}, {r.supplier} lot {r.lot_number}" for r in session.scalars(
        select(ReagentLot).where(ReagentLot.id.in_(reagent_ids)))} if reagent_ids else {}
    # printed names, as everywhere on the page (the trail keeps the user name the actor had)
    names = {i: n for i, n in session.execute(select(User.id, User.full_name).where(
        User.id.in_({e.actor_id for e in events if e.actor_id is not None})))}
    history: dict[str, Entry] = {}
    grouped: dict[tuple[str, str | None, str], Correction] = {}
    for event in events:
        event_by = names.get(event.actor_id, event.actor_name) if event.actor_id is not None else event.actor_name
        if event.entity_type == "lot" and event.field in NAMED_FIELDS:
            entry = Entry(event_by, event.occurred_at, event.reason or "")
            if event.field == "status":  # the state the lot is in now: its latest change
                history["status"] = entry
            else:  # who recorded the harvest / freezing (a later correction is listed as such)
                history.setdefault(NAMED_FIELDS[event.field], entry)
        if event.field in CORRECTED_FIELDS and event.action != "insert" and " corrected: " in f" {event.reason or ''}":
            what = ("Harvest" if event.entity_type == "lot" else
                    f"Reagent use at {stages.get(event.entity_id or '', '?')}"
                    if event.entity_type == ReagentUse.__tablename__ else
                    f"Passage {labels.get(event.entity_id or '', '?')}")
            key = (f"{event.entity_type}/{event.entity_id}", event.reason, event.occurred_at.isoformat())
            entry = grouped.setdefault(key, Correction(what, event_by, event.occurred_at,
                                                       (event.reason or "").split(" corrected: ", 1)[-1], []))
            entry.changes.append((CORRECTED_FIELDS[event.field], _shown(event.field, event.old_value, reagent_words),
                                  _shown(event.field, event.new_value, reagent_words)))
    return history, list(grouped.values())
