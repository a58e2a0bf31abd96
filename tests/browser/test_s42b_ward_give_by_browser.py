"""Session 42b in real Chromium: the ward page's "Give by" of a thawed bag counts its minutes down on a list left
open and, once the post-thaw limit passes, says the list's STOP words in its place, without a reload
(js/thaw-countdown.js, the bedside result page's script, driven here by Playwright's clock). Screenshot:
test-artifacts/s42b-ward-give-by-passed.png."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from mscbatch.custody.models import CustodyEvent
from mscbatch.lots.models import Lot
from mscbatch.lots.queries import product_of
from mscbatch.site import local_parts
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.integration.test_custody_support import prescribed_bag

pytestmark = pytest.mark.browser


def test_a_give_by_left_open_counts_down_then_says_past_without_a_reload(page: Any, live_server: Any) -> None:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        thawed = prescribed_bag(session)  # thawed just now: 60 minutes (config/products.toml)
        later = prescribed_bag(session, state="received")
        thaw = session.scalar(select(CustodyEvent.occurred_at).where(CustodyEvent.bag_id == thawed.bag_id,
                                                                     CustodyEvent.kind == "thawed"))
        with live_server.app.app_context():
            local, utc = local_parts(thaw + product_of(session.get(Lot, thawed.lot_id)).post_thaw_limit)
    finally:
        session.close()
    sign_in(page, live_server, "nurse")
    page.clock.install(time=datetime.now(UTC))  # the page's time flows as usual until fast-forwarded
    page.goto(f"{live_server.url}/ward")
    cell = page.locator(f"#on-ward-{thawed.bag_id} td[data-label='Give by']")
    expect(cell.locator(".minutes-left")).to_have_text(re.compile(r"^(59|60) minutes left$"))
    expect(cell).to_contain_text(local)
    expect(cell).not_to_contain_text("PAST")

    page.clock.fast_forward("10:00")
    expect(cell.locator(".minutes-left")).to_have_text(re.compile(r"^(49|50) minutes left$"))
    page.clock.fast_forward("49:00")
    expect(cell.locator(".minutes-left")).to_have_text(re.compile(r"^(less than 1 minute|1 minute) left$"))
    expect(cell).not_to_contain_text("PAST")

    page.clock.fast_forward("02:00")  # past the limit: the list's STOP words, the bag's own time in them
    expect(cell).to_have_text(f"PAST ITS POST-THAW LIMIT ({local} ({utc})): do not give it. Discard it (Return or "
                              "discard, above).")
    expect(cell.locator("strong.flag.flag-stop")).to_be_visible()
    expect(cell.locator(".minutes-left")).to_have_count(0)
    expect(page.locator(f"#on-ward-{later.bag_id} td[data-label='Give by']")).to_have_text("— (thaw it first)")
    ARTIFACTS.mkdir(exist_ok=True)
    cell.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "s42b-ward-give-by-passed.png"))

    # reloaded with the tablet's clock 61 minutes ahead (only the page's clock moved): counted from the server's
    # time again, as the bedside page is
    page.reload()
    expect(cell.locator(".minutes-left")).to_have_text(re.compile(r"^(58|59) minutes left$"))
