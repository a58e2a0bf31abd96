"""A bag moved in storage while QA discards it (review 2 of lots). The move read the bag without a lock: on
PostgreSQL both read it "stored", the discard freed its position and committed, and the move then put the
DISCARDED bag into a box position with a "moved" custody event after "discarded". The move now locks the bag
(custody.services.lock_bag) before checking its status: one waits for the other, and a discarded bag never holds
a position."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mscbatch.custody import handover
from mscbatch.custody.models import CustodyEvent
from mscbatch.lots import storage
from mscbatch.lots.models import Bag
from tests.integration.lot_factories import box
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.reliability.races import Rendezvous, race


def test_a_move_and_a_discard_of_the_same_bag_at_once_leave_no_discarded_bag_in_a_box(app, users, monkeypatch):
    with app.extensions["mscbatch.db"].new_session() as session:
        tech = user(session, "technician")
        [bag] = lot_with_bags(session, tech, donor(session, tech), bags=1, placed=False)
        box_id = box(session)
        storage.store_bag(session, tech, bag.id, box_id, 1)
        bag_id = bag.id
    meet = Rendezvous(True)
    temperature, record_event = storage.container_temperature, handover.record_event

    def move_read_then_meet(session: Any, location: Any) -> Any:  # the move has read the bag, not yet written
        meet()
        return temperature(session, location)

    def discard_read_then_meet(session: Any, *args: Any, **kwargs: Any) -> Any:
        meet()
        return record_event(session, *args, **kwargs)

    monkeypatch.setattr(storage, "container_temperature", move_read_then_meet)
    monkeypatch.setattr(handover, "record_event", discard_read_then_meet)

    def attempt(session: Any, who: Any) -> Any:
        if who.username == "qa":
            return handover.discard(session, who, bag_id, reason="Bag cracked in the tank")
        return storage.store_bag(session, who, bag_id, box_id, 2, "Reorganising the box")

    outcomes = race(app, lambda session, n: user(session, ("qa", "technician")[n]), attempt)
    assert all(kind in ("ok", "refused") for kind, _ in outcomes), outcomes
    with app.extensions["mscbatch.db"].new_session() as session:
        found = session.get(Bag, bag_id)
        events = list(session.scalars(select(CustodyEvent.kind).where(CustodyEvent.bag_id == bag_id)
                                      .order_by(CustodyEvent.id)))
    assert (found.status, found.box_id, found.position) == ("discarded", None, None), outcomes
    assert events[-1] == "discarded", events  # nothing moved it after its discard
