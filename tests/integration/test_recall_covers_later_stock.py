"""A recall covers what is made after it started (DOMAIN.md sections 4 and 8).

A recall holds the bags that exist when QA signs it. Before this, a lot started later from the recalled donor, or
frozen later from a lot that used a recalled reagent, came out with bags free of any hold, and a recalled reagent
lot could still be recorded as used. Now: no lot from a donor under recall, no use of a recalled reagent lot,
bags frozen later are held by every recall covering their lot, and no release while a recall covers the lot.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from mscbatch.core.culture import BagPlan
from mscbatch.errors import Conflict
from mscbatch.lots import bags, reagents
from mscbatch.lots.models import Bag, Lot
from mscbatch.recall import services as recalls
from mscbatch.recall.models import BagHold
from mscbatch.recall.queries import bag_hold
from mscbatch.release.release import refusals
from tests.conftest import PASSWORD
from tests.integration.lot_factories import TODAY, M, approved_adipose_donor, at, harvested_lot, start_lot
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)

PLAN = BagPlan(volume_ml=Decimal(20), cells_per_ml=M, dmso_percent=Decimal(10))


def _freeze(session, lot_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    made = bags.cryopreserve(session, user(session, "technician"), lot_id, frozen_at=at(TODAY, 9), bags=[PLAN] * 3)
    return [bag.id for bag in made]


def test_a_donor_recall_covers_bags_frozen_and_lots_started_after_it(app, users, db_session, client_as):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    lot_id = harvested_lot(db_session, donor_id)  # in culture when the recall starts: no bag yet
    started = recalls.start_recall(db_session, user(db_session, "qa"), scope="donor", target_id=donor_id,
                                   reason="Late positive anti-HBc on the archived sample", password=PASSWORD)
    assert started.held_bags == 0

    frozen = _freeze(db_session, lot_id)
    for bag_id in frozen:
        assert f"on hold by recall R-{started.recall_id}" in (bag_hold(db_session, bag_id) or "")
    lot = db_session.get(Lot, lot_id)
    assert any(f"covered by recall R-{started.recall_id}" in r for r in refusals(db_session, lot, user(db_session, "qa")))
    db_session.rollback()

    before = db_session.scalar(select(Lot.id).order_by(Lot.id.desc()).limit(1))
    db_session.rollback()
    response = client_as("technician").post("/lots/new", data={
        "donor_id": donor_id, "product_id": "AT-MSC", "collection_at": (TODAY - timedelta(days=3)).isoformat() + "T09:00",
        "collection_site": "Theatre 3", "tissue_amount": "40", "tissue_unit": "g"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert f"is under recall R-{started.recall_id}" in page and "No lot can be started from this donor" in page
    assert db_session.scalar(select(Lot.id).order_by(Lot.id.desc()).limit(1)) == before
    db_session.rollback()

    lifted = recalls.end_recall(db_session, user(db_session, "qa"), started.recall_id,
                                reason="The archived sample was mislabelled: the donor's own retest is negative",
                                password=PASSWORD)
    assert lifted == len(frozen) and all(bag_hold(db_session, b) is None for b in frozen)


def test_a_recalled_reagent_is_refused_and_covers_lots_that_used_it(app, users, db_session, client_as):  # noqa: F811
    tech = user(db_session, "technician")
    trypsin = reagents.register_reagent_lot(db_session, tech, reagent_type="trypsin", name="TrypLE", supplier="Acme",
                                            lot_number="T-77", expiry_date=TODAY + timedelta(days=90)).id
    used_before = harvested_lot(db_session, approved_adipose_donor(db_session))
    reagents.link_reagent(db_session, tech, used_before, trypsin, used_on=TODAY)
    later = start_lot(db_session, approved_adipose_donor(db_session))
    started = recalls.start_recall(db_session, user(db_session, "qa"), scope="reagent_lot", target_id=trypsin,
                                   reason="Supplier notice: endotoxin above limit in lot T-77", password=PASSWORD)
    db_session.rollback()

    response = client_as("technician").post(f"/lots/{later}/reagents", data={
        "reagent-reagent_lot_id": trypsin, "reagent-step_id": 0, "reagent-used_on": TODAY.isoformat()})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Recalled reagent refused" in page and f"recall R-{started.recall_id}" in page and "record a deviation" in page

    frozen = _freeze(db_session, used_before)
    holds = db_session.scalars(select(BagHold).where(BagHold.bag_id.in_(frozen))).all()
    assert sorted(h.bag_id for h in holds) == sorted(frozen)
    assert {h.recall_id for h in holds} == {started.recall_id}
    assert all(db_session.get(Bag, b).status == "stored" for b in frozen)


def test_a_completed_recall_still_refuses_a_new_lot_of_its_donor_and_a_use_of_its_reagent(
        app, users, db_session, client_as):  # noqa: F811
    """A recall completed (found valid, every bag dealt with) bars its origin for good, as an active one: a new lot
    of the donor or a new use of the reagent lot would be a lot that can never be released."""
    qa, tech = user(db_session, "qa"), user(db_session, "technician")
    donor_id = approved_adipose_donor(db_session)
    trypsin = reagents.register_reagent_lot(db_session, tech, reagent_type="trypsin", name="TrypLE", supplier="Acme",
                                            lot_number="T-78", expiry_date=TODAY + timedelta(days=90)).id
    later = start_lot(db_session, approved_adipose_donor(db_session))
    ids = []
    for scope, target in (("donor", donor_id), ("reagent_lot", trypsin)):  # nothing made yet: nothing to deal with
        started = recalls.start_recall(db_session, qa, scope=scope, target_id=target, password=PASSWORD,
                                       reason="Supplier notice" if scope == "reagent_lot" else "Late positive anti-HBc")
        recalls.complete_recall(db_session, qa, started.recall_id, note="Nothing was made: reconciled, 0 of 0.",
                                password=PASSWORD)
        ids.append(started.recall_id)
    db_session.rollback()

    response = client_as("technician").post("/lots/new", data={
        "donor_id": donor_id, "product_id": "AT-MSC", "collection_at": (TODAY - timedelta(days=3)).isoformat() + "T09:00",
        "collection_site": "Theatre 3", "tissue_amount": "40", "tissue_unit": "g"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and f"is under recall R-{ids[0]}" in page and "completed" in page, page
    assert "No lot can be started from this donor while the recall is in force." in page
    response = client_as("technician").post(f"/lots/{later}/reagents", data={
        "reagent-reagent_lot_id": trypsin, "reagent-step_id": 0, "reagent-used_on": TODAY.isoformat()})
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "Recalled reagent refused" in page and f"recall R-{ids[1]}" in page, page
    with pytest.raises(Conflict, match="is in force already"):  # a second recall of it is refused
        recalls.start_recall(db_session, qa, scope="donor", target_id=donor_id, reason="again", password=PASSWORD)
