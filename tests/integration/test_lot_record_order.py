"""Review C: the manufacturing record in an order that cannot have happened was accepted.

- a passage seeded with more cells than the previous passage harvested (P0 2 -> 16 x10^6, then P1 seeded with
  160 x10^6): the PD of P1 and the cumulative PD came out far below the real growth, so a lot could pass its PD
  limit unseen (DOMAIN.md: PD = log2(harvested / seeded)); the same through a correction of either count;
- a harvest (and so a freezing) timed before the collection, on the collection day;
- a reagent used for harvest and cryopreservation dated after the bags were frozen.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.core.culture import BagPlan
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.lots import bags, corrections, reagent_corrections, reagents, steps
from mscbatch.lots.models import Lot, ProcessStep, ReagentUse
from mscbatch.site import local_and_utc, site_config
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    at,
    factory_reagent,
    passages,
    start_lot,
)
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)


def _passage(number: int | None, day: Any, seeded: int, harvested: int) -> steps.PassageDetails:
    return steps.PassageDetails(passage_number=number, performed_on=day, seeded_cells=seeded,
                                harvested_cells=harvested, viability_percent="95", days_in_culture="4")


def _passages_of(session: Any, lot_id: int) -> list[ProcessStep]:
    return [s for s in steps.steps_of(session, lot_id) if s.kind == "passage"]


def test_a_passage_seeded_with_more_cells_than_the_previous_harvest_is_refused(app, users, db_session):  # noqa: F811
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    tech = user(db_session, "technician")
    steps.record_isolation(db_session, tech, lot_id, performed_on=TODAY - timedelta(days=20))
    steps.record_passage(db_session, tech, lot_id, _passage(0, TODAY - timedelta(days=16), 2 * M, 16 * M))

    with pytest.raises(ValidationFailed) as refused:
        steps.record_passage(db_session, tech, lot_id, _passage(1, TODAY - timedelta(days=12), 160 * M, 170 * M))
    assert refused.value.field == "seeded_cells"
    message = str(refused.value)
    assert "Cells seeded: 160 x10^6" in message and "16 x10^6 cells harvested at P0" in message, message
    db_session.rollback()
    assert [s.passage_number for s in _passages_of(db_session, lot_id)] == [0]

    # all the cells P0 gave, seeded again: allowed (no tolerance, and none needed)
    step = steps.record_passage(db_session, tech, lot_id, _passage(1, TODAY - timedelta(days=12), 16 * M, 120 * M))
    assert step.passage_number == 1


def test_a_passage_seeded_above_the_previous_harvest_is_refused_on_the_page(app, users, db_session,  # noqa: F811
                                                                             client_as):
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(2 * M, 16 * M)])
    db_session.rollback()
    answer = client_as("technician").post(f"/lots/{lot_id}/passages", data={
        "passage-passage_number": "1", "passage-performed_on": (TODAY - timedelta(days=12)).isoformat(),
        "passage-seeded_cells": "160", "passage-harvested_cells": "170", "passage-viability_percent": "95",
        "passage-days_in_culture": "4"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422, html
    assert "Cells seeded: 160 x10^6" in html and "16 x10^6 cells harvested at P0" in html, html
    assert len(_passages_of(db_session, lot_id)) == 1


def test_a_correction_cannot_seed_a_passage_with_more_than_the_previous_harvest(app, users,
                                                                               db_session):  # noqa: F811
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(2 * M, 16 * M), (14 * M, 110 * M)])
    tech = user(db_session, "technician")
    p0, p1 = _passages_of(db_session, lot_id)

    # P1's seeding corrected to 160 x10^6: more than P0 gave
    with pytest.raises(ValidationFailed) as refused:
        corrections.correct_passage(db_session, tech, lot_id, p1.id, _passage(None, p1.performed_on, 160 * M,
                                                                              170 * M), "seeded count typed wrong")
    assert refused.value.field == "seeded_cells"
    assert "Cells seeded: 160 x10^6" in str(refused.value) and "16 x10^6 cells harvested at P0" in str(refused.value)
    db_session.rollback()

    # P0's harvest corrected to 10 x10^6: fewer than the 14 x10^6 seeded at P1 from it
    with pytest.raises(ValidationFailed) as refused:
        corrections.correct_passage(db_session, tech, lot_id, p0.id, _passage(None, p0.performed_on, 2 * M,
                                                                              10 * M), "harvested count typed wrong")
    assert refused.value.field == "harvested_cells"
    message = str(refused.value)
    assert "Cells harvested: 10 x10^6" in message and "14 x10^6 cells seeded at P1" in message, message
    db_session.rollback()
    assert [(s.seeded_cells, s.harvested_cells) for s in _passages_of(db_session, lot_id)] == [
        (2 * M, 16 * M), (14 * M, 110 * M)]

    # down to exactly what P1 was seeded with: allowed
    corrections.correct_passage(db_session, tech, lot_id, p0.id, _passage(None, p0.performed_on, 2 * M, 14 * M),
                                "harvested count typed wrong")
    assert _passages_of(db_session, lot_id)[0].harvested_cells == 14 * M


def test_a_harvest_before_the_collection_time_is_refused(app, users, db_session):  # noqa: F811
    day = TODAY - timedelta(days=20)
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))  # collected at 09:00 that day
    tech = user(db_session, "technician")
    steps.record_isolation(db_session, tech, lot_id, performed_on=day)
    steps.record_passage(db_session, tech, lot_id, steps.PassageDetails(
        # 10 -> 16 x10^6 on the collection day: 0.68 doublings in at most a day (one every 35 h), a growth MSC can do
        passage_number=0, performed_on=day, seeded_cells=10 * M, harvested_cells=16 * M, viability_percent="95"))
    collected = at(day, 9).astimezone(site_config().tz)

    with pytest.raises(ValidationFailed) as refused:
        steps.record_harvest(db_session, tech, lot_id, harvested_at=at(day, 7), total_cells=15 * M,
                             viability_percent="90")
    assert refused.value.field == "harvested_at"
    assert f"({collected:%Y-%m-%d %H:%M %Z} (" in str(refused.value), str(refused.value)
    assert f"({local_and_utc(collected)})" in str(refused.value), str(refused.value)  # local with UTC (session 37)
    db_session.rollback()
    assert db_session.get(Lot, lot_id).harvested_at is None

    lot = steps.record_harvest(db_session, tech, lot_id, harvested_at=at(day, 9), total_cells=15 * M,
                               viability_percent="90")  # at the collection time itself: allowed
    assert lot.harvested_at is not None
    # nor can a correction move it before the collection (and so let the freezing be before it too)
    with pytest.raises(ValidationFailed) as refused:
        corrections.correct_harvest(db_session, tech, lot_id, harvested_at=at(day, 8), total_cells=15 * M,
                                    viability_percent="90", reason="time typed wrong")
    assert refused.value.field == "harvested_at"


def _frozen_ten_days_ago(session: Any) -> tuple[int, Any]:
    lot_id = start_lot(session, approved_adipose_donor(session))
    passages(session, lot_id, [(2 * M, 16 * M), (14 * M, 110 * M)])  # P1 on day -12
    freeze_day = TODAY - timedelta(days=10)
    tech = user(session, "technician")
    steps.record_harvest(session, tech, lot_id, harvested_at=at(freeze_day, 8), total_cells=100 * M,
                         viability_percent="90")
    plan = BagPlan(volume_ml=Decimal(20), cells_per_ml=M, dmso_percent=Decimal(10))
    bags.cryopreserve(session, tech, lot_id, frozen_at=at(freeze_day, 9), bags=[plan] * 2)
    return lot_id, freeze_day


def test_a_reagent_for_the_cryopreservation_cannot_be_dated_after_the_freezing(app, users,
                                                                              db_session):  # noqa: F811
    lot_id, freeze_day = _frozen_ten_days_ago(db_session)
    tech = user(db_session, "technician")
    dmso = factory_reagent(db_session, "dmso")

    with pytest.raises(ValidationFailed) as refused:
        reagents.link_reagent(db_session, tech, lot_id, dmso, used_on=TODAY)
    assert refused.value.field == "used_on"
    # harvest and freezing the same day: the window is that day
    assert f"it was done on {freeze_day}" in str(refused.value), str(refused.value)
    db_session.rollback()

    use = reagents.link_reagent(db_session, tech, lot_id, dmso, used_on=freeze_day)  # the day of freezing
    use_id = use.id
    # the correction of that use follows the same window
    with pytest.raises(ValidationFailed) as refused:
        reagent_corrections.correct_reagent_use(db_session, tech, lot_id, use_id, reagent_lot_id=dmso,
                                                used_on=freeze_day + timedelta(days=1), reason="date typed wrong")
    assert refused.value.field == "used_on"
    db_session.rollback()
    assert db_session.scalar(select(ReagentUse.used_on).where(ReagentUse.id == use_id)) == freeze_day


def test_a_reagent_for_the_cryopreservation_before_the_freezing_runs_to_today(app, users,
                                                                             db_session):  # noqa: F811
    """Harvested but not frozen yet: the DMSO can be used any day from the harvest to today."""
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(2 * M, 16 * M), (14 * M, 110 * M)])
    tech = user(db_session, "technician")
    steps.record_harvest(db_session, tech, lot_id, harvested_at=at(TODAY - timedelta(days=10), 8),
                         total_cells=100 * M, viability_percent="90")
    assert reagents.link_reagent(db_session, tech, lot_id, factory_reagent(db_session, "dmso"), used_on=TODAY)
    with pytest.raises((ValidationFailed, Conflict)):
        reagents.link_reagent(db_session, tech, lot_id, factory_reagent(db_session, "trypsin"),
                              used_on=TODAY - timedelta(days=11))


def test_a_freezing_dated_before_a_cryopreservation_reagent_already_recorded_is_refused(app, users,
                                                                                         db_session):  # noqa: F811
    """The other way round: a DMSO recorded while the lot was not frozen (its window then ran to today), then the
    freezing recorded for an earlier day. The DMSO cannot have gone into bags frozen before it was used."""
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(2 * M, 16 * M), (14 * M, 110 * M)])
    tech = user(db_session, "technician")
    harvest_day = TODAY - timedelta(days=10)
    steps.record_harvest(db_session, tech, lot_id, harvested_at=at(harvest_day, 8), total_cells=100 * M,
                         viability_percent="90")
    reagents.link_reagent(db_session, tech, lot_id, factory_reagent(db_session, "dmso"), used_on=TODAY)
    plan = BagPlan(volume_ml=Decimal(20), cells_per_ml=M, dmso_percent=Decimal(10))
    with pytest.raises(Conflict) as refused:
        bags.cryopreserve(db_session, tech, lot_id, frozen_at=at(harvest_day, 9), bags=[plan] * 2)
    assert refused.value.field == "frozen_at"
    assert "Freezing refused" in str(refused.value) and f"on {TODAY}" in str(refused.value), str(refused.value)
    db_session.rollback()
    lot = db_session.get(Lot, lot_id)
    assert lot.frozen_at is None and lot.status == "in_process"  # nothing half-written: no bags, no DINs
    assert bags.bags_of(db_session, lot_id) == []
    # frozen on the day the DMSO was used, it is accepted
    assert len(bags.cryopreserve(db_session, tech, lot_id, frozen_at=at(TODAY, 0), bags=[plan] * 2)) == 2
