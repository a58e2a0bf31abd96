"""A recall hold outlives the lot's state: held bags are never offered for a prescription."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import available_bags
from mscbatch.recall import services as recall
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_recall_support import scene


def test_bags_held_in_quarantine_are_not_offered_after_the_lot_is_released(app, users):
    the_scene = scene(app)
    session = app.extensions["mscbatch.db"].new_session()
    try:
        recall.start_recall(session, user(session, "qa"), scope="lot", target_id=the_scene.quarantine_lot_id,
                            reason="sterility of the isolator in doubt", password=PASSWORD)
        held = set(session.scalars(select(Bag.id).where(Bag.lot_id == the_scene.quarantine_lot_id)))
        with use_case(session, user(session, "qa"), "test set-up: release signed elsewhere"):
            session.get(Lot, the_scene.quarantine_lot_id).status = "released"
        offered = {bag.id for bag, _lot in available_bags(session)}
        assert held and not (held & offered)
        untouched = set(session.scalars(select(Bag.id).where(Bag.lot_id == the_scene.other_lot_id)))
        assert untouched and untouched <= offered  # the filter hides only held bags
    finally:
        session.close()
