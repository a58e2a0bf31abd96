"""The FHIR Bundle's lot and patient parameters take the record id, not the lot number nor the trial code: a lot
number given (/api/v1/fhir/Bundle?lot=MSC-2026-0003) was refused with "lot: Not a valid integer." alone, which did
not say what to give. The problem names the field and the rule, and the OpenAPI description says it too."""
from __future__ import annotations

import pytest

from tests.conftest import api_token_for


@pytest.fixture
def api(app, users):  # type: ignore[no-untyped-def]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'qa')}"}
    return lambda url: client.get(url, headers=headers)


@pytest.mark.parametrize(("query", "words"), [
    ("lot=MSC-2026-0003", "lot: the lot's record id (a whole number, e.g. 3), not its lot number"),
    ("lot=0", "lot: the lot's record id (a whole number, e.g. 3), not its lot number"),
    ("patient=P-0001", "patient: the patient's record id (a whole number, e.g. 3), not its trial code"),
])
def test_a_lot_number_or_trial_code_is_refused_naming_the_record_id(api, query, words):
    response = api(f"/api/v1/fhir/Bundle?{query}")
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert words in problem["detail"], problem
    assert "Not a valid integer" not in response.get_data(as_text=True)


def test_the_openapi_description_says_the_parameters_take_the_record_id(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    parameters = {p["name"]: p for p in spec["paths"]["/api/v1/fhir/Bundle"]["get"]["parameters"]}
    assert "record id" in parameters["lot"]["description"] and "not its lot number" in parameters["lot"]["description"]
    assert "record id" in parameters["patient"]["description"]
    assert "not its trial code" in parameters["patient"]["description"]
