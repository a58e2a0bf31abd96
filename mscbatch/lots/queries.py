"""Reading lots, bags and storage: configuration, the lot list, the lot record page, box occupancy, and the
bag queries the patient / allocation capability (issue 6) builds on."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from typing import Any

from sqlalchemy import String, and_, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement

from mscbatch.core.bounds import filter_day, keyset
from mscbatch.core.site_config import Product, ProductCatalogue, load_products
from mscbatch.core.states import BagStatus, effective_bag_status
from mscbatch.database import SQLITE_IDENTITY_FOLD, SQLITE_LETTERS_AND_DIGITS, utcnow
from mscbatch.donors.models import Donor
from mscbatch.errors import NotFound, ValidationFailed
from mscbatch.lots.models import LOT_STATUSES, Bag, Deviation, Lot, ReagentLot, ReagentUse, StorageLocation
from mscbatch.paths import config_dir
from mscbatch.site import site_config

PAGE_SIZE = 25


@cache
def product_catalogue() -> ProductCatalogue:
    return load_products(config_dir() / "products.toml")


def product_of(lot: Lot) -> Product:
    try:
        return product_catalogue().get(lot.product_id)
    except KeyError:
        raise NotFound(f"Lot {lot.lot_number} is of product {lot.product_id!r}, no longer in products.toml.") from None


def get_deviation(session: Session, deviation_id: int) -> Deviation:
    deviation = session.get(Deviation, deviation_id)
    if deviation is None:
        raise NotFound(f"No deviation with id {deviation_id}.")
    return deviation


def get_lot(session: Session, lot_id: int) -> Lot:
    lot = session.get(Lot, lot_id)
    if lot is None:
        raise NotFound(f"No lot with id {lot_id}.")
    return lot


def get_bag(session: Session, bag_id: int) -> Bag:
    bag = session.get(Bag, bag_id)
    if bag is None:
        raise NotFound(f"No bag with id {bag_id}.")
    return bag


def get_location(session: Session, location_id: int) -> StorageLocation:
    location = session.get(StorageLocation, location_id)
    if location is None:
        raise NotFound(f"No storage location with id {location_id}.")
    return location


def bags_of(session: Session, lot_id: int) -> list[Bag]:
    return list(session.scalars(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number)))


def bag_status(bag: Bag, lot: Lot) -> BagStatus:
    """The bag's effective status: its lot's disposition first, then its own custody (core.states). A bag frozen
    but never put in a box is not in stock yet: its position is what tells the unit where to find it."""
    return effective_bag_status(lot.status, bag.status, placed=bag.box_id is not None)


def available_bags(session: Session, *, product_id: str | None = None, donor_id: int | None = None,
                   at: datetime | None = None) -> list[tuple[Bag, Lot]]:
    """Bags that may be allocated to a patient now: lot released (or conditionally released) with no test failed
    since (an open late OOS), its donor still approved (not reopened by new information), bag in stock ("stored":
    not allocated, dispatched..., and placed in a box position: a bag frozen but never placed is nowhere the
    unit could fetch it from), under no active recall hold, and not expired at `at` (default now). A hold set
    while the lot was in quarantine must survive its later release."""
    # recall and release build on lots: imported here, not at module level
    from mscbatch.donors.models import Donor
    from mscbatch.recall.models import BagHold
    from mscbatch.release.queries import has_late_oos

    at = at or utcnow()
    active_hold = select(BagHold.id).where(BagHold.bag_id == Bag.id, BagHold.lifted_at.is_(None)).exists()
    query = (select(Bag, Lot).join(Lot, Lot.id == Bag.lot_id).join(Donor, Donor.id == Lot.donor_id)
             .where(Lot.status.in_(("released", "conditional_release")), Bag.status == "stored",
                    Bag.box_id.is_not(None), Bag.expires_at > at,
                    ~active_hold, Donor.status == "approved", ~has_late_oos(Lot.id)))
    if product_id:
        query = query.where(Lot.product_id == product_id)
    if donor_id:
        query = query.where(Lot.donor_id == donor_id)
    return [(bag, lot) for bag, lot in session.execute(query.order_by(Bag.expires_at, Bag.id))]


def lots_of_donor(session: Session, donor_id: int) -> list[Lot]:
    return list(session.scalars(select(Lot).where(Lot.donor_id == donor_id).order_by(Lot.id.desc())))


class identity_key(FunctionElement[str]):  # noqa: N801  (used as a SQL function: identity_key(ReagentLot.supplier))
    """A supplier name or supplier lot number as the supplier means it: capitals and spaces do not count
    ("DemoBio" = "DEMOBIO", "AM 2291" = "am2291", "Lönza" = "LÖNZA"). A SQL expression, so that both sides of a
    comparison are folded by the same database: PostgreSQL's lower(), which folds every alphabet; on SQLite, whose
    lower() folds ASCII only, core.text.identity_fold registered on each connection (database._configure_sqlite)."""

    type = String()
    name = "identity_key"
    inherit_cache = True


@compiles(identity_key, "postgresql")
def _identity_key_postgresql(element: identity_key, compiler: Any, **kw: Any) -> str:
    return f"lower(replace({compiler.process(element.clauses, **kw)}, ' ', ''))"


@compiles(identity_key)
def _identity_key_sqlite(element: identity_key, compiler: Any, **kw: Any) -> str:
    return f"{SQLITE_IDENTITY_FOLD}({compiler.process(element.clauses, **kw)})"


#: how a recall compares a supplier or lot number (recall_key), in the refusals that say how a reagent lot is found
NOT_COUNTED_WORDS = "only letters and digits count: capitals, spaces and marks such as - / . are left out"


class recall_key(FunctionElement[str]):  # noqa: N801  (used as a SQL function: recall_key(ReagentLot.lot_number))
    """A supplier name or lot number as a recall searches for it: lower case, only its letters and digits, so that
    "FBS/0099", "fbs 0099" and "FBS – 0099" (a notice copied from a PDF) find FBS-0099. Wider than identity_key on
    purpose: a recall that covers a row too many lists it on its page for QA to see, while one that misses a row
    leaves a recalled reagent in use. Registration keeps identity_key (two numbers that differ only by a dash are
    not refused as one). One function call on each side, by the database itself: PostgreSQL's regexp_replace, on
    SQLite core.text.letters_and_digits registered on each connection (database._configure_sqlite); nested
    replace() calls, one per mark, overflowed SQLite's parser stack inside the lock queries."""

    type = String()
    name = "recall_key"
    inherit_cache = True


