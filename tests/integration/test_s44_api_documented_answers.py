"""Session 44, an API client's review: what the API answers and documents.

- the dose-calculation dry run gave draws[].bag_id "9" and its cell counts as strings, while a bag id is an
  integer everywhere else in the API (and in the prescription's bag_ids) and a prescription's cells are integers;
- the OpenAPI document listed released, rejected, recalled and conditional_release as targets of
  /lots/{id}/transitions, which never accepts them (QA signs them);
- "A site goes in a nothing."; "reason: reason: at most 500 characters"; the dispatch's courier, shipper and
  temperature logger were documented as optional.
"""
from __future__ import annotations

from typing import Any

import pytest

from mscbatch.audit.context import use_case
from mscbatch.patients.api import _calculation
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user


def _headers(app: Any, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_for(app, role)}"}


def _stock_and_patient(app: Any) -> tuple[int, list[int]]:
    with app.extensions["mscbatch.db"].new_session() as session:
        clin, tech = user(session, "clinician"), user(session, "technician")
        bags = lot_with_bags(session, tech, donor(session, tech))
        row = patient(session, clin)  # 62.5 kg, SLE-UC at 2 x 10^6/kg: 125,000,000 cells, three bags
        session.commit()
        return row.id, [bag.id for bag in bags]


def test_the_dry_runs_bag_ids_and_cell_counts_are_json_integers_and_sign_as_they_are(app, users):
    pid, bag_ids = _stock_and_patient(app)
    api, headers = app.test_client(), _headers(app, "clinician")
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={})
    assert dry.status_code == 200, dry.get_data(as_text=True)
    calc = dry.get_json()["calculation"]
    assert {draw["bag_id"] for draw in calc["draws"]} == set(bag_ids), calc["draws"]
    assert all(type(draw["bag_id"]) is int and type(draw["cells"]) is int for draw in calc["draws"]), calc["draws"]
    assert (calc["dose_level_cells_per_kg"], calc["target_cells"], calc["delivered_cells"]) == (
        2_000_000, 125_000_000, 125_000_000)
    assert (calc["low_cells"], calc["high_cells"], calc["waste_cells"]) == (112_500_000, 137_500_000, 25_000_000)
    assert type(calc["delivered_cells_per_kg"]) is int
    assert calc["draws"][0]["volume_ml"] == "25.00" or isinstance(calc["draws"][0]["volume_ml"], str)  # decimals
    signed = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json={
        "dose_level_cells_per_kg": calc["dose_level_cells_per_kg"], "weight_id": dry.get_json()["weight_id"],
        "bag_ids": [draw["bag_id"] for draw in calc["draws"]], "password": PASSWORD})
    assert signed.status_code == 201, signed.get_data(as_text=True)
    assert signed.get_json()["dose_level_cells_per_kg"] == calc["dose_level_cells_per_kg"]
    assert signed.get_json()["target_cells"] == calc["target_cells"]


def test_a_band_between_two_whole_cells_is_given_as_the_whole_cells_inside_it():
    calc = _calculation({"dose_level_cells_per_kg": "2000000", "target_cells": "141100001", "low_cells":
                         "126990000.9", "high_cells": "155210001.1", "delivered_cells": "141100001",
                         "delivered_cells_per_kg": "2000000", "waste_cells": "0", "excluded": [{"bag_id": "4",
                                                                                                  "reason": "x"}],
                         "draws": [{"bag_id": "9", "cells": "141100001", "volume_ml": "25"}]})
    assert (calc["low_cells"], calc["high_cells"]) == (126_990_001, 155_210_001)
    assert calc["draws"] == [{"bag_id": 9, "cells": 141_100_001, "volume_ml": "25"}]
    assert calc["excluded"] == [{"bag_id": 4, "reason": "x"}]


def _spec(app: Any) -> dict[str, Any]:
    return app.test_client().get("/api/v1/openapi.json").get_json()


def _body_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    ref = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_the_openapi_document_lists_only_the_transitions_the_endpoint_accepts(app):
    target = _body_schema(_spec(app), "/api/v1/lots/{lot_id}/transitions")["properties"]["target"]
    assert target["enum"] == ["quarantine", "expired"], target
    assert "electronic" in target["description"] or "sign" in target["description"]


