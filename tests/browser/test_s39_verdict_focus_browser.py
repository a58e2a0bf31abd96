"""Review s39 in real Chromium: at 200 % zoom on a 1024x768 ward tablet (a 512x384 CSS viewport) the header takes
more than half the screen, and the bedside check's verdict (MATCHES or STOP) was below the fold. The result page now
brings its verdict into view and gives it the focus on load (js/verdict-focus.js: no inline script, CSP)."""
from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.browser.test_ward_browser import _scan
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.browser

ZOOMED = {"width": 512, "height": 384}  # 1024x768 at 200 %


def _in_view_and_focused(page: Any, heading: Any) -> None:
    expect(heading).to_be_focused()
    box = heading.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= ZOOMED["height"], box


def test_the_verdict_is_in_view_and_focused_after_the_scans_at_200_percent(page: Any, live_server: Any) -> None:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session)
    finally:
        session.close()
    page.set_viewport_size(ZOOMED)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    _scan(page, ward.wristband)
    expect(page.locator("#scan-status")).to_contain_text("Wristband scanned")
    _scan(page, ward.token)
    page.wait_for_url(f"{live_server.url}/ward/checks/*")
    page.wait_for_load_state("load")
    _in_view_and_focused(page, page.get_by_role("heading", name="MATCHES", exact=True))
    page.screenshot(path=str(ARTIFACTS / "s39-verdict-200-percent.png"), full_page=False)

    # a STOP too: the same bag with another patient's wristband
    page.goto(f"{live_server.url}/ward")
    _scan(page, "WB-NOT-A-BAND")
    expect(page.locator("#scan-status")).to_contain_text("Wristband scanned")
    _scan(page, ward.token)
    page.wait_for_url(f"{live_server.url}/ward/checks/*")
    page.wait_for_load_state("load")
    _in_view_and_focused(page, page.get_by_role("heading", name="STOP", exact=True))


def test_stop_the_infusion_now_leads_and_is_focused_at_200_percent(page: Any, live_server: Any) -> None:
    from mscbatch.custody import infusions
    from mscbatch.recall import services as recalls

    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session)
        check_id = checked_and_confirmed(session, ward)
        infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        infusion_id = infusion.id
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                             reason="late positive sterility culture", password=PASSWORD)
    finally:
        session.close()
    page.set_viewport_size(ZOOMED)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward/checks/{check_id}")
    heading = page.get_by_role("heading", name="STOP THE INFUSION NOW")
    _in_view_and_focused(page, heading)
    page.locator("#running-link").click()
    page.wait_for_url(f"{live_server.url}/ward/infusions/{infusion_id}")
    expect(page.locator("#stop-running-word")).to_have_text("STOP THE INFUSION NOW")
