"""S41 in real Chromium: the ward page left open on a tablet in portrait (768x1024) shows, at its top and without a
reload, the red banner of a running infusion the ward must stop now (a bag recalled since the page loaded; a reaction
of grade 4 recorded on it), naming the patient and the bag, with a link to its infusion page, and "STOP" leads the
page's title; the banner is said once (#running-announce), not at every refresh, and goes when the infusion ends."""
from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.browser.test_review5_ward_browser import _running, _session
from tests.browser.test_s40_ward_running_refresh_browser import _COUNT_ANNOUNCEMENTS, _recall
from tests.integration.patient_factories import user

pytestmark = pytest.mark.browser


def _react(live_server: Any, infusion_id: int, grade: int) -> None:
    session = _session(live_server)
    try:
        from mscbatch.custody import infusions

        infusions.record_reaction(session, user(session, "nurse"), infusion_id,
                                  infusions.ReactionDetails("Infusion related reaction", grade, "rigors"))
    finally:
        session.close()


def test_s41_the_banner_comes_at_the_top_after_the_refresh(page: Any, live_server: Any) -> None:
    live_server.app.config["CUSTODY_WARD_REFRESH_SECONDS"] = 1
    page.set_viewport_size({"width": 768, "height": 1024})
    ward, infusion_id = _running(live_server)
    other, other_id = _running(live_server)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    banner = page.locator("#running-banner")
    expect(banner).to_be_hidden()
    assert page.title().startswith("Ward scanning")
    page.evaluate(_COUNT_ANNOUNCEMENTS)
    page.locator("#scan").fill("typed, not sent")

    _recall(live_server, ward.lot_id)
    expect(banner).to_be_visible(timeout=8_000)  # no reload: the list's refresh brings it
    expect(banner).to_contain_text("STOP THE INFUSION NOW")
    expect(banner).to_contain_text("RECALLED")
    expect(banner.locator(f"#banner-{infusion_id} a")).to_have_attribute("href", f"/ward/infusions/{infusion_id}")
    expect(page).to_have_title("STOP · Ward scanning · mscbatch")
    assert banner.get_attribute("role") is None  # said once by the live region, not as an alert at each refresh
    box = banner.bounding_box()
    assert box is not None and box["y"] + box["height"] < 1024, box  # above the fold in portrait

    _react(live_server, other_id, 4)
    expect(banner.locator(f"#banner-{other_id}")).to_contain_text("Grade 4 reaction: stop the infusion",
                                                                    timeout=8_000)
    page.wait_for_timeout(2_500)  # more refreshes: each STOP said once
    said = page.evaluate("window.s40Said")
    assert len(said) == 2 and all(s.startswith("STOP THE INFUSION NOW: bag") for s in said), said
    assert "Grade 4 reaction" in said[1]
    expect(page.locator("#scan")).to_have_value("typed, not sent")
    assert page.evaluate("window.s40NotReloaded") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ward-s41-banner.png"))
