"""The JSON API base: personal tokens, problem documents, the OpenAPI document."""
from __future__ import annotations

import re

from openapi_spec_validator import validate

from tests.conftest import PASSWORD, api_token_for


def _create_token_via_ui(client) -> str:  # type: ignore[no-untyped-def]
    response = client.post("/account/tokens", data={"name": "ward 3 scanner", "password": PASSWORD})
    assert response.status_code == 201
    return re.search(r'id="new-token">(msc_[^<]+)<', response.get_data(as_text=True)).group(1)


def test_a_user_creates_a_token_in_the_ui_and_the_api_knows_them_by_it(app, client_as):
    token = _create_token_via_ui(client_as("nurse"))
    response = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json["username"] == "nurse" and response.json["roles"] == ["nurse"]


def test_tokens_are_stored_hashed(app, client_as):
    from sqlalchemy import select

    from mscbatch.auth.models import ApiToken

    token = _create_token_via_ui(client_as("nurse"))
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        stored = session.scalars(select(ApiToken)).all()
    assert stored and all(token not in (row.token_hash, row.prefix) for row in stored)


def test_a_revoked_token_is_refused_with_a_problem_document(app, client_as):
    nurse = client_as("nurse")
    token = _create_token_via_ui(nurse)
    token_id = re.search(r"/account/tokens/(\d+)/revoke", nurse.get("/account").get_data(as_text=True)).group(1)
    assert nurse.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    response = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 401 and "token" in response.json["detail"]


def test_a_user_cannot_revoke_someone_elses_token(app, users, client_as):
    api_token_for(app, "qa")
    response = client_as("nurse").post("/account/tokens/1/revoke")
    assert response.status_code == 404


def test_unknown_api_paths_and_methods_answer_with_problem_documents(app, users):
    client = app.test_client()
    token = api_token_for(app, "qa")
    missing = client.get("/api/v1/nothing-here", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    wrong_method = client.delete("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert wrong_method.status_code == 405 and wrong_method.json["title"] == "Method Not Allowed"


def test_a_server_error_in_the_api_is_a_problem_document_without_a_trace(app, users, monkeypatch):
    import mscbatch.api.base as base

    def explode():  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals")

    monkeypatch.setattr(base, "current_user", type("U", (), {"id": property(lambda s: explode())})())
    token = api_token_for(app, "qa")
    response = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500 and response.mimetype == "application/problem+json"
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Incident reference" in response.json["detail"]


def test_the_openapi_document_is_valid_and_lists_the_endpoints(app):
    document = app.test_client().get("/api/v1/openapi.json").json
    validate(document)
    assert document["openapi"].startswith("3.")
    assert "/api/v1/me" in document["paths"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
