"""S40 in real Chromium: a reaction typed on the running infusion page after the session idled out is refused (nothing
recorded) and the nurse signs in again; back on the page, the words typed are in the form again, marked NOT recorded
yet (js/form-draft.js). Sent again, the reaction is recorded once and the words are not put back a second time.
Another person signing in on the same tablet gets nothing of it."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from mscbatch.custody.models import InfusionReaction
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_review5_ward_browser import _running, _session
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

WORDS = "flushed and itchy 20 min after the start, 38.2 C; infusion slowed"


def _reactions(live_server) -> list[tuple[str, int, str | None]]:  # type: ignore[no-untyped-def]
    session = _session(live_server)
    try:
        return [(r.ctcae_term, r.grade, r.description) for r in session.scalars(select(InfusionReaction))]
    finally:
        session.close()


def _sign_in_on_login_page(page, username: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _open_and_idle_out(page, live_server, username: str = "nurse") -> int:  # type: ignore[no-untyped-def]
    app = live_server.app
    app.config["CUSTODY_STOP_POLL_SECONDS"] = 1
    _ward, infusion_id = _running(live_server)
    page.goto(f"{live_server.url}/login")
    _sign_in_on_login_page(page, username)
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/ward/infusions/{infusion_id}")
    expect(page.locator("#infusion-ended")).to_have_text("running")
    app.config["IDLE_TIMEOUT_MINUTES"] = 0.02  # about a second: the tablet is left alone and idles out
    expect(page.locator("#stop-watch-signed-out")).to_be_visible(timeout=10_000)
    app.config["IDLE_TIMEOUT_MINUTES"] = 15
    return infusion_id


def _type_reaction(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("CTCAE term").fill("Infusion related reaction")
    page.get_by_label("Grade").select_option("2")
    page.get_by_label("What happened (free text)").fill(WORDS)


def _send_refused(page) -> None:  # type: ignore[no-untyped-def]
    """Sent after the session ended (the page's STOP poll already found it so, and the form's CSRF token went with
    the session): "Nothing was saved", and the way back to the form, through the sign-in page."""
    page.get_by_role("button", name="Record the reaction").click()
    refused = page.locator("[data-unsaved-form]")
    expect(refused).to_contain_text("Nothing was saved")
    expect(refused).to_contain_text("What you typed is put back into it")
    refused.get_by_role("link", name="Back to the form").click()
    page.wait_for_url(re.compile(r"/login"))


def test_a_reaction_refused_for_the_ended_session_comes_back_after_signing_in(page, live_server):  # type: ignore[no-untyped-def]
    infusion_id = _open_and_idle_out(page, live_server)
    _type_reaction(page)
    _send_refused(page)
    assert _reactions(live_server) == []
    _sign_in_on_login_page(page, "nurse")
    page.wait_for_url(f"{live_server.url}/ward/infusions/{infusion_id}")
    note = page.locator("#draft-restored-reaction")
    expect(note).to_be_visible()
    expect(note).to_contain_text("NOT recorded yet")
    expect(page.get_by_label("CTCAE term")).to_have_value("Infusion related reaction")
    expect(page.get_by_label("Grade")).to_have_value("2")
    expect(page.get_by_label("What happened (free text)")).to_have_value(WORDS)
    expect(page.get_by_label("CTCAE term")).to_be_focused()
    expect(page.locator("#draft-restored-end")).to_have_count(0)  # nothing was typed into the end form
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "infusion-reaction-put-back.png"), full_page=True)
    page.get_by_role("button", name="Record the reaction").click()
    expect(page.get_by_text("Reaction recorded. Tell the clinician.")).to_be_visible()
    assert _reactions(live_server) == [("Infusion related reaction", 2, WORDS)]
    expect(page.locator("#draft-restored-reaction")).to_have_count(0)
    expect(page.get_by_label("What happened (free text)")).to_have_value("")
    page.reload()  # recorded: never put back again
    expect(page.locator("#draft-restored-reaction")).to_have_count(0)
    expect(page.get_by_label("What happened (free text)")).to_have_value("")


def test_the_sign_in_link_of_the_signed_out_note_keeps_what_was_typed(page, live_server):  # type: ignore[no-untyped-def]
    infusion_id = _open_and_idle_out(page, live_server)
    page.get_by_label("Volume infused (mL)").fill("37.5")
    page.locator("#stop-watch-signed-out").get_by_role("link", name="Sign in again").click()
    page.wait_for_url(re.compile(r"/login"))
    _sign_in_on_login_page(page, "nurse")
    page.wait_for_url(f"{live_server.url}/ward/infusions/{infusion_id}")
    expect(page.locator("#draft-restored-end")).to_be_visible()
    expect(page.get_by_label("Volume infused (mL)")).to_have_value("37.5")


def test_another_person_signing_in_on_the_tablet_gets_none_of_it(page, live_server):  # type: ignore[no-untyped-def]
    infusion_id = _open_and_idle_out(page, live_server)
    _type_reaction(page)
    _send_refused(page)
    _sign_in_on_login_page(page, "nurse2")
    page.wait_for_url(re.compile(r"/ward/infusions/\d+$"))
    assert page.url.endswith(f"/ward/infusions/{infusion_id}")
    expect(page.locator("#draft-restored-reaction")).to_have_count(0)
    expect(page.get_by_label("What happened (free text)")).to_have_value("")
    assert page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('mscbatch-draft:'))") == []
