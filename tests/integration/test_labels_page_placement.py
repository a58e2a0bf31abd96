"""The labels page says of a bag frozen but never put in a box that it is not placed yet, as the lot page does
("not placed yet"): a bare "stored" badge read as "in stock" for a bag nobody could fetch."""
from __future__ import annotations

from typing import Any

from mscbatch.donors.models import Donor
from tests.integration.lot_factories import approved_adipose_donor
from tests.integration.patient_factories import lot_with_bags, user


def _lot(app: Any, placed: bool) -> int:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        donor = session.get(Donor, approved_adipose_donor(session))
        [bag] = lot_with_bags(session, user(session, "technician"), donor, bags=1, status="quarantine",
                              labelled=False, placed=placed)
        return int(bag.lot_id)
    finally:
        session.close()


def _row(client: Any, lot_id: int) -> str:
    page = client.get(f"/labels/lots/{lot_id}").get_data(as_text=True)
    start = page.index('<tr data-bag="')
    return page[start:page.index("</tr>", start)]


def test_a_bag_never_placed_in_a_box_says_so_on_the_labels_page(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    client = client_as("technician")
    assert "not placed in a box yet" in _row(client, _lot(app, placed=False))
    assert "not placed in a box yet" not in _row(client, _lot(app, placed=True))
