"""S40: the two pages that say a form was NOT saved mark it for js/form-draft.js ([data-unsaved-form]), which keeps
what the form held for its page to put back; the form-expired page (CSRF token of an ended session) leads back to
the form's page, never to another site's. Through the web client, on SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re

import pytest

from tests.conftest import PASSWORD, make_app
from tests.integration.test_review5_authpriv_session import _idle


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.get_data(as_text=True))


@pytest.mark.usefixtures("users")
def test_the_sign_in_page_after_a_refused_form_marks_it_unsaved(db_session, client_as):
    nurse = client_as("nurse")
    assert nurse.get("/ward").status_code == 200
    _idle(db_session)
    sent = nurse.post("/ward/event", headers={"Referer": "http://localhost/ward"}, data={"bag": "X", "action": "receive"})
    shown = _text(nurse.get(sent.headers["Location"]))
    marked = re.search(r'<div class="flash flash-error" role="alert" data-unsaved-form>([^<]*)</div>', shown)
    assert marked and "What you were doing was NOT saved" in marked.group(1)


def test_a_page_opened_after_the_idle_timeout_is_not_marked(db_session, client_as, users):  # type: ignore[no-untyped-def]
    nurse = client_as("nurse")
    _idle(db_session)
    sent = nurse.get("/ward")
    assert "data-unsaved-form" not in _text(nurse.get(sent.headers["Location"]))  # nothing was sent: nothing kept


@pytest.fixture
def csrf_app(database_url, users):  # type: ignore[no-untyped-def]
    app = make_app(database_url, WTF_CSRF_ENABLED=True)
    yield app
    app.extensions["mscbatch.db"].engine.dispose()


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


@pytest.mark.parametrize(("referer", "back"), [
    ("http://localhost/ward", "/ward"),
    ("http://elsewhere.example/ward", None),  # another site's page: no link to it
    (None, None)])
def test_the_form_expired_page_leads_back_to_the_form(csrf_app, referer, back):  # type: ignore[no-untyped-def]
    from tests.conftest import add_user

    add_user(csrf_app, "nurse7", ["nurse"])
    client = csrf_app.test_client()
    token = _csrf(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": "nurse7", "password": PASSWORD, "csrf_token": token}).status_code == 302
    headers = {"Referer": referer} if referer else {}
    answer = client.post("/ward/event", data={"bag": "X", "action": "receive", "csrf_token": "stale"}, headers=headers)
    page = _text(answer)
    assert answer.status_code == 400
    assert re.search(r'<section class="error-page" role="alert" data-unsaved-form>', page)
    assert "Nothing was saved" in page
    link = re.search(r'<a class="button big primary" id="back-to-form" href="([^"]+)">Back to the form</a>', page)
    assert (link.group(1) if link else None) == back
    assert ("What you typed is put back into it" in page) == (back is not None)
