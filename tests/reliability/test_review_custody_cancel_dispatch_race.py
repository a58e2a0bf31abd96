"""A prescription cancelled while its bag is being dispatched (safety review of dose, prescription, recall and
custody). The cancel read the bag without a lock: on PostgreSQL both read it "allocated", the dispatch moved it to
"dispatched" and the cancel then wrote "stored" over it and released its allocation. A bag on its way to the ward
was recorded in stock, free to be allocated to another patient. The cancel now locks each bag and reads it again:
one wins, the other is refused in words."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mscbatch.custody import handover
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.reliability.races import Rendezvous, race
from tests.reliability.test_cancel_and_end_races import MeetOnCheck


def test_a_cancel_and_a_dispatch_of_the_same_bag_at_once_leave_one_of_them_refused(app, users, monkeypatch):
    with app.extensions["mscbatch.db"].new_session() as session:
        tech, clinician = user(session, "technician"), user(session, "clinician")
        [bag] = lot_with_bags(session, tech, donor(session, tech), bags=1, cells=200_000_000)
        bag_id = bag.id
        prescription_id = prescriptions.prescribe(session, clinician, PASSWORD, patient(session, clinician).id).id
    meet = Rendezvous(True)
    monkeypatch.setattr(prescriptions, "BAG", MeetOnCheck(prescriptions.BAG, meet))
    allocation_of_bag = handover.allocation_of_bag

    def read_then_meet(session: Any, wanted: int) -> Any:  # the dispatch has read the bag before it writes
        found = allocation_of_bag(session, wanted)
        meet()
        return found

    monkeypatch.setattr(handover, "allocation_of_bag", read_then_meet)

    def attempt(session: Any, who: Any) -> Any:
        if who.username == "clinician":
            return prescriptions.cancel(session, who, prescription_id, "infusion postponed", password=PASSWORD)
        return handover.dispatch(session, who, bag_id, courier="Fast Courier", shipper="DS-3",
                                 temperature_logger_id="TL-1")

    outcomes = race(app, lambda session, n: user(session, ("clinician", "technician")[n]), attempt)
    assert sorted(kind for kind, _ in outcomes) == ["ok", "refused"], outcomes
    with app.extensions["mscbatch.db"].new_session() as session:
        status = session.get(Bag, bag_id).status
        active = session.scalar(select(Allocation.active_bag_id).where(Allocation.bag_id == bag_id))
    assert (status, active) in (("dispatched", bag_id), ("stored", None)), (status, active)
