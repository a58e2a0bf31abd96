"""The label check page (/v/<token>, what a phone camera opens from a label) of a bag whose content was corrected
after its label was printed: the label in hand shows the old volume, cells or DMSO. The lot and labels pages said
"Label out of date" and the dispatch refused it, but the check page said "Genuine label" and nothing else. It now
says DO NOT USE with why, until a label is printed after the correction."""
from __future__ import annotations

import html
from typing import Any

from sqlalchemy import select

from mscbatch.labelling.services import LABEL_OUT_OF_DATE
from mscbatch.lots.models import Bag
from tests.integration.test_custody_support import token_of
from tests.integration.test_release_support import cord_quarantine_lot, seed_quarantine_lot

REASON = "cells per mL copied from the wrong line of the counting sheet"


def _page(client: Any, token: str) -> str:
    answer = client.get(f"/v/{token}")
    assert answer.status_code == 200, answer.status_code
    return html.unescape(answer.get_data(as_text=True))


def test_a_label_printed_before_a_content_correction_is_not_vouched_for(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        lot_id = cord_quarantine_lot(session)
        session.commit()
        bags = list(session.scalars(select(Bag).where(Bag.lot_id == lot_id).order_by(Bag.bag_number)))
        corrected, other = bags[0].id, bags[1].id
        tokens = {bag.id: token_of(bag) for bag in bags}
    tech = client_as("technician")
    assert tech.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"}).status_code == 200
    public = app.test_client()  # anyone may scan a label
    assert LABEL_OUT_OF_DATE not in _page(public, tokens[corrected])

    fixed = tech.post(f"/lots/{lot_id}/bags/correction", data={
        "bagfix-bag_id": corrected, "bagfix-volume_ml": "25", "bagfix-cells_per_ml": "2.4", "bagfix-dmso_percent": "10",
        "bagfix-reason": REASON})
    assert fixed.status_code in (302, 303), fixed.get_data(as_text=True)

    page = _page(public, tokens[corrected])
    assert "Genuine label — DO NOT USE" in page, page
    assert LABEL_OUT_OF_DATE in page
    assert LABEL_OUT_OF_DATE not in _page(public, tokens[other])  # its label still shows what it holds

    reprinted = tech.post(f"/labels/lots/{lot_id}/print", data={"print_format": "bag", "bag_id": corrected,
                                                               "reason": "content corrected: 2.4 x10^6/mL"})
    assert reprinted.status_code == 200, reprinted.get_data(as_text=True)
    assert LABEL_OUT_OF_DATE not in _page(public, tokens[corrected])
