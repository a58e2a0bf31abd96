"""Review 2 of lots, reagents. (1) An expired reagent was accepted by typing a date of use before its expiry, even
before the lot's collection: the date of use is now a day of the step it is linked to (a passage from its seeding
to its harvest, the isolation its day, harvest and cryopreservation from the harvest to today) and the expiry is
judged on it. (2) A recalled supplier lot registered again under another type, or with the supplier in capitals,
was a new row the recall did not cover: a supplier lot is now registered once (supplier and lot number, capitals
and spaces aside), and a recall of any row registered for it covers the others. Through the lot and reagent
pages."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.lots import reagents
from mscbatch.lots.models import Lot, ProcessStep, ReagentLot, ReagentUse
from mscbatch.recall import services as recalls
from mscbatch.recall.queries import bag_hold
from tests.conftest import PASSWORD
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    cryopreserved_lot,
    harvested_lot,
    passages,
    start_lot,
)
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)

COLLECTED = TODAY - timedelta(days=20)  # start_lot's collection; passages(): isolation that day, P0 4 days later


def _lot_with_p0(session: Any) -> tuple[int, int, int]:
    """A lot collected and isolated on COLLECTED, P0 harvested 4 days later: (lot, isolation step, P0 step)."""
    lot_id = start_lot(session, approved_adipose_donor(session))
    passages(session, lot_id, [(2 * M, 16 * M)])
    steps = {s.kind: s.id for s in session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot_id))}
    session.rollback()
    return lot_id, steps["isolation"], steps["passage"]


def _reagent(session: Any, *, expiry: date, supplier: str = "Acme", lot_number: str = "F-9",
             reagent_type: str = "fbs", name: str = "FBS") -> int:
    row = reagents.register_reagent_lot(session, user(session, "technician"), reagent_type=reagent_type, name=name,
                                        supplier=supplier, lot_number=lot_number, expiry_date=expiry)
    session.rollback()
    return row.id


def _link(client: Any, lot_id: int, reagent_id: int, step_id: int, day: date) -> Any:
    return client.post(f"/lots/{lot_id}/reagents", data={"reagent-reagent_lot_id": reagent_id,
                                                         "reagent-step_id": step_id, "reagent-used_on": day.isoformat()})


def _uses(session: Any, lot_id: int) -> list[tuple[str, date]]:
    rows = [(u.stage, u.used_on) for u in session.scalars(select(ReagentUse).where(ReagentUse.lot_id == lot_id))]
    session.rollback()
    return rows


def test_an_expired_reagent_cannot_be_linked_by_back_dating_its_use(app, users, db_session, client_as):  # noqa: F811
    lot_id, isolation, p0 = _lot_with_p0(db_session)
    p0_seeded, p0_harvested = COLLECTED, COLLECTED + timedelta(days=4)
    fbs = _reagent(db_session, expiry=COLLECTED + timedelta(days=2))  # expired in the middle of P0
    tech = client_as("technician")

    refused = _link(tech, lot_id, fbs, p0, p0_harvested)  # the true day: expired
    assert refused.status_code == 409 and "Expired reagent refused" in refused.get_data(as_text=True)

    back_dated = COLLECTED - timedelta(days=3)  # before the collection, so before the expiry
    refused = _link(tech, lot_id, fbs, p0, back_dated)
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert (f"The date of use {back_dated} is outside P0: a reagent used for it was used between {p0_seeded} "
            f"(the isolation, when P0 was seeded) and {p0_harvested} (the harvest of P0)") in text

    refused = _link(tech, lot_id, fbs, isolation, COLLECTED + timedelta(days=1))
    assert refused.status_code == 422
    assert (f"is not the day of the isolation: it was done on {COLLECTED}"
            in refused.get_data(as_text=True))

    refused = _link(tech, lot_id, fbs, 0, COLLECTED + timedelta(days=1))  # harvest and cryo: not harvested
    assert refused.status_code == 422
    assert "is not harvested yet: record the harvest first" in refused.get_data(as_text=True)
    assert _uses(db_session, lot_id) == []

    # a use within P0 and before the expiry is the real thing: recorded
    assert _link(tech, lot_id, fbs, p0, COLLECTED + timedelta(days=1)).status_code == 302
    assert _uses(db_session, lot_id) == [("P0", COLLECTED + timedelta(days=1))]


def test_harvest_and_cryopreservation_reagents_are_used_from_the_harvest_day(app, users, db_session,  # noqa: F811
                                                                               client_as):
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))  # harvested TODAY 08:00
    dmso = _reagent(db_session, expiry=TODAY + timedelta(days=100), lot_number="D-1", reagent_type="dmso")
    db_session.rollback()
    tech = client_as("technician")
    refused = _link(tech, lot_id, dmso, 0, TODAY - timedelta(days=1))
    assert refused.status_code == 422
    assert (f"is outside harvest and cryopreservation: a reagent used for it was used between {TODAY} (the harvest)"
            in refused.get_data(as_text=True))
    assert _link(tech, lot_id, dmso, 0, TODAY).status_code == 302


def test_a_recalled_supplier_lot_cannot_come_back_under_another_type_or_spelling(app, users, db_session,  # noqa: F811
                                                                                 client_as):
    lot_id, _isolation, p0 = _lot_with_p0(db_session)
    medium = _reagent(db_session, expiry=TODAY + timedelta(days=200), supplier="DemoBio", lot_number="AM-2291",
                      reagent_type="medium", name="alpha-MEM")
    recall = recalls.start_recall(db_session, user(db_session, "qa"), scope="reagent_lot", target_id=medium,
                                  reason="Supplier notice: endotoxin", password=PASSWORD)
    db_session.rollback()
    tech = client_as("technician")
    for again in ({"reagent_type": "other", "supplier": "DemoBio", "lot_number": "AM-2291"},
                  {"reagent_type": "medium", "supplier": "DEMOBIO", "lot_number": " am-2291 "},
                  {"reagent_type": "medium", "supplier": " Demo  Bio ", "lot_number": "AM-2291"}):
        refused = tech.post("/reagents", data={"name": "alpha-MEM", "expiry_date": str(TODAY + timedelta(days=200)),
                                               **again})
        assert refused.status_code == 409, again
        assert (f"DemoBio lot AM-2291 is already registered as reagent lot #{medium} (Culture medium: alpha-MEM"
                in refused.get_data(as_text=True)), again
    assert db_session.scalar(select(func.count()).select_from(ReagentLot)) == 1
    db_session.rollback()

    refused = _link(tech, lot_id, medium, p0, COLLECTED + timedelta(days=1))
    assert refused.status_code == 409
    assert f"Recalled reagent refused: DemoBio lot AM-2291 is under recall R-{recall.recall_id}" in \
        refused.get_data(as_text=True)


def test_a_row_registered_twice_before_the_rule_is_covered_by_the_recall_of_the_other(app, users, db_session,  # noqa: F811
                                                                                      client_as):
    """Rows registered before the rule: the second row is written directly, as the old registration did."""
    lot_id, _isolation, p0 = _lot_with_p0(db_session)
    used_lot, frozen = cryopreserved_lot(db_session, approved_adipose_donor(db_session))
    frozen_ids = [bag.id for bag in frozen]
    first = _reagent(db_session, expiry=TODAY + timedelta(days=200), supplier="DemoBio", lot_number="AM-2291",
                     reagent_type="medium", name="alpha-MEM")
    tech_user = user(db_session, "technician")
    twin = ReagentLot(reagent_type="other", name="alpha-MEM", supplier="DEMOBIO", lot_number="am-2291",
                      expiry_date=TODAY + timedelta(days=200), registered_by_id=tech_user.id)
    with use_case(db_session, tech_user, "registered before the rule"):
        db_session.add(twin)
    twin_id = twin.id
    reagents.link_reagent(db_session, tech_user, used_lot, twin_id, used_on=TODAY)  # used under the twin row
    recall = recalls.start_recall(db_session, user(db_session, "qa"), scope="reagent_lot", target_id=first,
                                  reason="Supplier notice: endotoxin", password=PASSWORD)
    db_session.rollback()
    assert all(bag_hold(db_session, bag_id) for bag_id in frozen_ids)  # the bags of the lot that used the twin
    db_session.rollback()

    tech = client_as("technician")
    refused = _link(tech, lot_id, twin_id, p0, COLLECTED + timedelta(days=1))
    assert refused.status_code == 409
    assert f"is under recall R-{recall.recall_id}" in refused.get_data(as_text=True)
    # the recalled row's page and its forward trace (what the recall holds) list the lot that used its twin
    number = db_session.get(Lot, used_lot).lot_number
    db_session.rollback()
    assert number in client_as("qa").get(f"/reagents/{first}").get_data(as_text=True)
    assert number in client_as("qa").get(f"/trace/reagents/{first}").get_data(as_text=True)
    # and the lot itself is covered by the recall (release refused, bags frozen later held: recall.queries._origins)
    from mscbatch.recall.queries import recalls_covering

    covering = recalls_covering(db_session, db_session.get(Lot, used_lot))
    assert [r.id for r in covering] == [recall.recall_id]
    db_session.rollback()
