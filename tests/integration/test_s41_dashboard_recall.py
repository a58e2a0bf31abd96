"""The QA dashboard marks a lot under a recall in force (S41 QA review, item 3).

A quarantined lot covered by a recall was listed under "Lots awaiting review" like any other: only its review page
(the release refusal "the lot is covered by recall R-n ...") said so. Every list of lots on the dashboard now marks
it "RECALL R-n", from the query the review page uses (recall.queries.recalls_covering).
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mscbatch.lots.models import Lot
from mscbatch.recall.models import Recall
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _section(page: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}">(.*?)</section>', page, re.S)
    assert found is not None, page
    return " ".join(found.group(1).split())


def _recall(app, client, lot_id: int) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        number = session.get(Lot, lot_id).lot_number
    started = client.post("/recalls/new", data={"scope": "lot", "target": number, "password": PASSWORD,
                                                "reason": "Supplier alert on the culture medium used for this lot"})
    assert started.status_code == 302, started.get_data(as_text=True)[:2000]
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).status == "quarantine"  # a recall keeps a quarantined lot in quarantine
        return session.scalar(select(Recall.id).order_by(Recall.id.desc()).limit(1))


def test_a_quarantined_lot_under_recall_is_marked_in_every_dashboard_list(app, client_as, lot_id):  # type: ignore[no-untyped-def]
    tech, qa = client_as("technician"), client_as("qa")
    entered = tech.post(f"/release/lots/{lot_id}/results", data={  # an open OOS: the lot is in a second list
        "result-test_id": "cd105", "result-value": "94.6", "result-unit": "%", "result-analyst": "Tom QC",
        "result-tested_on": site_today().isoformat()})
    assert entered.status_code == 302
    page = qa.get("/release").get_data(as_text=True)
    assert "RECALL R-" not in page  # nothing under recall yet

    recall_id = _recall(app, qa, lot_id)
    page = qa.get("/release").get_data(as_text=True)
    for section in ("awaiting", "open-oos"):
        words = _section(page, section)
        assert f"RECALL R-{recall_id}" in words, (section, words)
        assert f'href="/recalls/{recall_id}"' in words  # QA opens the recall from the marker
    # the review page says the same recall in the same words
    review = " ".join(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True).split())
    assert f"recall R-{recall_id}" in review

    # a technician sees the marker, without a link to the recall's page
    words = _section(client_as("technician").get("/release").get_data(as_text=True), "awaiting")
    assert f"RECALL R-{recall_id}" in words and "/recalls/" not in words


def test_a_lot_not_covered_by_a_recall_has_no_marker(app, client_as, lot_id):  # type: ignore[no-untyped-def]
    words = _section(client_as("qa").get("/release").get_data(as_text=True), "awaiting")
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).lot_number in words
    assert "RECALL" not in words