def _in_process_lot(app: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        tech = user(session, "technician")
        bags = lot_with_bags(session, tech, donor(session, tech), status="in_process", placed=False)
        session.commit()
        return bags[0].lot_id


@pytest.mark.parametrize("target", ["released", "rejected", "recalled", "conditional_release"])
def test_a_signed_disposition_sent_as_a_transition_is_still_refused_by_name(app, users, target):
    lot_id = _in_process_lot(app)
    api = app.test_client()
    qa = api.post(f"/api/v1/lots/{lot_id}/transitions", headers=_headers(app, "qa"),
                  json={"target": target, "reason": "test"})
    assert qa.status_code == 409 and "electronic signature" in qa.get_json()["detail"], qa.get_json()
    tech = api.post(f"/api/v1/lots/{lot_id}/transitions", headers=_headers(app, "technician"),
                    json={"target": target, "reason": "test"})
    assert tech.status_code == 403, tech.get_json()


def test_a_target_that_is_no_move_is_a_422_listing_the_accepted_ones_and_quarantine_moves(app, users):
    lot_id = _in_process_lot(app)
    api, headers = app.test_client(), _headers(app, "technician")
    refused = api.post(f"/api/v1/lots/{lot_id}/transitions", headers=headers,
                       json={"target": "in_process", "reason": "test"})
    assert refused.status_code == 422 and "quarantine, expired" in refused.get_json()["detail"], refused.get_json()
    moved = api.post(f"/api/v1/lots/{lot_id}/transitions", headers=headers,
                     json={"target": "quarantine", "reason": "culture done"})
    # accepted by the schema: the service judges it (here: the lot's reagent lots are not recorded yet)
    assert moved.status_code == 409 and "reagent lots" in moved.get_json()["detail"], moved.get_json()


def test_a_site_given_a_parent_is_told_to_leave_parent_id_out(app, users):
    api, headers = app.test_client(), _headers(app, "technician")
    site = api.post("/api/v1/storage", headers=headers, json={"kind": "site", "name": "S1"})
    assert site.status_code == 201, site.get_data(as_text=True)
    answer = api.post("/api/v1/storage", headers=headers,
                      json={"kind": "site", "name": "S2", "parent_id": site.get_json()["id"]})
    assert answer.status_code == 422, answer.get_data(as_text=True)
    problem = answer.get_json()
    assert "nothing" not in problem["detail"] and "top level" in problem["detail"], problem
    assert "parent_id" in problem["detail"] and list(problem["errors"]) == ["parent_id"], problem


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/bags/1/storage", {"box_id": 1, "position": 1, "reason": "x" * 501}, "reason"),
    ("/api/v1/lots/1/transitions", {"target": "quarantine", "reason": "x" * 501}, "reason"),
    ("/api/v1/lots/1/isolation", {"performed_on": "2026-01-01", "notes": "x" * 2001}, "notes"),
])
def test_a_too_long_text_names_its_field_once(app, users, path, body, field):
    answer = app.test_client().post(path, headers=_headers(app, "technician"), json=body)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    problem = answer.get_json()
    assert problem["detail"].startswith(f"{field}: at most") and f"{field}: {field}:" not in problem["detail"], problem
    assert problem["errors"][field][0].startswith("at most"), problem


def test_the_dispatch_fields_say_they_are_required_for_a_dispatch(app):
    fields = _body_schema(_spec(app), "/api/v1/custody/events")["properties"]
    for name in ("courier", "shipper", "temperature_logger_id"):
        assert "required for dispatched" in fields[name].get("description", ""), (name, fields[name])


def test_a_dispatch_without_them_is_refused_naming_each(app, users):
    with app.extensions["mscbatch.db"].new_session() as session:
        tech = user(session, "technician")
        bag = lot_with_bags(session, tech, donor(session, tech), bags=1)[0]
        with use_case(session, tech, "test: allocated"):
            bag.status = "allocated"
        session.commit()
        bag_id = bag.id
    answer = app.test_client().post("/api/v1/custody/events", headers=_headers(app, "technician"),
                                    json={"kind": "dispatched", "bag_id": bag_id})
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert set(answer.get_json()["errors"]) == {"courier", "shipper", "temperature_logger_id"}, answer.get_json()
