"""CSRF on every state-changing form route; security headers; production refuses the demo keys."""
from __future__ import annotations

import re

import pytest

from mscbatch import create_app
from mscbatch.settings import SettingsError
from tests.conftest import PASSWORD, make_app
from tests.integration.test_access_matrix import _sample_url

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def csrf_app(database_url):  # type: ignore[no-untyped-def]
    app = make_app(database_url, WTF_CSRF_ENABLED=True)
    yield app
    app.extensions["mscbatch.db"].engine.dispose()


def _signed_in(app, username, roles):  # type: ignore[no-untyped-def]
    from tests.conftest import add_user

    add_user(app, username, roles)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    return client


def _signed_in_with_every_role(app):  # type: ignore[no-untyped-def]
    """Between them every role: the administrator's account holds that role alone (auth.services)."""
    return [_signed_in(app, "everyone", ["technician", "qa", "clinician", "nurse"]),
            _signed_in(app, "sysadmin", ["admin"])]


def test_every_state_changing_route_refuses_a_request_without_a_csrf_token(csrf_app):
    clients = _signed_in_with_every_role(csrf_app)
    checked = 0
    for rule in csrf_app.url_map.iter_rules():
        for method in sorted(rule.methods & STATE_CHANGING):
            url = _sample_url(csrf_app, rule)
            if url.startswith("/api/"):
                continue  # the API takes bearer tokens only (see the next test)
            for client in clients:  # whichever account the route admits: refused for the missing token
                response = client.open(url, method=method, data={})
                assert response.status_code in (400, 403), f"{method} {url} accepted a request without a CSRF token"
                if response.status_code == 400:
                    assert b"CSRF" in response.data
                    checked += 1
                    break
            else:
                raise AssertionError(f"{method} {url}: no account was admitted to show the CSRF refusal")
    assert checked >= 5


def test_a_login_without_csrf_token_is_refused(csrf_app):
    response = csrf_app.test_client().post("/login", data={"username": "x", "password": "y"})
    assert response.status_code == 400


def test_the_api_ignores_browser_cookies_so_it_needs_no_csrf_token(csrf_app):
    for client in _signed_in_with_every_role(csrf_app):
        assert client.get("/api/v1/me").status_code == 401


def test_every_page_carries_the_security_headers(app):
    response = app.test_client().get("/login")
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers
    assert "HttpOnly" in response.headers.get("Set-Cookie", "HttpOnly")


def test_https_deployments_get_hsts_and_secure_cookies(database_url):
    app = make_app(database_url, HTTPS=True, SESSION_COOKIE_SECURE=True)
    response = app.test_client().get("/login", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    app.extensions["mscbatch.db"].engine.dispose()


def test_errors_never_show_a_stack_trace_to_a_user(app):
    response = app.test_client().get("/no-such-page")
    assert response.status_code == 404
    assert b"Traceback" not in response.data and b"Not Found" in response.data


@pytest.mark.parametrize("key", ["SECRET_KEY", "AUDIT_KEY", "LABEL_KEY"])
def test_a_production_run_refuses_to_start_with_a_demo_key(key, tmp_path):
    strong = "x" * 40
    config = {"ENV_NAME": "production", "SECRET_KEY": strong, "AUDIT_KEY": strong, "LABEL_KEY": strong,
              "DATABASE_URL": f"sqlite:///{tmp_path}/p.sqlite3", "AUTO_MIGRATE": False}
    config.pop(key)
    from mscbatch import settings

    config[key] = getattr(settings, f"DEMO_{key}")
    with pytest.raises(SettingsError, match=f"MSCBATCH_{key}"):
        create_app(config)
