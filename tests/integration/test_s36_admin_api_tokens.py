"""Session 36, administrator walkthrough (2, 3, 5): My account's API tokens. Before: a reload of the answer to
"Create token" (the browser sends the form again) created a second token; the tokens table, seven columns in a
half-width card, put the Revoke button outside its card at 1280 px; "Token revoked" did not say which one.
Through the web client, on SQLite and PostgreSQL (the layout itself was checked with screenshots at 1280 and 768
px: four columns in a card as wide as the page)."""
from __future__ import annotations

import html
import re

from tests.conftest import PASSWORD
from tests.integration.test_auth_account_safety import _tokens


def _form_key(page: str) -> str:
    return re.search(r'id="newest_token" name="newest_token" type="hidden" value="([^"]*)"', page).group(1)


def _secret(page: str) -> str | None:
    found = re.search(r'<code class="token" id="new-token">([^<]+)</code>', page)
    return found.group(1) if found else None


def test_a_reload_of_the_answer_makes_no_second_token_and_shows_no_secret(app, users, client_as):
    nurse = client_as("nurse")
    form = {"name": "ward 3 scanner", "password": PASSWORD,
            "newest_token": _form_key(nurse.get("/account").get_data(as_text=True))}
    made = nurse.post("/account/tokens", data=form)
    assert made.status_code == 201
    secret = _secret(made.get_data(as_text=True))
    assert secret is not None and secret.startswith("msc_")
    [name_box] = re.findall(r'<input[^>]*name="name"[^>]*>', made.get_data(as_text=True))
    assert "ward 3 scanner" not in name_box, name_box  # made: the box is emptied, not left to make a second one
    [token] = _tokens(app, "nurse")

    again = nurse.post("/account/tokens", data=form)  # the reload: the same form, sent again
    assert again.status_code == 303 and again.headers["Location"].endswith("/account")
    assert [t.id for t in _tokens(app, "nurse")] == [token.id]
    page = nurse.get("/account").get_data(as_text=True)
    assert _secret(page) is None and secret not in page
    assert (f"No second token was created: token 'ward 3 scanner' ({token.prefix}…) was created since this form "
            "was opened") in html.unescape(page)

    # the page opened afresh carries the new key: a second token is made on purpose
    form["newest_token"] = _form_key(page)
    assert nurse.post("/account/tokens", data=form).status_code == 201
    assert len(_tokens(app, "nurse")) == 2


def test_the_tokens_table_has_four_columns_in_a_card_of_its_own_with_the_revoke_button_in_it(app, users, client_as):
    nurse = client_as("nurse")
    key = _form_key(nurse.get("/account").get_data(as_text=True))
    assert nurse.post("/account/tokens", data={"name": "ward 3 scanner", "password": PASSWORD,
                                               "newest_token": key}).status_code == 201
    page = nurse.get("/account").get_data(as_text=True)
    listed = re.search(r'<section id="api-token-list">(.*?)</section>', page, re.S)
    assert listed is not None, "the tokens table is in a card of its own, outside the two half-width cards"
    table = listed.group(1)
    assert re.findall(r"<th>([^<]*)</th>", table) == ["Token", "Created and expires", "Last used", "Status"]
    row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", table, re.S).group(1)
    assert row.count("<td") == 4 and 'aria-label="Revoke ward 3 scanner">Revoke</button>' in row


def test_a_revoked_token_is_named_in_the_message(app, users, client_as):
    nurse = client_as("nurse")
    key = _form_key(nurse.get("/account").get_data(as_text=True))
    nurse.post("/account/tokens", data={"name": "ward 3 scanner", "password": PASSWORD, "newest_token": key})
    [token] = _tokens(app, "nurse")
    page = nurse.post(f"/account/tokens/{token.id}/revoke", follow_redirects=True).get_data(as_text=True)
    assert (f"Token 'ward 3 scanner' ({token.prefix}…) revoked: scanners using it are refused from now on."
            in html.unescape(page))
