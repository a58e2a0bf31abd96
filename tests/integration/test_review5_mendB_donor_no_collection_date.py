"""Review 5 (mendB): a donor with no collection date (none planned, no lot) has no day a sample's window counts
from. A negative result is not shown as a green "negative" that counts, while the checklist says the marker is
missing: it says "not counted: no collection date recorded"."""
# ruff: noqa: F811 (db_session is the imported fixture, named as a parameter by each test)
from __future__ import annotations

import html
import re

from tests.integration.test_donors import db_session, page_of, register_through_the_form  # noqa: F401
from tests.integration.test_review5_donors_page import _rows


def test_a_negative_without_a_collection_date_is_not_counted(app, users, client_as, db_session):
    tech = client_as("technician")
    registered = register_through_the_form(tech, planned_collection_date="")
    assert registered.status_code == 302, registered.get_data(as_text=True)[:1000]
    donor_id = int(registered.headers["Location"].rsplit("/", 1)[1])
    recorded = tech.post(f"/donors/{donor_id}/results", data={
        "result-marker": "anti_hiv_1_2", "result-result": "negative", "result-sample_date": "2000-01-01",
        "result-lab_reference": "OLD-1"})
    assert recorded.status_code == 302, recorded.get_data(as_text=True)[:1000]
    row = _rows(page_of(tech, donor_id))[0]
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split())
    assert "status-eligible" not in row
    assert "outside-window" in row
    assert "negative not counted: no collection date recorded" in words
