"""Reading recalls and holds: is this bag on hold (the bedside check asks), what a recall touches."""
from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mscbatch.database import utcnow
from mscbatch.lots.models import Bag, Lot, ReagentUse
from mscbatch.recall.models import RECALL_SCOPES, BagHold, Recall

#: a bag already given or destroyed is not held (recall/services.py holds the same ones)
NOT_HELD_BAG_STATES = ("infused", "discarded")


def active_holds(session: Session, bag_id: int) -> list[tuple[BagHold, Recall]]:
    """The bag's active holds with their recalls, oldest first."""
    return [(hold, recall) for hold, recall in session.execute(
        select(BagHold, Recall).join(Recall, Recall.id == BagHold.recall_id)
        .where(BagHold.bag_id == bag_id, BagHold.lifted_at.is_(None)).order_by(BagHold.id))]


def is_held(bag_id: Any) -> Any:
    """Correlated EXISTS: the bag has an active hold (the bedside check reads it in its one statement and asks
    bag_hold for the words only when it is true)."""
    return select(BagHold.id).where(BagHold.bag_id == bag_id, BagHold.lifted_at.is_(None)).exists()


def bag_hold(session: Session, bag_id: int) -> str | None:
    """The plain reason the bag is on hold (bedside hard stop), or None when it is not on hold."""
    holds = active_holds(session, bag_id)
    if not holds:
        return None
    return "; ".join(f"on hold by {recall_words(recall)}" for _hold, recall in holds)


def held_bag_ids(session: Session, bag_ids: list[int]) -> set[int]:
    """Which of these bags have an active hold (for lists of bags)."""
    if not bag_ids:
        return set()
    return set(session.scalars(select(BagHold.bag_id).where(BagHold.bag_id.in_(bag_ids),
                                                             BagHold.lifted_at.is_(None))))


def active_recall_of(session: Session, scope: str, target_id: int) -> Recall | None:
    column = {"donor": Recall.donor_id, "lot": Recall.lot_id, "reagent_lot": Recall.reagent_lot_id}[scope]
    return session.scalar(select(Recall).where(Recall.scope == scope, column == target_id,
                                               Recall.status == "active"))


def recalls_covering(session: Session, lot: Lot) -> list[Recall]:
    """The active recalls that cover the lot now: of the lot itself, of its donor, or of a reagent lot it used.
    A recall holds the bags that exist when it starts; the steps that make or release stock later (a new lot from
    the donor, a reagent use recorded, bags frozen, a release) ask this, so that what is made after a recall
    started is covered by it too."""
    used = select(ReagentUse.reagent_lot_id).where(ReagentUse.lot_id == lot.id)
    return list(session.scalars(select(Recall).where(Recall.status == "active", or_(
        Recall.lot_id == lot.id, Recall.donor_id == lot.donor_id, Recall.reagent_lot_id.in_(used)))
        .order_by(Recall.id)))


def recall_words(recall: Recall) -> str:
    return (f"recall R-{recall.id} ({RECALL_SCOPES.get(recall.scope, recall.scope).lower()} recall started "
            f"{recall.started_at:%Y-%m-%d} UTC): {recall.reason}")


def hold_for_recalls(session: Session, lot: Lot, bags: list[Bag]) -> int:
    """Inside the caller's use case: hold each of these bags for every active recall covering its lot that does
    not hold it yet. Returns the number of holds placed."""
    recalls = recalls_covering(session, lot)
    if not recalls or not bags:
        return 0
    session.flush()  # new bags need their ids
    held = {(recall_id, bag_id) for recall_id, bag_id in session.execute(
        select(BagHold.recall_id, BagHold.bag_id).where(BagHold.recall_id.in_([r.id for r in recalls]),
                                                       BagHold.lifted_at.is_(None)))}
    now, placed = utcnow(), 0
    for recall in recalls:
        for bag in bags:
            if bag.status not in NOT_HELD_BAG_STATES and (recall.id, bag.id) not in held:
                session.add(BagHold(recall_id=recall.id, bag_id=bag.id, bag_status_at_hold=bag.status, placed_at=now))
                placed += 1
    return placed
