"""Every route x every role: the expected allow / deny, read off the url map.

A route that is not in EXPECTED_ACCESS fails the test, so nobody can add a page without deciding who may
see it. Allowed means the access check let the request through (any status but 403 / redirect-to-login);
denied means 403 for a signed-in user without the role.
"""
from __future__ import annotations

import pytest

from tests.conftest import ROLES, api_token_for

PUBLIC = "public"
SIGNED_IN = "signed-in"
ALL = frozenset(ROLES)

# endpoint -> PUBLIC, SIGNED_IN or the set of roles allowed. Each capability adds its routes here.
EXPECTED_ACCESS: dict[str, object] = {
    "static": PUBLIC,
    "web.home": PUBLIC,
    "web.healthz": PUBLIC,
    "auth.login": PUBLIC,
    "auth.logout": PUBLIC,
    "auth.account": SIGNED_IN,
    "auth.change_password": SIGNED_IN,
    "auth.create_token": SIGNED_IN,
    "auth.revoke_token": SIGNED_IN,
    "auth.users": {"admin"},
    "auth.user_detail": {"admin"},
    "auth.user_action": {"admin"},
    "audit.events": {"qa", "admin"},
    "api-docs.openapi_json": PUBLIC,
    "api.me": SIGNED_IN,
    # donors (issue 3): read by every signed-in role (identity fields filtered), written by the lab, signed by QA
    "donors.index": SIGNED_IN,
    "donors.detail": SIGNED_IN,
    "donors.register": {"technician"},
    "donors.edit": {"technician"},
    "donors.add_result": {"technician"},
    "donors.correct_result": {"technician"},
    "donors.questionnaire": {"technician"},
    "donors.decide": {"qa"},
    "donors.reopen": {"qa"},
    "donors_api.list_all": SIGNED_IN,
    "donors_api.get": SIGNED_IN,
    "donors_api.list_results": SIGNED_IN,
    "donors_api.add_result": {"technician"},
    "donors_api.eligibility": SIGNED_IN,
}


def _sample_url(app, rule) -> str:  # type: ignore[no-untyped-def]
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        values[name] = 999999 if type(converter).__name__ in ("IntegerConverter", "NumberConverter") else "x"
    if rule.endpoint == "static":
        values["filename"] = "css/mscbatch.css"
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def _method(rule) -> str:  # type: ignore[no-untyped-def]
    return "GET" if "GET" in rule.methods else sorted(rule.methods - {"HEAD", "OPTIONS"})[0]


def test_every_route_has_an_expected_access_rule(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - set(EXPECTED_ACCESS) == set(), "routes with no entry in EXPECTED_ACCESS"
    assert set(EXPECTED_ACCESS) - endpoints == set(), "EXPECTED_ACCESS names routes that no longer exist"


def test_every_view_carries_an_access_rule_in_code(app):
    from mscbatch.auth.access import access_rule

    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert access_rule(app, rule.endpoint, method) is not None, f"{rule.endpoint} {method} has no rule"


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(app, users, client_as, role):
    client = client_as(role)
    token = api_token_for(app, role)
    for rule in app.url_map.iter_rules():
        expected = EXPECTED_ACCESS[rule.endpoint]
        if expected == PUBLIC:
            continue  # public routes are covered by the anonymous test (and logout would end this session)
        allowed = expected in (PUBLIC, SIGNED_IN) or role in expected  # type: ignore[operator]
        url, method = _sample_url(app, rule), _method(rule)
        headers = {"Authorization": f"Bearer {token}"} if url.startswith("/api/") else {}
        response = client.open(url, method=method, headers=headers)
        if allowed:
            assert response.status_code != 403, f"{role} should reach {method} {url} ({rule.endpoint})"
            assert "/login" not in response.headers.get("Location", ""), f"{role} bounced from {url}"
        else:
            assert response.status_code == 403, f"{role} must be refused {method} {url}, got {response.status_code}"


def test_anonymous_visitors_reach_only_public_routes(app):
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        url, method = _sample_url(app, rule), _method(rule)
        response = client.open(url, method=method)
        if EXPECTED_ACCESS[rule.endpoint] == PUBLIC:
            assert response.status_code not in (401, 403), url
            continue
        if url.startswith("/api/"):
            assert response.status_code == 401, url
            assert response.mimetype == "application/problem+json"
        else:
            assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_a_browser_session_cookie_does_not_authenticate_the_api(client_as):
    response = client_as("admin").get("/api/v1/me")
    assert response.status_code == 401
