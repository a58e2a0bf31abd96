"""An integer in a JSON request is a whole number or a 422 naming the field: never truncated (review 5: a CTCAE grade
4.99 was stored as grade 4, a box of 2.5 rows as 2) and never a boolean read as 1."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from mscbatch.lots.models import StorageLocation
from tests.conftest import api_token_for


def _rack(app, headers) -> int:  # type: ignore[no-untyped-def]
    client = app.test_client()
    site = client.post("/api/v1/storage", headers=headers, json={"kind": "site", "name": "Site Z"})
    assert site.status_code == 201, site.get_data(as_text=True)
    tank = client.post("/api/v1/storage", headers=headers, json={
        "kind": "tank", "name": "Tank Z", "temperature_max_c": "-150", "parent_id": site.get_json()["id"]})
    assert tank.status_code == 201, tank.get_data(as_text=True)
    rack = client.post("/api/v1/storage", headers=headers,
                       json={"kind": "rack", "name": "Rack Z", "parent_id": tank.get_json()["id"]})
    assert rack.status_code == 201, rack.get_data(as_text=True)
    return int(rack.get_json()["id"])


@pytest.mark.parametrize("rows", [2.5, 4.99, True, "2.5", float("nan")])
def test_a_fractional_or_boolean_integer_is_refused_naming_its_field_and_nothing_is_stored(app, users, rows):
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}", "Content-Type": "application/json"}
    rack = _rack(app, headers)
    body = json.dumps({"kind": "box", "name": "Box Z9", "parent_id": rack, "rows": rows, "columns": 9})  # NaN too
    answer = app.test_client().post("/api/v1/storage", headers=headers, data=body)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert "rows" in answer.get_json()["errors"], answer.get_json()
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(func.count()).select_from(StorageLocation)
                              .where(StorageLocation.name == "Box Z9")) == 0


def test_a_whole_number_written_as_2_0_or_2_is_read_as_2(app, users):
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    answer = app.test_client().post("/api/v1/storage", headers=headers, json={
        "kind": "box", "name": "Box Z8", "parent_id": _rack(app, headers), "rows": 2.0, "columns": 3})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert (answer.get_json()["rows"], answer.get_json()["columns"]) == (2, 3)
