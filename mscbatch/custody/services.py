"""The chain of custody's shared core: record_event and the bag's row lock, which every custody use case
(handover, bedside, infusions) and the unit's storage and prescriptions go through.

Every custody event goes through record_event, which moves the bag through the BAG state machine of
mscbatch.core.states (impossible sequences and wrong roles are refused there: thawed before received, infused
twice...; a ward step out of order is said in a nurse's words: custody.ward_words) and appends one
CustodyEvent. The bag row is locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite
serialises writers with BEGIN IMMEDIATE) so two hand-overs of one bag never interleave.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.identifiers import din_shown
from mscbatch.core.states import BAG, TransitionRefused
from mscbatch.custody.checks import resolve_bag
from mscbatch.custody.models import CustodyEvent
from mscbatch.custody.ward_words import ward_refusal
from mscbatch.database import locked_row, utcnow
from mscbatch.errors import Conflict, PermissionDenied, ValidationFailed
from mscbatch.lots.models import Bag

#: event kind -> bag state it moves to (None: no state change, allowed only from the listed states)
EVENT_TARGETS: dict[str, str | None] = {
    "stored": "stored", "allocated": "allocated", "dispatched": "dispatched", "received": "received",
    "thawed": "thawed", "infusion_started": "infused", "returned": "returned", "discarded": "discarded",
    "labelled": None, "moved": None, "released": None, "bedside_verified": None, "infusion_ended": None,
}
#: a bag in these states never returns to the tank: its storage position is freed for another bag
FINAL_STATES = ("infused", "discarded")
STATELESS_FROM: dict[str, tuple[str, ...]] = {
    "labelled": ("stored", "allocated", "on_hold", "returned"),
    "moved": ("stored", "allocated", "on_hold", "returned"),
    "released": ("stored", "allocated", "on_hold"),
    "bedside_verified": ("received", "thawed"),
    "infusion_ended": ("infused",),
}


def _roles(actor: Any) -> frozenset[str]:
    return frozenset(getattr(actor, "role_names", ()) or ())


def lock_bag(session: Session, bag_id: int) -> Bag:
    return locked_row(session, Bag, bag_id, "bag")


def _text(value: Any, limit: int) -> str:
    return ("" if value is None else str(value)).strip()[:limit]


def require_authority(actor: Any, bag: Bag, kind: str) -> None:
    """Refuse (403) a role that the bag state machine never lets record `kind` from the bag's state (or, when the
    move is out of order anyway, from any state), before the bag is judged: a nurse asking to dispatch is told that
    only a technician dispatches, not that the lot is not released, as if a release would let a nurse send it."""
    target = EVENT_TARGETS.get(kind)
    if target is None:
        return
    try:
        BAG.check_authority(bag.status, target, _roles(actor), subject=f"bag {din_shown(bag)}")
    except TransitionRefused as refusal:
        raise PermissionDenied(f"Refused: {refusal}.") from None


def check_step(actor: Any, bag: Bag, kind: str) -> str | None:
    """Refuse a custody step the bag's state (or the actor's role) does not allow now; the state it leads to. Said
    before anything else is asked of the person (a reason, a courier): the bag's place comes first."""
    if kind not in EVENT_TARGETS:
        raise ValidationFailed(f"Unknown custody event {kind!r}.", field="kind")
    target = EVENT_TARGETS[kind]
    subject = f"bag {din_shown(bag)}"
    current = bag.status
    if target is not None:
        try:
            BAG.check(current, target, _roles(actor), subject=subject)
        except TransitionRefused as refusal:
            if refusal.kind == "authority":
                raise PermissionDenied(f"Refused: {refusal}.") from None
            # a ward step out of order in a nurse's words (where the bag is, what to do), else the generic words
            raise Conflict(ward_refusal(din_shown(bag), current, target) or f"Refused: {refusal}.") from None
    elif current not in STATELESS_FROM[kind]:
        raise Conflict(ward_refusal(din_shown(bag), current, kind) or f"Refused: {subject} is "
                       f"{current.replace('_', ' ')}; '{kind.replace('_', ' ')}' cannot be recorded now.")
    return target


def record_event(session: Session, actor: Any, bag: Bag, kind: str, *, location: str = "", scan: str = "",
                 details: dict[str, Any] | None = None, reason: str = "", at: datetime | None = None) -> CustodyEvent:
    """Append one custody event and move the bag (inside the caller's use case; `bag` locked by the caller)."""
    current = bag.status
    target = check_step(actor, bag, kind)
    if target is not None:
        bag.status = target
        if target in FINAL_STATES and bag.box_id is not None:
            details = dict(details or {}, freed_box_id=bag.box_id, freed_position=bag.position)
            bag.box_id, bag.position = None, None  # the slot was kept while the bag could come back; now it is free
    event = CustodyEvent(bag_id=bag.id, kind=kind, occurred_at=at or utcnow(), actor_id=actor.id,
                         location=_text(location, 120), scan=_text(scan, 600), from_status=current,
                         to_status=target, details_json=json.dumps(details or {}, sort_keys=True),
                         reason=_text(reason, 2000))
    session.add(event)
    session.flush()
    return event


def events_of(session: Session, bag_id: int) -> list[CustodyEvent]:
    return list(session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == bag_id).order_by(CustodyEvent.id)))


def bag_for_scan(session: Session, scan: str, label_key: str) -> Bag:
    bag, problem = resolve_bag(session, scan, label_key)
    if bag is None:
        raise ValidationFailed(problem or "Unknown bag.", field="bag")
    return bag
