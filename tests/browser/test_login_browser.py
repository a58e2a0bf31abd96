"""Sign in and out in a real browser, with CSRF on: each role sees its own navigation, and no other."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from mscbatch.auth.services import BAD_CREDENTIALS
from tests.browser.conftest import ARTIFACTS, sign_in

pytestmark = pytest.mark.browser

NAV_ENTRIES = ("Home", "Audit trail", "Users", "My account")
SEES = {
    "technician": {"Home", "My account"},
    "nurse": {"Home", "My account"},
    "qa": {"Home", "Audit trail", "My account"},
    "admin": {"Home", "Audit trail", "Users", "My account"},
}


@pytest.mark.parametrize("username", list(SEES))
def test_each_role_sees_its_navigation_and_signs_out(page, live_server, username):
    sign_in(page, live_server, username)

    expect(page.get_by_role("status")).to_contain_text(f"Signed in as {username.title()}.")
    nav = page.get_by_role("navigation", name="Main")
    for entry in NAV_ENTRIES:
        expect(nav.get_by_role("link", name=entry, exact=True)).to_have_count(1 if entry in SEES[username] else 0)
    if username == "technician":
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "home-technician.png"), full_page=True)

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)

    page.goto(f"{live_server.url}/account")
    expect(page).to_have_url(re.compile(re.escape(f"{live_server.url}/login?next=") + r".*account"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_wrong_password_is_shown_next_to_the_password_field(page, live_server):
    page.goto(f"{live_server.url}/login")
    page.get_by_label("User name").fill("qa")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()

    password = page.get_by_label("Password")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_accessible_description(BAD_CREDENTIALS)
    expect(page.locator(".field.has-error .error")).to_have_text(BAD_CREDENTIALS)
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    assert page.url.startswith(f"{live_server.url}/login")
