"""Storage (one bag per position, temperature, moves, the box grid), the lot list filters and the JSON API
for lots, steps, bags, storage and identifier parsing (issue 4)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.lots.models import Bag, StorageMove
from mscbatch.lots.storage import store_bag
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    box,
    cryopreserved_lot,
)
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)


def bearer(app, username):  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {api_token_for(app, username)}"}


def test_a_second_bag_in_an_occupied_position_is_refused(app, users, db_session, client_as):  # noqa: F811
    lot_id, bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session))
    box_id = box(db_session)
    first, second = bags[0].id, bags[1].id
    store_bag(db_session, user(db_session, "technician"), first, box_id, 1)
    din = din_shown(bags[0])  # as its label names it, with K
    db_session.rollback()
    response = client_as("technician").post(f"/lots/{lot_id}/store", data={
        "store-bag_id": second, "store-box_id": box_id, "store-position": "A1"})
    assert response.status_code == 409
    assert f"Position A1 of Box 1 is occupied by bag {din}" in response.get_data(as_text=True)
    # and the database itself refuses it, whatever the code does
    with pytest.raises(IntegrityError), use_case(db_session, user(db_session, "technician"), "bypass"):
        db_session.get(Bag, second).box_id, db_session.get(Bag, second).position = box_id, 1
        db_session.flush()
    assert db_session.scalar(select(func.count()).select_from(Bag).where(Bag.box_id == box_id)) == 1
    db_session.rollback()


def test_moves_are_recorded_with_who_and_why_and_the_box_grid_shows_occupancy(app, users, db_session,  # noqa: F811
                                                                              client_as):
    lot_id, bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session))
    box_id = box(db_session)
    tech = user(db_session, "technician")
    store_bag(db_session, tech, bags[0].id, box_id, 1)
    with pytest.raises(ValidationFailed, match="give the reason for the move"):
        store_bag(db_session, tech, bags[0].id, box_id, 5)
    store_bag(db_session, tech, bags[0].id, box_id, 5, "rack reorganised")
    moves = db_session.scalars(select(StorageMove).order_by(StorageMove.id)).all()
    assert [(m.from_position, m.to_position, m.reason) for m in moves] == [(None, 1, ""), (1, 5, "rack reorganised")]
    assert {m.moved_by_id for m in moves} == {tech.id}
    db_session.rollback()
    page = client_as("nurse").get(f"/storage/{box_id}").get_data(as_text=True)
    assert "1 of 9 positions occupied" in page and "≤ -150 °C" in page
    assert 'class="slot occupied" data-position="B2"' in page and 'class="slot free" data-position="A1"' in page


def test_a_bag_is_refused_in_a_container_warmer_than_its_product_needs(app, users, db_session):  # noqa: F811
    _lot_id, bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session))
    warm = box(db_session, temperature=-80)
    with pytest.raises(Conflict, match="stored at -80.0 °C; Adipose tissue MSC must be kept at -150 °C or colder"):
        store_bag(db_session, user(db_session, "technician"), bags[0].id, warm, 1)
    db_session.rollback()


def test_the_lot_list_filters_by_status_product_donor_and_date(app, users, db_session, client_as):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    lot_id, _bags = cryopreserved_lot(db_session, donor_id)
    from mscbatch.lots.models import Lot

    lot_number = db_session.get(Lot, lot_id).lot_number
    db_session.rollback()
    client = client_as("clinician")
    day = (TODAY - timedelta(days=20)).isoformat()
    assert lot_number in client.get(f"/lots?status=in_process&product=AT-MSC&from={day}&to={day}").get_data(as_text=True)
    assert lot_number not in client.get("/lots?status=released").get_data(as_text=True)
    assert lot_number not in client.get("/lots?product=UC-MSC").get_data(as_text=True)
    assert lot_number not in client.get("/lots?donor=D-1999-0001").get_data(as_text=True)
    assert lot_number not in client.get(f"/lots?to={(TODAY - timedelta(days=30)).isoformat()}").get_data(as_text=True)


def test_the_api_records_a_lot_from_collection_to_stored_bags(app, users, db_session):  # noqa: F811
    donor_id = approved_adipose_donor(db_session, days_ago=12)  # screened for the donation of 12 days ago
    box_id = box(db_session)
    db_session.rollback()
    client, tech = app.test_client(), bearer(app, "technician")
    start = TODAY - timedelta(days=12)
    lot = client.post("/api/v1/lots", headers=tech, json={
        "donor_id": donor_id, "product_id": "AT-MSC", "collection_at": f"{start.isoformat()}T09:00:00+01:00",
        "collection_site": "Theatre 1", "tissue_amount": "48.5", "tissue_unit": "g"})
    assert lot.status_code == 201, lot.get_json()
    lot_id = lot.get_json()["id"]
    assert lot.get_json()["eligibility_pending"] is False
    assert client.post(f"/api/v1/lots/{lot_id}/isolation", headers=tech,
                       json={"performed_on": start.isoformat()}).status_code == 201
    step = client.post(f"/api/v1/lots/{lot_id}/passages", headers=tech, json={
        "passage_number": 0, "performed_on": (start + timedelta(days=6)).isoformat(), "seeded_cells": 2 * M,
        "harvested_cells": 16 * M, "viability_percent": "96.5", "days_in_culture": "6"})
    assert step.status_code == 201 and step.get_json()["population_doublings"] == "3.00"
    gap = client.post(f"/api/v1/lots/{lot_id}/passages", headers=tech, json={
        "passage_number": 2, "performed_on": TODAY.isoformat(), "seeded_cells": M, "harvested_cells": 2 * M,
        "viability_percent": "90"})
    assert gap.status_code == 422 and "The next passage" in gap.get_json()["detail"]
    harvest = client.post(f"/api/v1/lots/{lot_id}/harvest", headers=tech, json={
        "harvested_at": f"{TODAY.isoformat()}T08:00:00+00:00", "total_cells": 16 * M, "viability_percent": "95"})
    assert harvest.status_code == 200 and harvest.get_json()["harvest_viable_cells"] == 15_200_000
    too_many = client.post(f"/api/v1/lots/{lot_id}/cryopreservation", headers=tech, json={
        "frozen_at": f"{TODAY.isoformat()}T09:00:00+00:00",
        "bags": [{"volume_ml": "10", "cells_per_ml": M, "dmso_percent": "10"}] * 2})
    assert too_many.status_code == 422 and "only 15.2 x10^6 viable" in too_many.get_json()["detail"]
    made = client.post(f"/api/v1/lots/{lot_id}/cryopreservation", headers=tech, json={
        "frozen_at": f"{TODAY.isoformat()}T09:00:00+00:00",
        "bags": [{"volume_ml": "7.5", "cells_per_ml": M, "dmso_percent": "10"}] * 2})
    assert made.status_code == 201, made.get_json()
    bag, first_bag_id = made.get_json()[1], made.get_json()[0]["id"]
    assert bag["division"] == "B0" and bag["effective_status"] == "quarantine" and bag["usable"] is False
    stored = client.post(f"/api/v1/bags/{bag['id']}/storage", headers=tech, json={"box_id": box_id, "position": 4})
    assert stored.status_code == 200 and stored.get_json()["position"] == "B1"
    taken = client.post(f"/api/v1/bags/{made.get_json()[0]['id']}/storage", headers=tech,
                        json={"box_id": box_id, "position": 4})
    assert taken.status_code == 409 and "occupied" in taken.get_json()["detail"]
    nurse = bearer(app, "nurse")
    grid = client.get(f"/api/v1/storage/{box_id}", headers=nurse).get_json()
    assert grid["temperature_max_c"] == "-150.0" and grid["positions"][3]["din"] == bag["din"]
    assert client.get(f"/api/v1/lots/{lot_id}/steps", headers=nurse).get_json()[1]["cumulative_pd"] == "3.00"
    # quarantine needs the reagent lots the product requires (lots.reagent_rules), registered and linked by the API
    refused = client.post(f"/api/v1/lots/{lot_id}/transitions", headers=tech,
                          json={"target": "quarantine", "reason": "frozen and stored"})
    assert refused.status_code == 409 and "no trypsin" in refused.get_json()["detail"]
    steps = {(s["kind"], s["passage_number"]): s for s in client.get(f"/api/v1/lots/{lot_id}/steps",
                                                                       headers=tech).get_json()}
    isolation, p0 = steps[("isolation", None)], steps[("passage", 0)]
    expiry = (site_today() + timedelta(days=365)).isoformat()
    for kind, step in (("medium", isolation), ("platelet_lysate", isolation), ("trypsin", p0), ("dmso", None)):
        made = client.post("/api/v1/reagent-lots", headers=tech, json={
            "reagent_type": kind, "name": f"API {kind}", "supplier": "API Supplier", "lot_number": f"API-{kind}",
            "expiry_date": expiry})
        assert made.status_code == 201, made.get_json()
        linked = client.post(f"/api/v1/lots/{lot_id}/reagents", headers=tech, json={
            "reagent_lot_id": made.get_json()["id"], "step_id": step["id"] if step else None,
            # the DMSO on the day the bags were frozen (TODAY), not later (reagents._use_window)
            "used_on": step["performed_on"] if step else TODAY.isoformat()})
        assert linked.status_code == 201, linked.get_json()
    again = client.post("/api/v1/reagent-lots", headers=tech, json={
        "reagent_type": "medium", "name": "x", "supplier": "api supplier", "lot_number": "API-MEDIUM",
        "expiry_date": expiry})
    assert again.status_code == 409 and "already registered" in again.get_json()["detail"]
    assert client.post("/api/v1/reagent-lots", headers=nurse, json={}).status_code == 403
    assert len(client.get(f"/api/v1/lots/{lot_id}/reagents", headers=nurse).get_json()) == 4
    unplaced = client.post(f"/api/v1/lots/{lot_id}/transitions", headers=tech,
                           json={"target": "quarantine", "reason": "frozen and stored"})
    assert unplaced.status_code == 409 and "bag 1 of 2 (" in unplaced.get_json()["detail"]
    first = client.post(f"/api/v1/bags/{first_bag_id}/storage", headers=tech,
                        json={"box_id": box_id, "position": 5})  # every bag placed before quarantine
    assert first.status_code in (200, 201), first.get_json()
    quarantine = client.post(f"/api/v1/lots/{lot_id}/transitions", headers=tech,
                             json={"target": "quarantine", "reason": "frozen and stored"})
    assert quarantine.status_code == 200 and quarantine.get_json()["status"] == "quarantine"
    parsed = client.post("/api/v1/identifiers/parse", headers=nurse,
                         json={"text": bag["din"] + bag["check_character"]}).get_json()
    assert parsed["valid"] is True and parsed["bag_id"] == bag["id"]
    typo = bag["din"][:-1] + ("1" if bag["din"][-1] != "1" else "2") + bag["check_character"]
    parsed = client.post("/api/v1/identifiers/parse", headers=nurse, json={"text": typo}).get_json()
    assert parsed["valid"] is False and "does not match DIN" in parsed["message"]
    assert parsed["bag_id"] is None and "expected" not in parsed["message"]  # the right K is never told


def test_lot_endpoints_are_in_the_openapi_document(app):
    paths = app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    for path in ("/api/v1/lots", "/api/v1/lots/{lot_id}/passages", "/api/v1/lots/{lot_id}/cryopreservation",
                 "/api/v1/lots/{lot_id}/bags", "/api/v1/bags/{bag_id}/storage", "/api/v1/storage/{location_id}",
                 "/api/v1/identifiers/parse", "/api/v1/lots/{lot_id}/transitions", "/api/v1/reagent-lots",
                 "/api/v1/lots/{lot_id}/reagents"):
        assert path in paths, path


def test_a_discarded_bag_frees_its_position_for_another_bag(app, client_as, db_session):  # type: ignore[no-untyped-def]  # noqa: F811
    """Review finding: an infused or discarded bag kept its box position for ever (the box map showed it present
    and the position could never be used again). A dispatched bag keeps its slot, since it may come back."""
    import json

    from mscbatch.custody.models import CustodyEvent

    lot_id, bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session))
    box_id = box(db_session)
    gone, next_bag = bags[0].id, bags[1].id
    store_bag(db_session, user(db_session, "technician"), gone, box_id, 1)
    db_session.rollback()
    answer = app.test_client().post("/api/v1/custody/events", headers=bearer(app, "qa"),
                                    json={"kind": "discarded", "bag_id": gone, "reason": "bag cracked on inspection"})
    assert answer.status_code == 201, answer.get_json()
    db_session.expire_all()
    discarded = db_session.get(Bag, gone)
    assert (discarded.status, discarded.box_id, discarded.position) == ("discarded", None, None)
    event = db_session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == gone)
                               .order_by(CustodyEvent.id.desc())).first()
    assert json.loads(event.details_json) == {"freed_box_id": box_id, "freed_position": 1}
    db_session.rollback()
    page = client_as("technician").get(f"/lots/{lot_id}").get_data(as_text=True)
    assert "left storage" in page
    store_options = page[page.index('name="store-bag_id"'):].split("</select>")[0]
    assert f'value="{gone}"' not in store_options and f'value="{next_bag}"' in store_options
    stored = client_as("technician").post(f"/lots/{lot_id}/store", data={
        "store-bag_id": next_bag, "store-box_id": box_id, "store-position": "A1"})
    assert stored.status_code == 302, stored.get_data(as_text=True)
    db_session.expire_all()
    assert (db_session.get(Bag, next_bag).box_id, db_session.get(Bag, next_bag).position) == (box_id, 1)


def test_the_lot_page_places_only_its_own_bags(app, users, db_session, client_as):  # noqa: F811
    """The store form posts the bag's id: one of another lot, sent to this lot's page (a tampered form), was placed
    and recorded as if from this lot's record."""
    lot_id, _bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session))
    _other_lot, other_bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session))
    box_id, stranger = box(db_session), other_bags[0].id
    db_session.rollback()
    response = client_as("technician").post(f"/lots/{lot_id}/store", data={
        "store-bag_id": stranger, "store-box_id": box_id, "store-position": "A1"})
    assert response.status_code == 422
    assert "Choose a bag of this lot." in response.get_data(as_text=True)
    assert db_session.get(Bag, stranger).box_id is None
