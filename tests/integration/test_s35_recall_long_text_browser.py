"""Session 35, in Chromium (tablet, 1024 px): a recall's reason typed as one long word (the longest the form takes,
2000 characters) wraps inside its paragraph and its cell. Before, a 5000-character reason made the recall's page
59 000 px wide and pushed the Status and Started columns of /recalls out of view.

The browser tests' live server is used (tests/browser/conftest.py); Chromium is driven from a thread of its own, so
that this test never shares Playwright's event loop with the browser tests' session-wide Chromium (two synchronous
Playwrights in one thread refuse to start)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mscbatch.recall import services as recalls
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, live_server, sign_in  # noqa: F401 - fixture
from tests.conftest import PASSWORD, missing
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag

pytestmark = pytest.mark.browser


def measured(server: Any) -> dict[str, Any]:
    """What the tablet shows of recall R-1 and of /recalls: page widths, the reason cell's text, the Status and Started
    column headers' boxes and the reason paragraph's box."""
    from playwright.sync_api import sync_playwright

    found: dict[str, Any] = {}
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = chromium.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="Europe/London")
            context.set_default_timeout(10_000)
            page = context.new_page()
            sign_in(page, server, "qa")
            found["client_width"] = VIEWPORT["width"]
            for url in ("/recalls/1", "/recalls"):
                page.goto(f"{server.url}{url}")
                found[url] = page.evaluate("[document.documentElement.scrollWidth, "
                                           "document.documentElement.clientWidth]")
            found["reason_cell"] = page.locator("table.recalls tbody td").nth(1).inner_text()  # From, Reason, ...
            found["headers"] = {name: page.get_by_role("columnheader", name=name).bounding_box()
                                for name in ("Status", "Started")}
            page.goto(f"{server.url}/recalls/1")
            found["reason_paragraph"] = page.locator("main header p", has_text="Reason:").bounding_box()
            context.close()
        finally:
            chromium.close()
    return found


def test_a_long_unbroken_reason_wraps_on_the_recall_page_and_the_recalls_list(live_server: Any) -> None:  # noqa: F811
    if not CHROMIUM.exists():
        missing(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session, state="received")
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id, reason="X" * 2000,
                             password=PASSWORD)
        session.commit()
    finally:
        session.close()
    with ThreadPoolExecutor(max_workers=1) as worker:
        seen = worker.submit(measured, live_server).result(timeout=120)
    for url in ("/recalls/1", "/recalls"):
        scroll, client = seen[url]
        assert scroll <= client, (url, seen[url])  # no sideways scroll of the whole page
    assert "XXXX" in seen["reason_cell"]
    for name, box in seen["headers"].items():  # the columns after the reason stay in view, without scrolling
        assert box is not None and box["x"] + box["width"] <= seen["client_width"], (name, box)
    box = seen["reason_paragraph"]
    assert box is not None and box["width"] <= seen["client_width"] and box["height"] > 100, box  # many lines
