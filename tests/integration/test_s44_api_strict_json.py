"""Session 44, an API client's review: a JSON body's booleans and integers are JSON literals, nothing else.

marshmallow's Boolean read "yes", "true", 1 as true, so a clinician's confirmation of an implausible weight
(weight_confirmed) sent as a string was recorded as checked; WholeNumber read the strings "9" and "5" as integers,
so a prescription was signed on bag_ids ["9", 10.0, 11], an infusion started on bag_id "5" and a reaction recorded
at grade "2". A JSON body now takes the literals true / false and whole JSON numbers only (a 422 naming the field
otherwise; 10.0 is the number 10, test_api_whole_numbers); a query string, which is text, still reads "?page=2".
"""
from __future__ import annotations

from html import unescape
from typing import Any

import pytest
from marshmallow import Schema, fields

from mscbatch.api.base import JsonBoolean, QueryWholeNumber, WholeNumber
from mscbatch.patients.models import WeightMeasurement
from tests.conftest import api_token_for
from tests.integration.patient_factories import patient, user

BOOLEAN = "Not a valid boolean: send true or false."
INTEGER = "Not a valid integer: send a whole JSON number."


def _headers(app: Any, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_for(app, role)}"}


def _weighed_50_kg(app: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        row = patient(session, user(session, "clinician"), weight="50", weighed_days_ago=2, enrol=False)
        session.commit()
        return row.id


def _weights(app: Any, pid: int) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.query(WeightMeasurement).filter_by(patient_id=pid).count()


@pytest.mark.parametrize("confirmed", ["yes", "true", 1, "1", "on", 0, None])
def test_a_weight_confirmation_other_than_the_literal_true_is_refused_and_nothing_is_recorded(app, users, confirmed):
    pid = _weighed_50_kg(app)
    answer = app.test_client().post(f"/api/v1/patients/{pid}/weights", headers=_headers(app, "clinician"), json={
        "weight_kg": "70", "measured_on": "2026-01-01", "weight_confirmed": confirmed})
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.get_json()["errors"]["weight_confirmed"] == [BOOLEAN], answer.get_json()
    assert _weights(app, pid) == 1  # only the 50 kg


def test_the_literal_true_confirms_an_implausible_weight_and_false_does_not(app, users):
    pid = _weighed_50_kg(app)
    api, headers = app.test_client(), _headers(app, "clinician")
    from mscbatch.site import site_today
    body = {"weight_kg": "70", "measured_on": site_today().isoformat()}
    refused = api.post(f"/api/v1/patients/{pid}/weights", headers=headers, json=dict(body, weight_confirmed=False))
    assert refused.status_code == 422, refused.get_data(as_text=True)
    recorded = api.post(f"/api/v1/patients/{pid}/weights", headers=headers, json=dict(body, weight_confirmed=True))
    assert recorded.status_code == 201, recorded.get_data(as_text=True)
    assert _weights(app, pid) == 2


def test_the_api_refusal_of_an_implausible_weight_names_weight_confirmed_not_the_pages_tick_box(app, users):
    pid = _weighed_50_kg(app)
    from mscbatch.site import site_today
    answer = app.test_client().post(f"/api/v1/patients/{pid}/weights", headers=_headers(app, "clinician"), json={
        "weight_kg": "70", "measured_on": site_today().isoformat()})
    assert answer.status_code == 422, answer.get_data(as_text=True)
    problem = answer.get_json()
    assert 'send "weight_confirmed": true' in problem["detail"] and "tick" not in problem["detail"], problem
    assert all("tick" not in words and "weight_confirmed" in words for words in problem["errors"]["weight_kg"])


def test_the_web_form_still_tells_the_clinician_to_tick_the_box(app, users, client_as):
    pid = _weighed_50_kg(app)
    from mscbatch.site import site_today
    page = client_as("clinician").post(f"/patients/{pid}/weights", data={
        "weight_kg": "70", "measured_on": site_today().isoformat()}, follow_redirects=True)
    html = unescape(page.get_data(as_text=True))
    assert 'tick "I have checked this weight" and record it again' in html, html
    assert 'send "weight_confirmed"' not in html


@pytest.mark.parametrize("same", ["yes", "true", 1])
def test_a_lots_same_collection_flag_is_a_json_boolean(app, users, same):
    answer = app.test_client().post("/api/v1/lots", headers=_headers(app, "technician"),
                                    json={"same_collection_as_existing": same})
    assert answer.status_code == 422
    assert answer.get_json()["errors"]["same_collection_as_existing"] == [BOOLEAN], answer.get_json()


@pytest.mark.parametrize("bag_ids", [["9", 10.0, 11], ["9"], [10.5], [True]])
def test_a_prescriptions_bag_ids_are_whole_json_numbers(app, users, bag_ids):
    pid = _weighed_50_kg(app)
    answer = app.test_client().post(f"/api/v1/patients/{pid}/prescriptions", headers=_headers(app, "clinician"),
                                    json={"dose_level_cells_per_kg": "2000000", "bag_ids": bag_ids, "weight_id": 1,
                                          "password": "x"})
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert "bag_ids" in answer.get_json()["errors"], answer.get_json()
    assert INTEGER in answer.get_json()["detail"], answer.get_json()


@pytest.mark.parametrize("weight_id", ["1", 1.5])
def test_a_prescriptions_weight_id_is_a_whole_json_number(app, users, weight_id):
    pid = _weighed_50_kg(app)
    answer = app.test_client().post(f"/api/v1/patients/{pid}/prescriptions", headers=_headers(app, "clinician"),
                                    json={"dose_level_cells_per_kg": "2000000", "bag_ids": [1],
                                          "weight_id": weight_id, "password": "x"})
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.get_json()["errors"]["weight_id"] == [INTEGER], answer.get_json()


@pytest.mark.parametrize("bag_id", ["5", 5.5])
def test_an_infusion_start_takes_its_bag_id_as_a_whole_json_number(app, users, bag_id):
    answer = app.test_client().post("/api/v1/custody/infusions", headers=_headers(app, "nurse"),
                                    json={"bag_id": bag_id, "wristband": "W-1", "bag": "X"})
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.get_json()["errors"]["bag_id"] == [INTEGER], answer.get_json()


@pytest.mark.parametrize("grade", ["2", 2.5, True])
def test_a_reactions_grade_is_a_whole_json_number(app, users, grade):
    answer = app.test_client().post("/api/v1/custody/infusions/1/reactions", headers=_headers(app, "nurse"),
                                    json={"ctcae_term": "Fever", "grade": grade})
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.get_json()["errors"]["grade"] == [INTEGER], answer.get_json()


@pytest.mark.parametrize("body", [{"kind": "site", "name": "S", "rows": "2"},
                                  {"kind": "site", "name": "S", "parent_id": "1"},
                                  {"kind": "site", "name": "S", "columns": 3.5}])
def test_a_storage_locations_integers_are_whole_json_numbers(app, users, body):
    answer = app.test_client().post("/api/v1/storage", headers=_headers(app, "technician"), json=body)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    (field,) = set(body) - {"kind", "name"}
    assert answer.get_json()["errors"][field] == [INTEGER], answer.get_json()


def test_a_query_strings_integers_are_still_read_from_their_text(app, users):
    api = app.test_client()
    assert api.get("/api/v1/lots?before=5", headers=_headers(app, "technician")).status_code == 200
    donors = api.get("/api/v1/donors?page=1", headers=_headers(app, "qa"))
    assert donors.status_code == 200, donors.get_data(as_text=True)
    refused = api.get("/api/v1/lots?before=4.5", headers=_headers(app, "technician"))
    assert refused.status_code == 422 and "before" in refused.get_json()["errors"]


def _fields(schema: Schema, path: str = "") -> list[tuple[str, Any]]:
    found = []
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        found.append((path + name, field))
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.List):
            inner = inner.inner
        found.append((path + name + "[]", inner))
        if isinstance(inner, fields.Nested):
            found.extend(_fields(inner.schema, f"{path}{name}."))
    return found


def _arguments(app: Any) -> list[tuple[str, str, Schema]]:
    """(endpoint, location, schema) of every argument schema of the API's views."""
    found = []
    for endpoint, view in app.view_functions.items():
        for parameters in getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", []):
            schema = parameters["schema"]
            found.append((endpoint, parameters["in"], schema() if isinstance(schema, type) else schema))
    return found


def test_every_input_boolean_and_integer_of_the_api_is_strict_in_a_body_and_textual_in_a_query(app):
    arguments = _arguments(app)
    assert {location for _, location, _ in arguments} >= {"json", "query"}, arguments
    wrong = []
    for endpoint, location, schema in arguments:
        for name, field in _fields(schema):
            if isinstance(field, fields.Boolean) and not isinstance(field, JsonBoolean):
                wrong.append((endpoint, location, name, type(field).__name__))
            if isinstance(field, fields.Integer):
                expected = QueryWholeNumber if location == "query" else WholeNumber
                if not isinstance(field, expected):
                    wrong.append((endpoint, location, name, type(field).__name__))
    assert not wrong, wrong