@compiles(recall_key, "postgresql")
def _recall_key_postgresql(element: recall_key, compiler: Any, **kw: Any) -> str:
    return f"regexp_replace(lower({compiler.process(element.clauses, **kw)}), '[^[:alnum:]]', '', 'g')"


@compiles(recall_key)
def _recall_key_sqlite(element: recall_key, compiler: Any, **kw: Any) -> str:
    return f"{SQLITE_LETTERS_AND_DIGITS}({compiler.process(element.clauses, **kw)})"


def same_supplier_lot(reagent_lot_ids: Any) -> Any:
    """The ids of every reagent_lot row that is the same supplier lot (supplier and lot number as a recall folds
    them, recall_key; whatever the type) as one of `reagent_lot_ids` (ids or a select of ids). A supplier lot may
    have been registered twice before registration refused it (reagents.register_reagent_lot), or under spellings
    registration tells apart ("FBS-0099", "FBS/0099"): a recall of one row covers them all."""
    other = aliased(ReagentLot)
    return (select(ReagentLot.id).join(other, and_(recall_key(ReagentLot.supplier) == recall_key(other.supplier),
                                                   recall_key(ReagentLot.lot_number) == recall_key(other.lot_number)))
            .where(other.id.in_(reagent_lot_ids)))


def lots_using_reagent(session: Session, reagent_lot_id: int) -> list[tuple[ReagentUse, Lot]]:
    """Every cell lot that used a reagent lot, under any row registered for the same supplier lot (a reagent
    recall starts here)."""
    return [(use, lot) for use, lot in session.execute(
        select(ReagentUse, Lot).join(Lot, Lot.id == ReagentUse.lot_id)
        .where(ReagentUse.reagent_lot_id.in_(same_supplier_lot([reagent_lot_id])))
        .order_by(Lot.id.desc(), ReagentUse.id))]


def reagent_lots(session: Session) -> list[ReagentLot]:
    return list(session.scalars(select(ReagentLot).order_by(ReagentLot.reagent_type, ReagentLot.expiry_date.desc())))


@dataclass(frozen=True)
class LotFilters:
    status: str = ""
    product_id: str = ""
    donor_code: str = ""
    collected_from: date | None = None
    collected_to: date | None = None


