"""One append-only custody log per bag tells its whole story (issue 7 point 3): the services that place,
release, allocate and label a bag write their custody event in the same transaction as the change."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.custody.models import CustodyEvent
from mscbatch.demo import seed_demo
from mscbatch.labelling.services import print_labels
from mscbatch.lots.demo import chain_lot
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Allocation
from tests.conftest import TEST_CONFIG
from tests.integration.patient_factories import user


def _kinds(session, bag_id):  # type: ignore[no-untyped-def]
    return [e.kind for e in session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == bag_id)
                                            .order_by(CustodyEvent.id))]


def test_a_bag_log_shows_it_stored_released_allocated_and_labelled_in_order(app):
    session = app.extensions["mscbatch.db"].new_session()
    try:
        seed_demo(session, hash_profile="fast")
        lot = chain_lot(session)
        allocated = session.scalars(select(Allocation.bag_id).join(Bag, Bag.id == Allocation.bag_id)
                                    .where(Bag.lot_id == lot.id)).all()
        assert allocated
        bag_id = allocated[0]
        # the demo labels a released lot before any prescription allocates its bags
        assert _kinds(session, bag_id) == ["stored", "released", "labelled", "allocated"]

        print_labels(session, user(session, "tech"), lot.id, print_format="bag", base_url="https://ward.example/",
                     key=TEST_CONFIG["LABEL_KEY"], bag_id=bag_id, reason="label smudged")
        assert _kinds(session, bag_id)[-1] == "labelled"
        released = session.scalar(select(CustodyEvent).where(CustodyEvent.bag_id == bag_id,
                                                             CustodyEvent.kind == "released"))
        assert released.actor_id == user(session, "qa2").id  # the demo's releasing QA person
    finally:
        session.close()
