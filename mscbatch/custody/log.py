"""Custody events written by the services that own the change (labelling, storage, release, allocation).

The ward's own events (received, thawed, infusion...) go through custody.services.record_event, which also
moves the bag through the BAG state machine. The events here only record a change their owning service has
already made (a label printed, a bag placed or moved, its lot released, the bag allocated), so that one
append-only log per bag tells its whole custody story (issue 7 point 3). This module imports no other domain
package, so any of them can call it.
"""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from mscbatch.custody.models import CustodyEvent

RECORDED_BY_OWNER = ("labelled", "stored", "moved", "released", "allocated")


def note(session: Session, actor: Any, bag: Any, kind: str, *, from_status: str | None = None,
         to_status: str | None = None, location: str = "", details: dict[str, Any] | None = None,
         reason: str = "") -> CustodyEvent:
    """Append the event inside the caller's use case (same transaction as the change it records)."""
    if kind not in RECORDED_BY_OWNER:
        raise ValueError(f"{kind!r} is recorded through custody.services.record_event")
    event = CustodyEvent(bag_id=bag.id, kind=kind, actor_id=actor.id, location=location[:120],
                         from_status=from_status or bag.status, to_status=to_status or bag.status,
                         details_json=json.dumps(details or {}, sort_keys=True, default=str), reason=reason[:2000])
    session.add(event)
    return event