def lot_filter_errors(session: Session, status: str, product_id: str, collected_from: date | None,
                      collected_to: date | None) -> dict[str, str]:
    """What the lot list cannot filter by, each under its query parameter: a status or product the list has no
    such value for, or a span whose end is before its start. A filter ignored silently listed every lot. A product
    taken out of products.toml is still a product of the lots made of it (one index probe, only for such an id):
    a search for them, a recall's among them, must still find them."""
    errors: dict[str, str] = {}
    if status and status not in LOT_STATUSES:
        errors["status"] = (f"Status: {status!r} is not a lot status: choose one of "
                            f"{', '.join(s.replace('_', ' ') for s in LOT_STATUSES)}, or all statuses.")
    if product_id and product_id not in product_catalogue().ids and session.scalar(
            select(Lot.id).where(Lot.product_id == product_id).limit(1)) is None:
        errors["product"] = (f"Product: {product_id!r} is not a product of this unit: choose one of "
                             f"{', '.join(product_catalogue().ids)}, or all products.")
    if collected_from and collected_to and collected_to < collected_from:
        errors["to"] = (f"Collected to ({collected_to}) is before Collected from ({collected_from}): it must be "
                        "the same day or a later one.")
    return errors


@dataclass(frozen=True)
class LotPage:
    lots: list[tuple[Lot, str]]  # (lot, donor code)
    next_before: int | None  # keyset: the id to pass as `before` for the next (older) page


def list_lots(session: Session, filters: LotFilters, *, before: int | None = None,
              per_page: int = PAGE_SIZE) -> LotPage:
    """Lots newest first, filtered; keyset pagination on id (stays fast at 100 000 lots: the composite
    indexes (status, id), (product_id, id), (donor_id, id) serve each filter without sorting)."""
    query = select(Lot, Donor.code).join(Donor, Donor.id == Lot.donor_id)
    if filters.status:
        query = query.where(Lot.status == filters.status)
    if filters.product_id:
        query = query.where(Lot.product_id == filters.product_id)
    if filters.donor_code:
        donor_id = session.scalar(select(Donor.id).where(Donor.code == filters.donor_code.strip().upper()))
        query = query.where(Lot.donor_id == (donor_id or -1))
    tz = site_config().tz
    collected_from, collected_to, before = (filter_day(filters.collected_from), filter_day(filters.collected_to),
                                            keyset(before))
    if collected_from:
        query = query.where(Lot.collection_at >= datetime.combine(collected_from, time(), tz))
    if collected_to:
        query = query.where(Lot.collection_at < datetime.combine(collected_to, time.max, tz))
    if before:
        query = query.where(Lot.id < before)
    rows = [(lot, code) for lot, code in session.execute(query.order_by(Lot.id.desc()).limit(per_page + 1))]
    more = len(rows) > per_page
    rows = rows[:per_page]
    known_gates(session, [lot for lot, _code in rows])
    return LotPage(rows, rows[-1][0].id if more and rows else None)


def known_gates(session: Session, lots: list[Lot]) -> None:
    """Give each lot of a list its donor gate now (Lot.gate_now) without judging every donor again (about 2 ms a
    lot): a lot started with the gate "approved", from a donor still approved under the very decision in force
    when the lot was created, judged by the same rule file, has the gate it had. Under a signed decision the
    donor's results and answers are locked, and a new result or a reopening supersedes the decision. Every other
    lot (started pending, donor not approved, a later decision, a changed rule file) is judged in full."""
    from mscbatch.donors.models import APPROVED, EligibilityDecision
    from mscbatch.donors.queries import rule_sets

    unchanged = [lot for lot in lots if lot.donor_gate == "approved"]
    if not unchanged:
        return
    in_force: dict[int, Any] = {}
    for row in session.execute(
            select(EligibilityDecision.id, EligibilityDecision.donor_id, EligibilityDecision.meaning,
                   EligibilityDecision.judged_at, EligibilityDecision.ruleset_id, EligibilityDecision.ruleset_sha256,
                   Donor.status, Donor.rule_set_id)
            .join(Donor, Donor.id == EligibilityDecision.donor_id)
            .where(EligibilityDecision.donor_id.in_({lot.donor_id for lot in unchanged}),
                   EligibilityDecision.superseded_at.is_(None))):
        if row.donor_id not in in_force or row.id > in_force[row.donor_id].id:  # current_decision: the newest
            in_force[row.donor_id] = row
    rules = rule_sets()
    for lot in unchanged:
        decision = in_force.get(lot.donor_id)
        rule_file = rules.get(decision.rule_set_id) if decision is not None else None
        if (decision is not None and decision.meaning == APPROVED and decision.status == "approved"
                and decision.judged_at <= lot.created_at and rule_file is not None
                and (decision.ruleset_id, decision.ruleset_sha256) == (rule_file.id, rule_file.sha256)):
            lot.known_gate_now = "approved"


