"""Numbers and free-text reasons as the pages and the JSON API accept them, through the real requests.

1. Python's Decimal() read "1_0" as 10, "١٢" (Arabic-Indic) and "１２" (full-width) as 12 and "1e2" as 100: a
   technician typing "1_0" cells seeded got 10 x10^6 recorded silently, and the API kept a weight "６２.5" as
   62.5 kg. Only a plainly written number is taken now (mscbatch.api.plain_numbers): refused with 422 naming the
   field and the rule, nothing written; "12", "0.5" and, where a value below zero exists, "-150" still pass.
2. The API's free-text reasons and notes were unbounded (a 5 MB storage-move reason was stored): they are bounded
   as the pages bound them (reason 500, notes 2000), 422 naming the field."""
from __future__ import annotations

from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.lots.models import Bag, Lot, ProcessStep, StorageLocation, StorageMove
from mscbatch.lots.storage import store_bag
from mscbatch.patients.models import WeightMeasurement
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.lot_factories import TODAY, M, approved_adipose_donor, box, cryopreserved_lot
from tests.integration.patient_factories import patient
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)
from tests.integration.test_lot_input_precision2 import _isolated_lot, _passage_rows

NOT_PLAIN = ["1_0", "١٢", "１２", "1e1"]  # each one a number Decimal() reads (10, 12, 12, 10)
RULE = "digits 0-9 with at most one decimal point"


def _bearer(app: Any, username: str = "technician") -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_for(app, username)}"}


def _count(session: Any, model: Any) -> int:
    session.rollback()
    try:
        return session.scalar(select(func.count()).select_from(model))
    finally:
        session.rollback()


def _json_errors(answer: Any) -> dict[str, list[str]]:
    """A schema's refusal (marshmallow's, by field as every refusal of the API), as its other length limits."""
    body = answer.get_json()
    assert answer.status_code == 422 and body["status"] == 422, body
    return body["errors"]


def _refused_number(answer: Any, field: str) -> str:
    """A number refused as the services refuse a value: the request's own field, detail = its words."""
    body = answer.get_json()
    assert answer.status_code == 422 and body["status"] == 422, body
    assert body["errors"] == {field: [body["detail"]]}, body
    return body["detail"]


# -- 1. numbers on the pages -------------------------------------------------------------------------------------

def _passage_form(**typed: str) -> dict[str, str]:
    form = {"passage_number": "0", "performed_on": (TODAY - timedelta(days=16)).isoformat(), "seeded_cells": "2",
            "harvested_cells": "16", "viability_percent": "95.5", "days_in_culture": "4.5", **typed}
    return {f"passage-{name}": value for name, value in form.items()}


@pytest.mark.parametrize("typed", [*NOT_PLAIN, "1e2"])
def test_the_passage_page_refuses_cells_not_written_plainly_naming_the_field(app, users, db_session,  # noqa: F811
                                                                             client_as, typed):
    lot_id = _isolated_lot(db_session)
    tech = client_as("technician")
    answer = tech.post(f"/lots/{lot_id}/passages", data=_passage_form(seeded_cells=typed, harvested_cells="160"))
    assert answer.status_code == 422, answer.status_code
    html = unescape(answer.get_data(as_text=True))
    assert f'id="passage-seeded_cells-error">Cells seeded: {typed!r} is not a number; write the number plainly: ' \
           f"{RULE}" in html, html[:3000]
    assert _passage_rows(db_session, lot_id) == []
    kept = tech.post(f"/lots/{lot_id}/passages", data=_passage_form(seeded_cells="12", harvested_cells="160",
                                                                    viability_percent="95.5"))
    assert kept.status_code == 302, kept.status_code
    db_session.rollback()
    assert db_session.scalar(select(ProcessStep.seeded_cells).where(
        ProcessStep.lot_id == lot_id, ProcessStep.kind == "passage")) == 12 * M
    db_session.rollback()


