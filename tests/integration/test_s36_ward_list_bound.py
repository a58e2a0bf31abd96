"""The ward list is bounded (ward_list.MOST), and the bound keeps the bags most urgent to give: it once took the first
MOST bags out of the unit by id and then sorted them by give-by time, so with more bags out than the bound the soonest
to give could be left off the page."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from mscbatch.audit.context import use_case
from mscbatch.custody import handover
from mscbatch.custody.ward_list import bags_on_ward
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import product_catalogue
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import token_of, ward_bag

pytestmark = pytest.mark.usefixtures("users")


def _thaw(app, bag_id: int) -> None:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        handover.thaw(session, user(session, "nurse"), bag_id, location="Ward 3",
                      scan=token_of(session.get(Bag, bag_id)))


def test_more_bags_out_than_the_bound_list_the_soonest_to_give(app, client_as, monkeypatch):
    monkeypatch.setattr("mscbatch.custody.ward_list.MOST", 2)
    first, second, third = (ward_bag(app, state="received").bag_id for _ in range(3))
    for bag_id in (third, second, first):  # the last out of the unit is thawed first: the soonest to give
        _thaw(app, bag_id)
    page = client_as("nurse").get("/ward").get_data(as_text=True)
    assert f'id="on-ward-{third}"' in page and f'id="on-ward-{second}"' in page
    assert f'id="on-ward-{first}"' not in page  # the bound holds
    assert page.index(f'id="on-ward-{third}"') < page.index(f'id="on-ward-{second}"')


def test_the_bound_keeps_the_soonest_give_by_across_products_of_different_limits(app, monkeypatch):
    """Give-by is thaw + the product's limit: a bag thawed later, of a product with a shorter limit, comes first."""
    long_kept, short_kept = ward_bag(app, state="received"), ward_bag(app, state="received")
    for kept in (long_kept, short_kept):  # the first out of the unit is thawed first
        _thaw(app, kept.bag_id)
    with app.extensions["mscbatch.db"].new_session() as session:
        with use_case(session, user(session, "technician"), reason="test: a lot of a second product"):
            session.get(Lot, short_kept.lot_id).product_id = "AT-MSC"
    catalogue = product_catalogue()
    limits = {"UC-MSC": timedelta(hours=10), "AT-MSC": timedelta(minutes=1)}
    changed = replace(catalogue, products=tuple(replace(p, post_thaw_limit=limits.get(p.id, p.post_thaw_limit))
                                                for p in catalogue.products))
    monkeypatch.setattr("mscbatch.lots.queries.product_catalogue", lambda: changed)
    monkeypatch.setattr("mscbatch.custody.ward_list.product_catalogue", lambda: changed, raising=False)
    monkeypatch.setattr("mscbatch.custody.ward_list.MOST", 1)
    with app.extensions["mscbatch.db"].new_session() as session:
        listed = bags_on_ward(session)
    assert [b.bag.id for b in listed] == [short_kept.bag_id]
