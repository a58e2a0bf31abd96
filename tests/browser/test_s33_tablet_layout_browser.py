"""Tablet walkthrough, session 33: on a portrait tablet (768 px) a recall's Action column, its instructions and the
discard form, was squeezed to about 150 px at the right edge and needed sideways scrolling: each affected bag and
each patient to notify is now a card, every cell named and inside the screen. And the links a nurse taps in the
infusions table were 20 px tall."""
from __future__ import annotations

from typing import Any

import pytest

from mscbatch.recall import services as recalls
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag

pytestmark = pytest.mark.browser


def test_a_recalls_bags_and_patients_fit_a_portrait_tablet(page: Any, live_server: Any) -> None:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session, state="received")  # the patient is to be notified: the bag left the unit
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                             reason="late positive sterility culture", password=PASSWORD)
    finally:
        session.close()
    page.set_viewport_size({"width": 768, "height": 1024})
    sign_in(page, live_server, "qa")
    page.goto(f"{live_server.url}/recalls/1")
    width = page.evaluate("document.documentElement.clientWidth")
    for cell in page.locator("table.affected td[data-label='Action'], table.notify [data-label]").all():
        box = cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert box["width"] > 500, box  # the full width of the card, not a squeezed column
    actions = page.locator("table.affected td[data-label='Action']")
    assert actions.count() >= 1
    label = page.evaluate("getComputedStyle(document.querySelector(\"table.affected td[data-label='Action']\"), "
                          "'::before').content")
    assert label == '"Action: "'
    page.set_viewport_size({"width": 1280, "height": 900})  # on a desktop the same tables stay tables
    for table in ("table.affected", "table.notify"):
        assert page.evaluate(f"getComputedStyle(document.querySelector('{table}')).display") == "table", table


def test_the_infusion_links_a_nurse_taps_are_44_px_tall(page: Any, live_server: Any) -> None:
    """The same walkthrough: "Infusion record" and the lot link in the infusions table were 20 px tall."""
    from mscbatch.custody import infusions
    from tests.integration.test_custody_support import KEY, checked_and_confirmed

    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
        infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                 bag_scan=ward.token, label_key=KEY)
    finally:
        session.close()
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/patients/{ward.patient_id}")
    links = page.locator("table.infusions a").all()
    assert links, "no link in the infusions table"
    for link in links:
        box = link.bounding_box()
        assert box is not None and box["height"] >= 44, (link.inner_text(), box)
