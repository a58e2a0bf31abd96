"""Session 36, administrator walkthrough (4): a form sent from a tab opened before its user signed in again (its
CSRF token is the old session's) was answered by Flask-WTF's bare "Bad Request - The CSRF tokens do not match."
page. It is now a plain page in the application's layout that says nothing was saved and what to do; the JSON
API's problem documents are unchanged. Through the web client, on SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re

import pytest
from flask_wtf.csrf import CSRFError

from mscbatch.auth.access import public
from tests.conftest import PASSWORD, add_user, make_app

EXPIRED = ("This page was opened before you signed in again, or has been open too long. Nothing was saved. Go back, "
           "reload the page and type again.")


@pytest.fixture
def csrf_app(database_url):  # type: ignore[no-untyped-def]
    app = make_app(database_url, WTF_CSRF_ENABLED=True)

    @public
    def refused_by_csrf():  # type: ignore[no-untyped-def]
        raise CSRFError("The CSRF tokens do not match.")

    app.add_url_rule("/api/v1/s36-csrf-refusal", "s36_csrf_refusal", refused_by_csrf, methods=["POST"])
    yield app
    app.extensions["mscbatch.db"].engine.dispose()


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def _sign_in(client) -> None:  # type: ignore[no-untyped-def]
    token = _csrf(client.get("/login").get_data(as_text=True))
    answer = client.post("/login", data={"username": "sysadmin", "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 302


def test_a_form_from_a_tab_opened_before_signing_in_again_gets_a_plain_page(csrf_app):
    add_user(csrf_app, "sysadmin", ["admin"])
    client = csrf_app.test_client()
    _sign_in(client)
    old_token = _csrf(client.get("/admin/users").get_data(as_text=True))  # the tab left open
    client.post("/logout", data={"csrf_token": old_token})
    _sign_in(client)  # signed in again, in another tab: a new session, a new CSRF secret
    answer = client.post("/admin/users", data={"username": "nurse9", "full_name": "Nora Nine", "password": PASSWORD,
                                               "roles": ["nurse"], "reason": "new nurse", "csrf_token": old_token})
    page = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 400
    assert answer.mimetype == "text/html"
    assert EXPIRED in page
    assert "Bad Request" not in page
    assert 'class="topbar"' in page and "Sign out" in page  # the application's layout, still signed in
    assert client.get("/admin/users").status_code == 200
    assert "nurse9" not in client.get("/admin/users").get_data(as_text=True)


def test_the_api_keeps_its_problem_document(csrf_app):
    """An address under /api/ outside the token-authenticated blueprints (which CSRF exempts): refused as before."""
    answer = csrf_app.test_client().post("/api/v1/s36-csrf-refusal")
    assert answer.status_code == 400
    assert answer.mimetype == "application/problem+json"
    assert answer.get_json()["detail"] == "The CSRF token is missing."  # CSRFProtect's, before the view's own
