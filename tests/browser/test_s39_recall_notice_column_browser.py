"""s39 look at the demo's R-2 on a landscape tablet (1024 px): the "Clinician notified" column was the ninth, past the
right edge of the table's scroll box, squeezed to a few letters a line, so "Not yet notified" could not be seen
without scrolling sideways. It is now the second column, beside the patient, whole and on screen."""
from __future__ import annotations

from typing import Any

import pytest

from mscbatch.recall import services as recalls
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag

pytestmark = pytest.mark.browser


def test_not_yet_notified_is_seen_beside_the_patient_on_a_landscape_tablet(page: Any, live_server: Any) -> None:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session, state="received")  # the bag left the unit: its patient is to be notified
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                             reason="late positive sterility culture", password=PASSWORD)
    finally:
        session.close()
    page.set_viewport_size({"width": 1024, "height": 768})
    sign_in(page, live_server, "qa")
    page.goto(f"{live_server.url}/recalls/1")
    cell = page.locator("table.notify td.notice").first
    assert "Not yet notified" in cell.inner_text()
    box = cell.bounding_box()
    width = page.evaluate("document.documentElement.clientWidth")
    assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= width, box  # on screen, not scrolled to
    assert box["width"] >= 14 * 16 - 1, box  # read whole (14rem), not a few letters a line
    headers = page.locator("table.notify thead th").all_inner_texts()
    assert headers[:2] == ["Patient", "Clinician notified"], headers
