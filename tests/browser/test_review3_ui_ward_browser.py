"""UI review 3 #5 in real Chromium: a label focuses the field of its own form. The ward page's dispatch form had a
"Bag label" label for the id "bag", also the scan form's field (tapping it put the cursor in the scan form), and a
user page's Disable form had a "Reason" label for the Roles form's field."""
from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


def test_the_dispatch_forms_labels_focus_the_dispatch_forms_fields(page, live_server):
    sign_in(page, live_server, "technician")
    page.goto(f"{live_server.url}/ward")
    dispatch = page.locator("section.ward-dispatch")
    dispatch.locator("label", has_text="Bag label").click()
    expect(dispatch.locator("input[name=bag]")).to_be_focused()
    dispatch.locator("label", has_text="From (location)").click()
    expect(dispatch.locator("input[name=location]")).to_be_focused()
    page.locator("section.ward-scan label", has_text="Bag label (QR code").click()
    expect(page.locator("#ward-form input[name=bag]")).to_be_focused()


def _locked(live_server: Any, username: str) -> int:
    with live_server.app.extensions["mscbatch.db"].engine.begin() as connection:
        connection.execute(text("UPDATE user_account SET failed_logins = 5, locked_out_at = created_at "
                                "WHERE username = :name"), {"name": username})
        return int(connection.execute(text("SELECT id FROM user_account WHERE username = :name"),
                                      {"name": username}).scalar_one())


def test_each_reason_label_of_a_user_page_focuses_its_own_forms_field(page, live_server):
    user_id = _locked(live_server, "nurse2")  # Roles, Unlock and Disable: three reasons
    sign_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/admin/users/{user_id}")
    for action in ("unlock", "disable"):
        form = page.locator(f"#{action}-form")
        form.locator("label", has_text="Reason").click()
        expect(form.locator("textarea[name=reason]")).to_be_focused()
    page.locator("#disable-form").get_by_role("button", name="Disable account").click()
    disable = page.locator("#disable-form")
    expect(disable.locator(".error")).to_contain_text("Give a reason")
    expect(page.locator("#unlock-form .error")).to_have_count(0)
