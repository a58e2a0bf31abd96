"""Three slips a lab-technician reviewer carried through a whole lot, each now refused naming the field and the rule:

1. a 1000x counting slip at a passage (0.5 x10^6 seeded, 20000 x10^6 harvested in 1 day: a doubling every 1.6 h)
   refused below the product's minimum doubling time (config/products.toml culture.min_doubling_time, 15 h), with or
   without days in culture (then the dates bound the time); the passage table shows each passage's doubling time;
2. a bag of 400 x10^6 viable cells per mL (outside the product's cryopreservation.cells_per_ml range) and a bag at 0 %
   DMSO for a product frozen with DMSO (or with a DMSO lot recorded) refused at cryopreservation;
3. a lot sent to quarantine while a bag has no storage position refused, listing the bags to place.
Through the web forms and the API; nothing is written by a refusal."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from mscbatch.core.culture import BagPlan, check_doubling_time
from mscbatch.core.identifiers import din_shown
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.lots import bags, services, steps, storage
from mscbatch.lots.models import Bag, Lot, ProcessStep
from tests.conftest import api_token_for
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    at,
    box,
    cryopreserved_lot,
    harvested_lot,
    passages,
    record_required_reagents,
    start_lot,
    user,
)
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)


def _passages(session: Any, lot_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(ProcessStep).where(
        ProcessStep.lot_id == lot_id, ProcessStep.kind == "passage")))


def _isolated(session: Any) -> tuple[int, Any]:
    lot_id = start_lot(session, approved_adipose_donor(session))
    isolated_on = TODAY - timedelta(days=20)
    steps.record_isolation(session, user(session, "technician"), lot_id, performed_on=isolated_on)
    return lot_id, isolated_on


def test_the_core_rule_says_doublings_and_hours_and_passes_real_growth() -> None:
    assert check_doubling_time(500_000, 20_000 * M, Decimal(24), Decimal(15)) == "15.29 doublings, one every 1.6 h"
    assert check_doubling_time(4 * M, 38 * M, Decimal(5 * 24), Decimal(15)) is None  # 3.25 PD in 5 days: 37 h
    assert check_doubling_time(4 * M, 3 * M, Decimal(24), Decimal(15)) is None  # no growth: another rule's
    assert check_doubling_time(M, 2**10 * M, Decimal(149), Decimal(15)) == "10.00 doublings, one every 14.9 h"
    assert check_doubling_time(M, 2**10 * M, Decimal(150), Decimal(15)) is None  # exactly 15 h: allowed


def test_a_thousandfold_passage_count_is_refused_on_the_form_and_the_api(app, users, db_session,  # noqa: F811
                                                                       client_as):
    lot_id, isolated_on = _isolated(db_session)
    db_session.rollback()
    day = (isolated_on + timedelta(days=1)).isoformat()
    tech = client_as("technician")
    refused = tech.post(f"/lots/{lot_id}/passages", data={
        "passage-passage_number": "0", "passage-performed_on": day, "passage-seeded_cells": "0.5",
        "passage-harvested_cells": "20000", "passage-viability_percent": "95", "passage-days_in_culture": "1"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422, html
    assert ("Cells harvested: 20000 x10^6 from 0.5 x10^6 seeded in 1 day at P0 is 15.29 doublings, one every "
            "1.6 h; Adipose tissue MSC (AT-MSC) double no faster than every 15 h") in html
    assert "check the count for a typing error (a factor of 10 or 1000)" in html
    assert _passages(db_session, lot_id) == 0
    db_session.rollback()

    api = app.test_client().post(f"/api/v1/lots/{lot_id}/passages", headers={
        "Authorization": f"Bearer {api_token_for(app, 'technician')}"}, json={
        "passage_number": 0, "performed_on": day, "seeded_cells": 500_000, "harvested_cells": 20_000 * M,
        "viability_percent": "95", "days_in_culture": "1"})
    assert api.status_code == 422, api.get_json()
    assert "one every 1.6 h" in api.get_json()["errors"]["harvested_cells"][0]
    assert _passages(db_session, lot_id) == 0
    db_session.rollback()


def test_without_days_in_culture_the_dates_bound_the_time(app, users, db_session):  # noqa: F811
    lot_id, isolated_on = _isolated(db_session)
    tech = user(db_session, "technician")
    details = steps.PassageDetails(passage_number=0, performed_on=isolated_on + timedelta(days=1), seeded_cells=M,
                                   harvested_cells=2000 * M, viability_percent="95")
    try:
        steps.record_passage(db_session, tech, lot_id, details)
        raise AssertionError("a 2000-fold growth in 2 calendar days was recorded")
    except ValidationFailed as refused:
        assert refused.field == "harvested_cells"
        assert f"in at most 2 days (seeded {isolated_on}, harvested {isolated_on + timedelta(days=1)})" in str(refused)
        assert "one every 4.4 h" in str(refused)
    db_session.rollback()
    assert _passages(db_session, lot_id) == 0


def test_real_growth_is_recorded_and_the_table_shows_its_doubling_time(app, users, db_session,  # noqa: F811
                                                                      client_as):
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(2 * M, 16 * M)])  # 3 PD in 4 days: one every 32 h
    db_session.rollback()
    page = client_as("technician").get(f"/lots/{lot_id}").get_data(as_text=True)
    assert "<th>Doubling time</th>" in page and "<td data-label=\"Doubling time\">32.0 h</td>" in page


def _cryo_form(cells_per_ml: str, dmso: str) -> dict[str, str]:
    return {"cryo-frozen_at": f"{TODAY.isoformat()}T09:00", "cryo-bag_count": "1", "cryo-volume_ml": "10",
            "cryo-cells_per_ml": cells_per_ml, "cryo-dmso_percent": dmso}


def _bag_count(session: Any, lot_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(Bag).where(Bag.lot_id == lot_id)))


def test_a_bag_of_400_million_cells_per_ml_is_refused(app, users, db_session, client_as):  # noqa: F811
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session), total=100 * M, viability="100")
    db_session.rollback()
    refused = client_as("technician").post(f"/lots/{lot_id}/cryopreservation", data=_cryo_form("400", "10"))
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422, html
    assert ("Bag 1: viable cells per mL 400 x10^6 is outside 0.5 x10^6 to 50 x10^6 per mL, the range for Adipose "
            "tissue MSC (AT-MSC) bags") in html
    assert _bag_count(db_session, lot_id) == 0
    db_session.rollback()
    api = app.test_client().post(f"/api/v1/lots/{lot_id}/cryopreservation", headers={
        "Authorization": f"Bearer {api_token_for(app, 'technician')}"}, json={
        "frozen_at": at(TODAY, 9).isoformat(), "bags": [{"volume_ml": "10", "cells_per_ml": 400 * M,
                                                         "dmso_percent": "10"}]})
    assert api.status_code == 422, api.get_json()
    assert "outside 0.5 x10^6 to 50 x10^6 per mL" in api.get_json()["errors"]["cells_per_ml"][0]
    assert _bag_count(db_session, lot_id) == 0
    db_session.rollback()
    assert client_as("technician").post(f"/lots/{lot_id}/cryopreservation",
                                        data=_cryo_form("2", "10")).status_code == 302
    assert _bag_count(db_session, lot_id) == 1


def test_a_bag_without_dmso_is_refused_for_a_product_frozen_with_dmso(app, users, db_session,  # noqa: F811
                                                                     client_as):
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    record_required_reagents(db_session, lot_id)  # the DMSO lot too
    db_session.rollback()
    refused = client_as("technician").post(f"/lots/{lot_id}/cryopreservation", data=_cryo_form("2", "0"))
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422, html
    assert "Bag 1: DMSO 0 %, but a DMSO lot is recorded for lot" in html
    assert _bag_count(db_session, lot_id) == 0
    db_session.rollback()
    # no DMSO lot recorded yet: the product itself (required_reagent_types lists "dmso") is frozen with DMSO
    bare = harvested_lot(db_session, approved_adipose_donor(db_session))
    try:
        bags.cryopreserve(db_session, user(db_session, "technician"), bare, frozen_at=at(TODAY, 9),
                          bags=[BagPlan(volume_ml=Decimal(10), cells_per_ml=2 * M, dmso_percent=Decimal(0))])
        raise AssertionError("a 0 % DMSO bag of a DMSO product was frozen")
    except ValidationFailed as error:
        assert error.field == "dmso_percent"
        assert "Bag 1: DMSO 0 %, but Adipose tissue MSC (AT-MSC) is frozen with DMSO" in str(error)
    db_session.rollback()
    assert _bag_count(db_session, bare) == 0


def test_quarantine_is_refused_until_every_bag_is_placed(app, users, db_session, client_as):  # noqa: F811
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=2, with_reagents=True)
    box_id = box(db_session)
    tech = user(db_session, "technician")
    storage.store_bag(db_session, tech, made[0].id, box_id, 1)
    second = din_shown(made[1])
    lot_number = db_session.get(Lot, lot_id).lot_number
    db_session.rollback()

    refused = client_as("technician").post(f"/lots/{lot_id}/transition", data={
        "transition-target": "quarantine", "transition-reason": "ready for QC"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 409, html
    assert f"Lot {lot_number} cannot go to quarantine: bag 2 of 2 ({second}) is not placed in storage" in html
    assert db_session.get(Lot, lot_id).status == "in_process"
    db_session.rollback()
    api = app.test_client().post(f"/api/v1/lots/{lot_id}/transitions", headers={
        "Authorization": f"Bearer {api_token_for(app, 'technician')}"}, json={"target": "quarantine", "reason": "QC"})
    assert api.status_code == 409 and f"bag 2 of 2 ({second}) is not placed" in api.get_json()["detail"]
    db_session.rollback()

    storage.store_bag(db_session, user(db_session, "technician"), made[1].id, box_id, 2)
    services.transition_lot(db_session, user(db_session, "technician"), lot_id, "quarantine", "ready for QC")
    assert db_session.get(Lot, lot_id).status == "quarantine"


def test_several_unplaced_bags_are_all_listed(app, users, db_session):  # noqa: F811
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=3, with_reagents=True)
    try:
        services.transition_lot(db_session, user(db_session, "technician"), lot_id, "quarantine", "ready")
        raise AssertionError("a lot with unplaced bags went to quarantine")
    except Conflict as refused:
        shown = [din_shown(bag) for bag in made]
        assert (f"bags 1 of 3 ({shown[0]}), 2 of 3 ({shown[1]}) and 3 of 3 ({shown[2]}) are not placed in storage"
                in str(refused))
    db_session.rollback()


def test_the_lot_page_says_which_bags_to_place_before_quarantine(app, users, db_session, client_as):  # noqa: F811
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=2, with_reagents=True)
    storage.store_bag(db_session, user(db_session, "technician"), made[0].id, box(db_session), 1)
    second = din_shown(made[1])
    db_session.rollback()
    page = client_as("technician").get(f"/lots/{lot_id}").get_data(as_text=True)
    assert f"Not ready for quarantine:</strong> bag 2 of 2 ({second}) not placed in storage" in page, page
