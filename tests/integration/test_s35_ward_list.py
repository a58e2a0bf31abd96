"""The ward page lists the bags out of the unit (sent, received, thawed) with their patient and, for a thawed bag, the
clock time by which to give it (its thaw + the product's post-thaw limit): the thaw message said that time once, and a
nurse coming back to the page, or the next shift, had nothing. A bag past its limit says so and what to do."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from mscbatch.custody.models import CustodyEvent
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import product_of
from mscbatch.patients.models import Patient
from mscbatch.site import local_parts
from tests.integration.test_custody_support import ward_bag

pytestmark = pytest.mark.usefixtures("users")


def _row(page: str, bag_id: int) -> str:
    found = re.search(rf'<tr id="on-ward-{bag_id}">(.*?)</tr>', page, re.S)
    assert found, page[:3000]
    return found.group(1)


def test_the_ward_lists_bags_out_of_the_unit_with_the_time_to_give_a_thawed_one(app, client_as):
    thawed, received, sent = ward_bag(app), ward_bag(app, state="received"), ward_bag(app, state="dispatched")
    in_stock = ward_bag(app, state="allocated")
    with app.extensions["mscbatch.db"].new_session() as session:
        thaw = session.scalar(select(CustodyEvent.occurred_at).where(CustodyEvent.bag_id == thawed.bag_id,
                                                                     CustodyEvent.kind == "thawed"))
        limit = product_of(session.get(Lot, thawed.lot_id)).post_thaw_limit
        code = session.get(Patient, thawed.patient_id).code
        din = session.get(Bag, thawed.bag_id)
        shown = f"{din.din[:5]} {din.din[5:7]} {din.din[7:]} {din.check_character}"
    page = client_as("nurse").get("/ward").get_data(as_text=True)
    row = _row(page, thawed.bag_id)
    local, utc = local_parts(thaw + limit)
    assert shown in row and code in row and "Thawed" in row
    assert local in row and utc in row and "PAST" not in row  # give by: its thaw + the post-thaw limit
    assert "Received, still frozen" in _row(page, received.bag_id)
    assert "not received yet" in _row(page, sent.bag_id)
    assert f'id="on-ward-{in_stock.bag_id}"' not in page  # still at the unit
    # the thawed bag comes first: the soonest to give
    assert page.index(f'id="on-ward-{thawed.bag_id}"') < page.index(f'id="on-ward-{received.bag_id}"') \
        < page.index(f'id="on-ward-{sent.bag_id}"')


def test_a_bag_past_its_post_thaw_limit_says_so_and_what_to_do(app, client_as, monkeypatch):
    thawed = ward_bag(app)
    nurse = client_as("nurse")
    later = utcnow() + timedelta(hours=3)  # custody events are append-only: the page is read three hours later
    monkeypatch.setattr("mscbatch.custody.views.utcnow", lambda: later)
    row = _row(nurse.get("/ward").get_data(as_text=True), thawed.bag_id)
    assert "PAST ITS POST-THAW LIMIT" in row and "do not give it" in row