def test_the_storage_page_refuses_a_temperature_not_written_plainly_and_keeps_a_negative(
        app, users, db_session, client_as):  # noqa: F811
    from mscbatch.lots import storage

    site_id = storage.create_location(db_session, user(db_session, "technician"), kind="site", name="Unit").id
    db_session.commit()
    before, tech = _count(db_session, StorageLocation), client_as("technician")
    form = {"kind": "tank", "name": "LN2 tank 2", "parent_id": str(site_id)}
    for typed in ("-1_50", "-１５０", "-1.5e2"):
        answer = tech.post("/storage/new", data={**form, "temperature_max_c": typed})
        assert answer.status_code == 422, (typed, answer.status_code)
        assert (f'id="temperature_max_c-error">Storage temperature: &#39;{typed}&#39; is not a number; write the number '
                f'plainly: {RULE}') in answer.get_data(as_text=True)
        assert _count(db_session, StorageLocation) == before
    assert tech.post("/storage/new", data={**form, "temperature_max_c": "-150"}).status_code == 302
    assert _count(db_session, StorageLocation) == before + 1


# -- 1. numbers in the JSON API ----------------------------------------------------------------------------------

@pytest.mark.parametrize("typed", [*NOT_PLAIN, "9.55e1"])
def test_the_api_refuses_a_passage_viability_not_written_plainly(app, users, db_session, typed):  # noqa: F811
    lot_id = _isolated_lot(db_session)
    body = {"passage_number": 0, "performed_on": (TODAY - timedelta(days=13)).isoformat(), "seeded_cells": 2 * M,
            "harvested_cells": 16 * M, "viability_percent": typed, "days_in_culture": "6"}
    client = app.test_client()
    answer = client.post(f"/api/v1/lots/{lot_id}/passages", headers=_bearer(app), json=body)
    message = _refused_number(answer, "viability_percent")
    assert message.startswith(f"viability_percent: {typed!r} is not a plain number") and RULE in message
    assert _passage_rows(db_session, lot_id) == []
    kept = client.post(f"/api/v1/lots/{lot_id}/passages", headers=_bearer(app), json={**body, "viability_percent": "0.5"})
    assert kept.status_code == 201 and kept.get_json()["viability_percent"] == "0.50", kept.get_json()


def test_the_api_refuses_a_weight_not_written_plainly_and_records_nothing(app, users):
    session = app.extensions["mscbatch.db"].new_session()
    patient_id = patient(session, user(session, "clinician"), weight="62.5").id
    session.commit()
    client, clinician, today = app.test_client(), _bearer(app, "clinician"), site_today().isoformat()
    before = _count(session, WeightMeasurement)
    for typed in ("６２.5", "6_2.5", "6.25e1", "٦٢.٥"):
        answer = client.post(f"/api/v1/patients/{patient_id}/weights", headers=clinician,
                             json={"weight_kg": typed, "measured_on": today})
        message = _refused_number(answer, "weight_kg")
        assert message.startswith(f"Weight: {typed!r} is not a plain number") and RULE in message
        assert _count(session, WeightMeasurement) == before
    kept = client.post(f"/api/v1/patients/{patient_id}/weights", headers=clinician,
                       json={"weight_kg": "62", "measured_on": today})
    assert kept.status_code == 201, kept.get_json()
    assert _count(session, WeightMeasurement) == before + 1
    session.close()


def test_the_api_takes_a_minus_sign_only_for_a_temperature(app, users, db_session):  # noqa: F811
    from mscbatch.lots import storage

    site_id = storage.create_location(db_session, user(db_session, "technician"), kind="site", name="Unit").id
    db_session.commit()
    client, before = app.test_client(), _count(db_session, StorageLocation)
    body = {"kind": "tank", "name": "LN2 tank 2", "parent_id": site_id}
    refused = client.post("/api/v1/storage", headers=_bearer(app), json={**body, "temperature_max_c": "-1e2"})
    assert "is not a plain number" in _refused_number(refused, "temperature_max_c")
    assert _count(db_session, StorageLocation) == before
    made = client.post("/api/v1/storage", headers=_bearer(app), json={**body, "temperature_max_c": "-150"})
    assert made.status_code == 201 and made.get_json()["temperature_max_c"] == "-150.0", made.get_json()
    lot_id = _isolated_lot(db_session)
    negative = client.post(f"/api/v1/lots/{lot_id}/passages", headers=_bearer(app), json={
        "passage_number": 0, "performed_on": (TODAY - timedelta(days=13)).isoformat(), "seeded_cells": 2 * M,
        "harvested_cells": 16 * M, "viability_percent": "-95"})
    assert "no sign" in _refused_number(negative, "viability_percent")


