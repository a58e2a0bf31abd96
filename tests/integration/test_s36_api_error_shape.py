"""A refusal by the API's schemas has the shape and the words of every other refusal (API integrator's review,
session 36): {"errors": {"bag_id": [...]}} (it was {"errors": {"json": {"bag_id": [...]}}}), titled "Invalid input",
and a detail naming each field (it was "see errors")."""
from __future__ import annotations

from tests.conftest import api_token_for


def test_a_schema_refusal_names_its_fields_as_a_service_refusal_does(app, users):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    refused = client.post("/api/v1/custody/infusions", headers=headers, json={"bag_id": True, "wristband": "WB-1"})
    body = refused.get_json()
    assert refused.status_code == 422 and body["title"] == "Invalid input", body
    assert "json" not in body["errors"] and {"bag_id", "bag"} <= set(body["errors"]), body
    assert "bag_id: " in body["detail"] and "bag: " in body["detail"] and "see errors" not in body["detail"], body
    by_service = client.post("/api/v1/custody/scan-verify", headers=headers, json={"wristband": "", "bag": ""})
    assert by_service.status_code == 422 and by_service.get_json()["title"] == body["title"]
    assert set(by_service.get_json()["errors"]) == {"wristband", "bag"}


def test_a_query_refusal_is_named_by_its_parameter(app, users):
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    refused = app.test_client().get("/api/v1/lots?status=baked", headers=headers)
    body = refused.get_json()
    assert refused.status_code == 422 and "status" in body["errors"] and "query" not in body["errors"], body
