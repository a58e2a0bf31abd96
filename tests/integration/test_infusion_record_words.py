"""The ended infusion's record says the volume given beside the volume prescribed, and its reason once. Before, a bag
whose prescription drew 12.5 mL of its 25 mL, given whole, read "Volume infused 25 mL of 25 mL MORE THAN PRESCRIBED":
"of 25 mL" was the bag's volume, and the line read as the whole dose given as prescribed. And the reason read
"Why: Why, as recorded at the end: ...", its label said twice."""
from __future__ import annotations

import html
import re

import pytest

from tests.integration.test_review5_ward_infusion_end import _running

pytestmark = pytest.mark.usefixtures("users")


def _record(page: str) -> str:
    """The Record list of the infusion's page, as read (tags out, one space)."""
    at = page.index('<dl class="facts infusion-record">')
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page[at:page.index("</dl>", at)])))


def test_more_than_a_partial_draw_is_said_beside_the_volume_prescribed_and_its_reason_once(app, client_as):
    _ward, infusion_id = _running(app, last=True)  # 12.5 mL prescribed of its 25 mL
    nurse = client_as("nurse")
    ended = nurse.post(f"/ward/infusions/{infusion_id}/end",
                       data={"volume_ml": "25", "reason": "pump programmed for the whole bag"})
    assert ended.status_code == 302, ended.get_data(as_text=True)[:2000]
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    record = _record(page)
    assert ("Volume infused 25 mL infused (12.5 mL prescribed from this 25 mL bag): MORE THAN PRESCRIBED: tell the "
            "clinician" in record), record
    assert "25 mL of 25 mL" not in record
    assert 'id="over-prescription"' in page  # still the flag the clinician looks for
    # the reason under its label, said once
    assert " Why pump programmed for the whole bag (recorded at the end)" in record, record
    assert record.count("Why") == 1 and "as recorded at the end" not in record


def test_the_prescribed_volume_given_is_said_without_a_flag(app, client_as):
    _ward, infusion_id = _running(app, last=True)
    nurse = client_as("nurse")
    assert nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "12.5",
                                                                  "reason": "pump set fast"}).status_code == 302
    record = _record(nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True))
    assert "Volume infused 12.5 mL infused (12.5 mL prescribed from this 25 mL bag) " in record, record
    assert "PRESCRIBED:" not in record and "MORE THAN" not in record
