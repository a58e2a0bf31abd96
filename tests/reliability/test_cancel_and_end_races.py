"""Ending a recall and cancelling a prescription, twice at once (found by the reliability review): on PostgreSQL
both attempts read the record as active before either wrote, and both succeeded. A recall got two "Recall ended"
signatures and its first end reason overwritten (the trail's old value wrong); a one-bag prescription put its bag
back in stock twice. Each now locks its record and reads it again inside the transaction: one wins, the other is
refused in words. Without the lock both tests fail on PostgreSQL (both attempts meet after their reads)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from mscbatch.custody.models import CustodyEvent
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation
from mscbatch.recall import services as recalls
from mscbatch.recall.models import END_MEANING, Recall
from mscbatch.signatures.models import Signature
from tests.conftest import PASSWORD, add_user
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_recall_support import scene
from tests.reliability.races import Rendezvous, race


def test_a_recall_is_ended_once_when_two_qa_people_end_it_at_once(app, users, monkeypatch):
    the_scene = scene(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        recall_id = recalls.start_recall(session, user(session, "qa"), scope="donor", target_id=the_scene.donor_id,
                                         reason="late positive HBV NAT", password=PASSWORD).recall_id
    meet, read = Rendezvous(True), recalls.get_recall

    def read_then_meet(session: Any, wanted: int) -> Any:  # both have read the recall (active) before either writes
        found = read(session, wanted)
        meet()
        return found

    monkeypatch.setattr(recalls, "get_recall", read_then_meet)
    outcomes = race(app, lambda session, n: user(session, ("qa", "qa2")[n]), lambda session, qa: recalls.end_recall(
        session, qa, recall_id, reason=f"false positive, per {qa.username}", password=PASSWORD))
    assert sorted(kind for kind, _ in outcomes) == ["ok", "refused"], outcomes
    [refusal] = [value for kind, value in outcomes if kind == "refused"]
    assert refusal.message == f"Recall R-{recall_id} is already ended."
    with app.extensions["mscbatch.db"].new_session() as session:
        ends = session.scalars(select(Signature).where(Signature.meaning == END_MEANING)).all()
        recall = session.get(Recall, recall_id)
        assert len(ends) == 1 and recall.end_reason == f"false positive, per {ends[0].printed_name.lower()}"


class MeetOnCheck:
    """prescriptions.BAG with a rendezvous in check(): both attempts have read the bag before either writes."""

    def __init__(self, machine: Any, meet: Rendezvous) -> None:
        self.machine, self.meet = machine, meet

    def check(self, *args: Any, **kwargs: Any) -> None:
        self.machine.check(*args, **kwargs)
        self.meet()


def test_a_prescription_is_cancelled_once_when_two_clinicians_cancel_it_at_once(app, users, monkeypatch):
    add_user(app, "clinician2", ["clinician"])
    with app.extensions["mscbatch.db"].new_session() as session:
        tech, clinician = user(session, "technician"), user(session, "clinician")
        lot_with_bags(session, tech, donor(session, tech), cells=200_000_000)
        prescription_id = prescriptions.prescribe(session, clinician, PASSWORD, patient(session, clinician).id).id
        assert session.scalar(select(func.count()).select_from(Allocation)) == 1  # one bag
    monkeypatch.setattr(prescriptions, "BAG", MeetOnCheck(prescriptions.BAG, Rendezvous(True)))
    outcomes = race(app, lambda session, n: user(session, ("clinician", "clinician2")[n]),
                    lambda session, who: prescriptions.cancel(session, who, prescription_id, f"per {who.username}", password=PASSWORD))
    assert sorted(kind for kind, _ in outcomes) == ["ok", "refused"], outcomes
    [refusal] = [value for kind, value in outcomes if kind == "refused"]
    assert refusal.message == "This prescription is cancelled; it cannot be cancelled."
    with app.extensions["mscbatch.db"].new_session() as session:
        returned = session.scalar(select(func.count()).select_from(CustodyEvent).where(
            CustodyEvent.from_status == "allocated", CustodyEvent.to_status == "stored"))
    assert returned == 1