# -- 2. reasons and notes in the JSON API ------------------------------------------------------------------------

def test_a_storage_move_reason_longer_than_the_pages_take_is_refused(app, users, db_session):  # noqa: F811
    _lot_id, bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session))
    box_id = box(db_session)
    bag_id = bags[0].id
    store_bag(db_session, user(db_session, "technician"), bag_id, box_id, 1)
    db_session.commit()
    client = app.test_client()
    for reason in ("x" * 501, "rack " * 1_000_000):  # 5 MB was stored
        answer = client.post(f"/api/v1/bags/{bag_id}/storage", headers=_bearer(app),
                             json={"box_id": box_id, "position": 5, "reason": reason})
        assert _json_errors(answer) == {"reason": [
            "at most 500 characters, as on the storage page; shorten it."]}
        db_session.rollback()
        assert db_session.get(Bag, bag_id).position == 1 and _count(db_session, StorageMove) == 1
    moved = client.post(f"/api/v1/bags/{bag_id}/storage", headers=_bearer(app),
                        json={"box_id": box_id, "position": 5, "reason": "r" * 500})
    assert moved.status_code == 200, moved.get_json()
    assert _count(db_session, StorageMove) == 2


def test_a_lot_transition_reason_and_step_notes_longer_than_the_pages_take_are_refused(
        app, users, db_session):  # noqa: F811
    lot_id = _isolated_lot(db_session)
    client = app.test_client()
    answer = client.post(f"/api/v1/lots/{lot_id}/transitions", headers=_bearer(app),
                         json={"target": "quarantine", "reason": "x" * 501})
    assert _json_errors(answer) == {"reason": ["at most 500 characters, as on the lot page; shorten it."]}
    db_session.rollback()
    assert db_session.get(Lot, lot_id).status == "in_process"
    db_session.rollback()
    within = client.post(f"/api/v1/lots/{lot_id}/transitions", headers=_bearer(app),
                         json={"target": "quarantine", "reason": "x" * 500})
    assert within.status_code == 409, within.get_json()  # read, then refused for what the lot still lacks
    body = {"passage_number": 0, "performed_on": (TODAY - timedelta(days=13)).isoformat(), "seeded_cells": 2 * M,
            "harvested_cells": 16 * M, "viability_percent": "95", "notes": "n" * 2001}
    notes = client.post(f"/api/v1/lots/{lot_id}/passages", headers=_bearer(app), json=body)
    assert _json_errors(notes) == {"notes": ["at most 2000 characters, as on the lot page; shorten it."]}
    assert _passage_rows(db_session, lot_id) == []
    kept = client.post(f"/api/v1/lots/{lot_id}/passages", headers=_bearer(app), json={**body, "notes": "n" * 2000})
    assert kept.status_code == 201, kept.get_json()


def test_a_huge_number_written_plainly_still_gets_the_services_words(app, users, db_session, client_as):  # noqa: F811
    """"1e309" is now refused as not written plainly; the same size written out still reaches the service's
    "far too much" (test_review5_lots_words pinned it with "1e309")."""
    from tests.integration.lot_factories import at

    tech = client_as("technician")
    donor_id = approved_adipose_donor(db_session)
    db_session.rollback()
    form = {"donor_id": str(donor_id), "product_id": "AT-MSC", "collection_at": at(TODAY).strftime("%Y-%m-%dT%H:%M"),
            "collection_site": "Theatre 3", "tissue_unit": "g"}
    exponent = unescape(tech.post("/lots/new", data={**form, "tissue_amount": "1e309"}).get_data(as_text=True))
    assert "Tissue amount: '1e309' is not a number; write the number plainly" in exponent
    written_out = tech.post("/lots/new", data={**form, "tissue_amount": "1" + "0" * 309})
    assert written_out.status_code == 422 and "far too much" in written_out.get_data(as_text=True)
    assert _count(db_session, Lot) == 0
