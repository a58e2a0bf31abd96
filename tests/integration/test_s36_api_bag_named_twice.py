"""The custody API's hand-over names its bag by a scan (bag) or an id (bag_id). A client sending both, out of step,
had the scanned bag moved silently while it meant the other (API integrator's review, session 36): now refused,
naming both fields, and nothing recorded."""
from __future__ import annotations

from tests.conftest import api_token_for
from tests.integration.test_custody_support import ward_bag


def _kinds(client, headers, bag_id):  # type: ignore[no-untyped-def]
    return [e["kind"] for e in client.get(f"/api/v1/custody/bags/{bag_id}/events", headers=headers).get_json()]


def test_bag_and_bag_id_naming_two_bags_are_refused_and_nothing_is_recorded(app, users):
    ward, other = ward_bag(app, state="received"), ward_bag(app, state="received")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    before = (_kinds(client, headers, ward.bag_id), _kinds(client, headers, other.bag_id))
    refused = client.post("/api/v1/custody/events", headers=headers,
                          json={"kind": "thawed", "bag": ward.token, "bag_id": other.bag_id})
    body = refused.get_json()
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json", body
    assert "two different bags" in body["detail"] and set(body["errors"]) == {"bag", "bag_id"}, body
    assert (_kinds(client, headers, ward.bag_id), _kinds(client, headers, other.bag_id)) == before
    same = client.post("/api/v1/custody/events", headers=headers,
                       json={"kind": "thawed", "bag": ward.token, "bag_id": ward.bag_id})
    assert same.status_code == 201 and same.get_json()["bag_id"] == ward.bag_id
    assert _kinds(client, headers, other.bag_id) == before[1]
