"""Storage: the tree site / freezer or tank / rack / box, and placing and moving bags (DOMAIN.md 4 and 8).

- One bag per position: the service says which bag holds the position; the unique constraint
  bag(box_id, position) refuses a double placement even from two concurrent requests.
- A bag goes only into a container at least as cold as its product needs (the stricter of the site SOP and
  the product's limit: vapour-phase nitrogen, <= -135 C or <= -150 C).
- The bag row is locked before its status is checked (custody.services.lock_bag): on PostgreSQL a discard
  committed between the check and the move would otherwise leave a discarded bag "moved" into a box.
- Every placement and move writes a StorageMove (from, to, who, when, why) besides the audit trail: the
  chain of custody shows where a bag has been.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.core.site_config import effective_storage_limit_c
from mscbatch.custody import log as custody_log
from mscbatch.custody.services import STATELESS_FROM, lock_bag
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.lots.models import STORAGE_KINDS, STORAGE_PARENTS, Bag, StorageLocation, StorageMove
from mscbatch.lots.problems import Problems
from mscbatch.lots.queries import (
    container_temperature,
    get_location,
    get_lot,
    position_label,
    product_of,
    site_config,
)
from mscbatch.lots.services import at_most_decimals, require_technician

#: the bag states in the unit's custody, where a bag can be placed or moved: those custody allows a "moved"
#: event from (an allocated bag stays allocated while it is moved, e.g. out of a failing tank)
MOVABLE_STATES = STATELESS_FROM["moved"]


def place_words(kind: str, name: str) -> str:
    """A storage place named with its kind once: "Box A1" for a box named "A1", and "Box B1" (not "Box Box B1")
    for a box whose name says Box already; "Nitrogen tank LN2 tank 1" stays as it is (its name does not begin
    with the kind's word)."""
    word = STORAGE_KINDS.get(kind, "")
    if not word or name.casefold().startswith(word.casefold()):
        return name
    return f"{word} {name}"


def box_words(box: StorageLocation) -> str:
    """A box as the refusals and pages name it: "Box B1", never "Box Box B1" or "box Box B1"."""
    return place_words("box", box.name)


#: the storage temperatures a freezer or tank may be given (°C): colder than a fridge, no colder than liquid nitrogen
TEMPERATURE_RANGE_C = (Decimal(-200), Decimal(-20))
#: a box's grid: rows are lettered A-Z (a position prints as "B3"), columns numbered
MAX_ROWS, MAX_COLUMNS = 26, 30
TEMPERATURE_MISSING = "Give the storage temperature (°C, e.g. -150)."


def grid_rule(label: str, most: int) -> str:
    """The rule of a box's rows or columns, "Rows: a whole number from 1 to 26." (the form says it too, for a
    value that is not a whole number)."""
    return f"{label}: a whole number from 1 to {most}."


def checked_temperature(temperature_max_c: Any) -> Decimal:
    """A freezer's or tank's temperature as its column keeps it; refused saying what is wrong with it."""
    if temperature_max_c is None or temperature_max_c == "":
        raise ValidationFailed(TEMPERATURE_MISSING, field="temperature_max_c")
    if not isinstance(temperature_max_c, Decimal) or not temperature_max_c.is_finite():
        raise ValidationFailed(f"Storage temperature: {str(temperature_max_c)[:40]!r} is not a number.",
                               field="temperature_max_c")
    low, high = TEMPERATURE_RANGE_C
    if not low <= temperature_max_c <= high:
        raise ValidationFailed(f"Storage temperature: must be between {low} and {high} °C "
                               f"({temperature_max_c} °C was typed).", field="temperature_max_c")
    # the column keeps 1 decimal: -149.96 °C was stored as -150.0, and the tank then took bags that must be
    # kept at -150 °C or colder
    return at_most_decimals(temperature_max_c, 1, "temperature_max_c", "Storage temperature:", "-135.5 °C")


def checked_grid(rows: int | None, columns: int | None) -> tuple[int, int]:
    """A box's rows and columns; both problems said at once, each on its field."""
    problems = Problems()
    for field, label, value, most in (("rows", "Rows", rows, MAX_ROWS), ("columns", "Columns", columns, MAX_COLUMNS)):
        if value is None:
            problems.add(ValidationFailed(f"Give the {field} of the box: a whole number from 1 to {most}.",
                                          field=field))
        elif not 1 <= value <= most:
            problems.add(ValidationFailed(grid_rule(label, most), field=field))
    problems.raise_any()
    assert rows is not None and columns is not None
    return rows, columns


def checked_location(kind: str, name: str, temperature_max_c: Any = None, rows: int | None = None,
                     columns: int | None = None) -> tuple[str, Decimal | None, int | None, int | None]:
    """What a new location was given, checked without writing: (name, temperature, rows, columns), each kept only
    for the kinds that carry it. Every problem at once, each on its field."""
    problems = Problems()
    if kind not in STORAGE_KINDS:
        problems.add(ValidationFailed("Choose the kind of location.", field="kind"))
    name = (name or "").strip()
    if not name or len(name) > 80:
        problems.add(ValidationFailed("Give a name (at most 80 characters).", field="name"))
    temperature = problems.check(lambda: checked_temperature(temperature_max_c)) if kind in ("freezer", "tank") \
        else None
    grid = problems.check(lambda: checked_grid(rows, columns)) if kind == "box" else None
    problems.raise_any()
    return (name, temperature, *(grid or (None, None)))


def create_location(session: Session, actor: Any, *, kind: str, name: str, parent_id: int | None = None,
                    temperature_max_c: Decimal | None = None, rows: int | None = None,
                    columns: int | None = None) -> StorageLocation:
    """Add a node to the storage tree; freezers and tanks carry their temperature, boxes their grid."""
    require_technician(actor)
    name, temperature_max_c, rows, columns = checked_location(kind, name, temperature_max_c, rows, columns)
    with use_case(session, actor):
        parent = get_location(session, parent_id) if parent_id else None
        if (parent.kind if parent else None) not in STORAGE_PARENTS[kind]:
            if STORAGE_PARENTS[kind] == (None,):  # a site: "goes in a nothing" told no one what to change
                raise ValidationFailed(f"A {STORAGE_KINDS[kind].lower()} is the top level: it has no parent (leave "
                                       "parent_id out; on the page, Inside: top level).", field="parent_id")
            allowed = " or ".join(STORAGE_KINDS[k].lower() for k in STORAGE_PARENTS[kind] if k)
            raise ValidationFailed(f"A {STORAGE_KINDS[kind].lower()} goes in a {allowed}.", field="parent_id")
        taken = session.scalar(select(StorageLocation.id).where(
            StorageLocation.parent_id.is_(None) if parent is None else StorageLocation.parent_id == parent.id,
            StorageLocation.name == name))
        if taken:
            raise Conflict(f"There is already a location named {name} here.", field="name")
        location = StorageLocation(kind=kind, name=name, parent_id=parent.id if parent else None,
                                   temperature_max_c=temperature_max_c, rows=rows, columns=columns,
                                   created_by_id=actor.id)
        session.add(location)
    return location


def box_storage(session: Session, box: StorageLocation, lot: Any) -> tuple[Decimal | None, Decimal]:
    """(the storage temperature of the freezer or tank holding the box, None outside one; the temperature the lot's
    product must be kept at or below: the stricter of the site SOP and the product)."""
    return container_temperature(session, box), storage_limit(lot)


def storage_limit(lot: Any) -> Decimal:
    """The temperature the lot's product must be kept at or below: the stricter of the site SOP and the product."""
    return effective_storage_limit_c(site_config(), product_of(lot))


def path_temperature(path: list[StorageLocation]) -> Decimal | None:
    """container_temperature from a path already read (site first, the place last): the nearest freezer's or
    tank's temperature, None above them."""
    return next((node.temperature_max_c for node in reversed(path) if node.temperature_max_c is not None), None)


def too_warm(temperature: Decimal | None, limit: Decimal) -> bool:
    """The one rule of a bag's place (store_bag refuses it; the lot page's Store form marks such boxes and does not
    offer them): a box outside a freezer or tank, or in one set warmer than the product's limit."""
    return temperature is None or temperature > limit


def store_bag(session: Session, actor: Any, bag_id: int, box_id: int, position: int, reason: str = "") -> StorageMove:
    """Place a bag in a box position, or move it there (a move needs a reason)."""
    require_technician(actor)
    reason = (reason or "").strip()
    with use_case(session, actor, reason or "placed in storage"):
        # locked and read afresh: a discard or dispatch at the same moment waits, then this sees its status
        bag = lock_bag(session, bag_id)
        box = get_location(session, box_id)
        lot = get_lot(session, bag.lot_id)
        if box.kind != "box" or not box.capacity:
            raise ValidationFailed("Bags are stored in a box position.", field="box_id")
        if not 1 <= position <= box.capacity:
            raise ValidationFailed(f"{box_words(box)} has positions 1 to {box.capacity}.", field="position")
        label = position_label(box, position)
        if bag.status not in MOVABLE_STATES:
            raise Conflict(f"Bag {din_shown(bag)} is {bag.status.replace('_', ' ')}: it is not in the unit's custody.")
        if bag.box_id is not None and not reason:
            raise ValidationFailed("The bag is already stored: give the reason for the move.", field="reason")
        if (bag.box_id, bag.position) == (box.id, position):
            raise Conflict(f"Bag {din_shown(bag)} is already in {box_words(box)}, position {label}.", field="position")
        holder = session.scalar(select(Bag).where(Bag.box_id == box.id, Bag.position == position))
        if holder is not None:
            raise Conflict(f"Position {label} of {box_words(box)} is occupied by bag {din_shown(holder)} "
                           f"(bag {holder.bag_number} of {holder.bag_count}): choose a free position.",
                           field="position")
        temperature, limit = box_storage(session, box, lot)
        if too_warm(temperature, limit):
            raise Conflict(f"{box_words(box)} is stored at {temperature if temperature is not None else 'an unknown'} °C;"
                           f" {lot.product_name} must be kept at {limit} °C or colder.", field="box_id")
        move = StorageMove(bag_id=bag.id, from_box_id=bag.box_id, from_position=bag.position, to_box_id=box.id,
                           to_position=position, reason=reason, moved_by_id=actor.id)
        custody_log.note(session, actor, bag, "moved" if bag.box_id is not None else "stored",
                         location=f"{box.name} {label}", reason=reason,
                         details={"from_box_id": bag.box_id, "from_position": bag.position, "to_box_id": box.id,
                                  "to_position": position})
        bag.box_id, bag.position = box.id, position
        session.add(move)
        try:
            session.flush()
        except IntegrityError:  # a concurrent request took the position first
            raise Conflict(f"Position {label} of {box_words(box)} was just taken: choose another.",
                           field="position") from None
    return move


def move_words(session: Session, move: StorageMove) -> str:
    """What a placement did, for the page's message: "Bag moved from Box A2 A5 to Box B1 A1." or "Bag stored in Box
    B1, position A1." (a move said as a store left the technician unsure which had happened)."""
    to_box = get_location(session, move.to_box_id)
    to = f"{box_words(to_box)} {position_label(to_box, move.to_position)}"
    if move.from_box_id is None:
        return f"Bag stored in {box_words(to_box)}, position {position_label(to_box, move.to_position)}."
    from_box = get_location(session, move.from_box_id)
    return f"Bag moved from {box_words(from_box)} {position_label(from_box, move.from_position)} to {to}."


def free_position(session: Session, box: StorageLocation) -> int | None:
    taken = set(session.scalars(select(Bag.position).where(Bag.box_id == box.id)))
    return next((p for p in range(1, (box.capacity or 0) + 1) if p not in taken), None)