def location_path(session: Session, location: StorageLocation | None) -> list[StorageLocation]:
    """Site first, the location itself last."""
    path: list[StorageLocation] = []
    while location is not None:
        path.insert(0, location)
        location = session.get(StorageLocation, location.parent_id) if location.parent_id else None
    return path


def container_temperature(session: Session, location: StorageLocation) -> Any:
    """The storage temperature of the freezer or tank holding this location (None above them)."""
    for node in reversed(location_path(session, location)):
        if node.temperature_max_c is not None:
            return node.temperature_max_c
    return None


def position_label(location: StorageLocation, position: int | None) -> str:
    """Position n of a box of R rows x C columns, as printed on the box: row letter + column ("B3")."""
    if position is None or not location.columns:
        return "—"
    row, column = divmod(position - 1, location.columns)
    return f"{chr(ord('A') + row)}{column + 1}"


def storage_tree(session: Session) -> list[tuple[StorageLocation, int, int]]:
    """Every location depth-first with its depth and, for boxes, the number of bags in it."""
    locations = list(session.scalars(select(StorageLocation).order_by(StorageLocation.name)))
    occupied: dict[int, int] = {}
    for box_id in session.scalars(select(Bag.box_id).where(Bag.box_id.is_not(None))):
        occupied[box_id] = occupied.get(box_id, 0) + 1
    children: dict[int | None, list[StorageLocation]] = {}
    for location in locations:
        children.setdefault(location.parent_id, []).append(location)
    ordered: list[tuple[StorageLocation, int, int]] = []

    def walk(parent: int | None, depth: int) -> None:
        for child in children.get(parent, []):
            ordered.append((child, depth, occupied.get(child.id, 0)))
            walk(child.id, depth + 1)

    walk(None, 0)
    return ordered


def storage_paths(session: Session) -> dict[int, list[StorageLocation]]:
    """Every location's path (site first, the location itself last), as location_path gives it, from one read of
    the whole storage tree: the lot page's box picker walked each box up to its site, one query per node (about
    1 000 queries for 100 boxes)."""
    nodes = {node.id: node for node in session.scalars(select(StorageLocation).order_by(StorageLocation.id))}
    paths: dict[int, list[StorageLocation]] = {}

    def path_of(node: StorageLocation) -> list[StorageLocation]:
        if node.id not in paths:
            parent = nodes.get(node.parent_id) if node.parent_id else None
            paths[node.id] = (path_of(parent) if parent is not None else []) + [node]
        return paths[node.id]

    for node in nodes.values():
        path_of(node)
    return paths


def box_paths(session: Session, paths: dict[int, list[StorageLocation]] | None = None,
              ) -> list[tuple[StorageLocation, list[StorageLocation]]]:
    """Every box (in id order) with its path, site first: one query, whatever the number of boxes.
    `paths`: storage_paths already read for the same page."""
    paths = storage_paths(session) if paths is None else paths
    return [(paths[box_id][-1], paths[box_id]) for box_id in sorted(paths) if paths[box_id][-1].kind == "box"]


#: a bag's custody states in which it is outside the unit while its box position is kept for it (custody.services
#: frees the position only when the bag is infused or discarded: until then it may come back)
OUT_OF_UNIT = ("dispatched", "received", "thawed")


@dataclass(frozen=True)
class BoxCell:
    """One position of a box. For a bag: its effective status (core.states, the lot page's words), the recall that
    holds it or recalled its lot, the patient it is allocated to, and, for a bag out on the ward with its position
    kept, where it was sent and when."""

    position: int
    label: str
    bag: Bag | None
    lot: Lot | None
    status: BagStatus | None = None
    recall_id: int | None = None
    patient_code: str | None = None
    ward: str | None = None
    dispatched_at: datetime | None = None

    @property
    def out_of_unit(self) -> bool:
        """The record keeps the bag's position, but the bag is not in the box: on its way to or on the ward."""
        return self.bag is not None and self.bag.status in OUT_OF_UNIT

    @property
    def tone(self) -> str:
        """The colour family of the cell, always said in words too: out (not in the box), stop (recalled,
        rejected, expired, discarded), hold (quarantine, on hold, returned, not usable), allocated, ok (in stock)."""
        if self.status is None:
            return ""
        if self.out_of_unit:
            return "out"
        if self.status.status in ("recalled", "rejected", "expired", "discarded"):
            return "stop"
        if not self.status.usable:
            return "hold"
        return "allocated" if self.status.status == "allocated" else "ok"


