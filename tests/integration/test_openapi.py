"""The OpenAPI document: valid OpenAPI 3, every /api/v1 route of the url map documented with its request and
response schemas and its problem responses; and the API docs page (vendored Swagger UI, no inline script)."""
from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate

NOT_OPERATIONS = {"api-docs.openapi_json", "interop.api_docs_redirect"}  # the document itself, a redirect
PROBLEM = "#/components/schemas/Problem"


def _spec(app: Any) -> dict[str, Any]:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _resolve(spec: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        *_, kind, name = item["$ref"].split("/")
        item = spec["components"][kind][name]
    return item


def _api_rules(app: Any) -> list[tuple[str, str, Any]]:
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint in NOT_OPERATIONS:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), rule))
    return found


@pytest.fixture
def spec(app: Any) -> dict[str, Any]:
    return _spec(app)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_document_is_valid_openapi(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_api_route_is_documented_with_schemas_and_problems(app, spec):
    routes = _api_rules(app)
    assert len(routes) > 30
    missing, incomplete = [], []
    for path, method, _rule in routes:
        operation = spec["paths"].get(path, {}).get(method)
        if operation is None:
            missing.append(f"{method.upper()} {path}")
            continue
        where = f"{method.upper()} {path}"
        responses = {code: _resolve(spec, r) for code, r in operation["responses"].items()}
        success = [code for code in responses if code.startswith("2")]
        if not success:
            incomplete.append(f"{where}: no 2xx response")
        for code in success:
            content = responses[code].get("content") or {}
            if not content or not all("schema" in media for media in content.values()):
                incomplete.append(f"{where}: {code} has no response schema")
        if method in ("post", "put", "patch"):
            body = operation.get("requestBody", {}).get("content", {})
            if not body or not all("schema" in media for media in body.values()):
                incomplete.append(f"{where}: no request body schema")
        if "401" not in responses:
            incomplete.append(f"{where}: 401 not documented")
        takes_input = method in ("post", "put", "patch") or any(
            p.get("in") == "query" for p in operation.get("parameters", []))
        if takes_input and "422" not in responses:
            incomplete.append(f"{where}: 422 not documented")
        for code, response in responses.items():
            if code.startswith(("4", "5")) or code == "default":
                content = response.get("content", {})
                if list(content) != ["application/problem+json"] or content["application/problem+json"][
                        "schema"] != {"$ref": PROBLEM}:
                    incomplete.append(f"{where}: {code} is not an RFC 9457 problem response")
    assert not missing, "routes missing from the OpenAPI document:\n" + "\n".join(missing)
    assert not incomplete, "\n".join(incomplete)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_documented_operation_exists(app, spec):
    routes = {(path, method) for path, method, _rule in _api_rules(app)}
    for path, item in spec["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                assert (path, method) in routes, f"{method.upper()} {path} documented but not routed"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_decimal_strings_are_documented_as_strings(spec):
    lot = spec["components"]["schemas"]["Lot"]["properties"]
    assert lot["tissue_amount"]["type"] == "string" and lot["tissue_amount"]["format"] == "decimal"
    assert spec["components"]["schemas"]["Lot"]["properties"]["harvest_total_cells"]["type"] == "integer"


def test_a_huge_id_is_a_404_not_a_server_error(app, users):
    from tests.conftest import api_token_for

    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    for url in ("/api/v1/lots/99999999999999999999999", "/api/v1/bags/9223372036854775808"):
        assert client.get(url, headers=headers).status_code == 404
    response = client.post("/api/v1/lots", headers=headers, json={
        "donor_id": 2**70, "product_id": "AT-MSC", "collection_at": "2025-01-01T09:00:00+00:00",
        "collection_site": "x", "tissue_amount": "1", "tissue_unit": "g"})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"


# ---- the docs page -------------------------------------------------------------------------------------

def test_the_docs_page_runs_the_vendored_swagger_ui_without_inline_script(client_as):
    client = client_as("nurse")
    response = client.get("/docs/api")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-spec-url="/api/v1/openapi.json"' in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(body.strip() == "" and "src=" in attrs for attrs, body in scripts)
    for src in re.findall(r'src="([^"]+)"', html) + re.findall(r'<link rel="stylesheet" href="([^"]+)"', html):
        assert src.startswith("/static/"), src  # no CDN
        asset = client.get(src)
        assert asset.status_code == 200 and len(asset.data) > 100, src
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_api_v1_docs_leads_to_the_page_and_the_page_needs_a_sign_in(app, client_as):
    anonymous = app.test_client()
    response = anonymous.get("/api/v1/docs")
    assert response.status_code == 302 and response.headers["Location"].endswith("/docs/api")
    assert "/login" in anonymous.get("/docs/api").headers["Location"]
    assert client_as("qa").get("/api/v1/docs", follow_redirects=True).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_swagger_ui_is_vendored_with_its_licence(app):
    from pathlib import Path

    folder = Path(app.static_folder) / "vendor" / "swagger-ui"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE", "VERSION"):
        assert (folder / name).is_file(), name
    assert "Apache License" in (folder / "LICENSE").read_text()
