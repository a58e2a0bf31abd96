"""Reading recalls and holds: is this bag on hold (the bedside check asks), what a recall touches."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.recall.models import RECALL_SCOPES, BagHold, Recall


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
    return "; ".join(
        f"on hold by recall R-{recall.id} ({RECALL_SCOPES.get(recall.scope, recall.scope).lower()} recall "
        f"started {recall.started_at:%Y-%m-%d} UTC): {recall.reason}" for _hold, recall in holds)


def held_bag_ids(session: Session, bag_ids: list[int]) -> set[int]:
    """Which of these bags have an active hold (for lists of bags)."""
    if not bag_ids:
        return set()
    return set(session.scalars(select(BagHold.bag_id).where(BagHold.bag_id.in_(bag_ids),
                                                             BagHold.lifted_at.is_(None))))