def box_grid(session: Session, box: StorageLocation) -> list[list[BoxCell]]:
    """The box as rows of cells, each with the bag it holds (if any) and what that bag is now, read in one
    statement whatever the number of bags: its lot's status, an active recall hold (and the recall's number), the
    patient of its standing allocation (and their ward) and its latest dispatch."""
    # recall, patients and custody build on lots: imported here, not at module level
    from mscbatch.custody.models import CustodyEvent
    from mscbatch.patients.models import Allocation, Patient
    from mscbatch.recall.models import BagHold

    active_hold = (select(func.min(BagHold.recall_id)).where(BagHold.bag_id == Bag.id, BagHold.lifted_at.is_(None))
                   .correlate(Bag).scalar_subquery())
    any_hold = select(func.max(BagHold.recall_id)).where(BagHold.bag_id == Bag.id).correlate(Bag).scalar_subquery()
    dispatched = (select(func.max(CustodyEvent.occurred_at))
                  .where(CustodyEvent.bag_id == Bag.id, CustodyEvent.kind == "dispatched")
                  .correlate(Bag).scalar_subquery())
    held: dict[int | None, BoxCell] = {}
    for bag, lot, hold_recall, last_recall, patient_code, ward, dispatched_at in session.execute(
            select(Bag, Lot, active_hold, any_hold, Patient.code, Patient.ward, dispatched)
            .join(Lot, Lot.id == Bag.lot_id)
            .outerjoin(Allocation, Allocation.active_bag_id == Bag.id)  # at most one: active_bag_id is unique
            .outerjoin(Patient, Patient.id == Allocation.patient_id)
            .where(Bag.box_id == box.id)):
        status = (effective_bag_status(lot.status, bag.status, on_hold=True, placed=True)
                  if hold_recall is not None else bag_status(bag, lot))
        held[bag.position] = BoxCell(bag.position or 0, position_label(box, bag.position), bag, lot, status,
                                     hold_recall if hold_recall is not None
                                     else last_recall if lot.status == "recalled" else None, patient_code, ward,
                                     dispatched_at if bag.status in OUT_OF_UNIT else None)
    grid = []
    for row in range(box.rows or 0):
        cells = []
        for column in range(box.columns or 0):
            position = row * (box.columns or 0) + column + 1
            cells.append(held.get(position) or BoxCell(position, position_label(box, position), None, None))
        grid.append(cells)
    return grid


def parse_position(location: StorageLocation, text: str) -> int | None:
    """"B3" (row letter + column) or a plain number -> position number; None if outside the box.

    Plain ASCII only, refused naming the field otherwise: str.isdigit() is true for "²" (int() of it raised, a 500)
    and for other scripts' digits ("١" was stored as position 1, "B３" as B3), and a position is printed and read
    back by people, who must find the bag where the record says, with the digits they know."""
    text = (text or "").strip()
    if not text.isascii():
        raise ValidationFailed(f"Box position: type it with plain digits and letters, like B3 or 14 (not {text!r}).",
                               field="position")
    text = text.upper()
    if text.isdigit():
        number = int(text)
    elif len(text) >= 2 and text[0].isalpha() and text[1:].isdigit() and location.columns:
        row, column = ord(text[0]) - ord("A"), int(text[1:])
        if not (0 <= row < (location.rows or 0) and 1 <= column <= location.columns):
            return None
        number = row * location.columns + column
    else:
        return None
    return number if 1 <= number <= (location.capacity or 0) else None


@dataclass(frozen=True)
class MoveRow:
    """A storage move told in words: which bag (DIN, n of N), from where to where, who, when, why."""

    move: Any
    bag: Bag
    from_label: str
    to_label: str
    by: str


def move_rows(session: Session, moves: list[Any]) -> list[MoveRow]:
    from mscbatch.auth.models import User

    rows = []
    for move in moves:
        bag = get_bag(session, move.bag_id)
        source = session.get(StorageLocation, move.from_box_id) if move.from_box_id else None
        target = get_location(session, move.to_box_id)
        user = session.get(User, move.moved_by_id)
        rows.append(MoveRow(move, bag, f"{source.name} {position_label(source, move.from_position)}" if source else "",
                            f"{target.name} {position_label(target, move.to_position)}", user.full_name if user else "?"))
    return rows
