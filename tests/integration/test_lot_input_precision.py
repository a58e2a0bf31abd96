"""Lot input that was silently changed or broke the page (review C): a box position typed with a superscript or
Arabic-Indic digit (a 500, or stored as another position), a bag volume or DMSO % or tissue amount with more
decimals than the database keeps (rounded, differently on SQLite and PostgreSQL; 0.004 g stored as 0.00), and a
collection time that does not exist in the site's time zone (the spring clock change: shown an hour later).

Each is refused with a message naming the field, and nothing is stored."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from mscbatch.core.culture import BagPlan
from mscbatch.errors import ValidationFailed
from mscbatch.lots import bags, services
from mscbatch.lots.models import Bag, Lot
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    at,
    box,
    cryopreserved_lot,
    harvested_lot,
)
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)


def _count(session, model) -> int:  # type: ignore[no-untyped-def]
    """Rows now, read in a transaction of its own (ended: an open read would hold SQLite's lock)."""
    session.rollback()
    try:
        return session.scalar(select(func.count()).select_from(model))
    finally:
        session.rollback()


# -- box positions ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("typed", ["\u00b2", "A\u00b9", "\u0661", "B\uff13"])  # ², A¹, Arabic-Indic 1, B + fullwidth 3
def test_a_position_typed_with_other_than_plain_digits_is_refused_naming_the_field(app, users, db_session,  # noqa: F811
                                                                                  client_as, typed):
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=1)
    box_id, bag_id = box(db_session), made[0].id
    db_session.rollback()
    answer = client_as("technician").post(f"/lots/{lot_id}/store", data={
        "store-bag_id": bag_id, "store-box_id": box_id, "store-position": typed})
    assert answer.status_code == 422, answer.status_code
    assert "Box position: type it with plain digits" in answer.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Bag, bag_id).box_id is None  # "١" was stored as position 1


def test_a_position_typed_as_row_letter_and_column_is_still_stored(app, users, db_session, client_as):  # noqa: F811
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=1)
    box_id, bag_id = box(db_session), made[0].id
    db_session.rollback()
    answer = client_as("technician").post(f"/lots/{lot_id}/store", data={
        "store-bag_id": bag_id, "store-box_id": box_id, "store-position": " b3 "})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:2000]
    db_session.expire_all()
    assert (db_session.get(Bag, bag_id).box_id, db_session.get(Bag, bag_id).position) == (box_id, 6)


# -- bag volume, DMSO % ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("volume", "dmso", "field", "words"), [
    ("20.005", "10", "volume_ml", "Bag 1: volume at most 2 decimals"),
    ("20", "10.005", "dmso_percent", "Bag 1: DMSO at most 2 decimals"),
])
def test_a_bag_volume_or_dmso_with_three_decimals_is_refused(app, users, db_session, volume, dmso, field,  # noqa: F811
                                                             words):
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    plan = BagPlan(volume_ml=Decimal(volume), cells_per_ml=M, dmso_percent=Decimal(dmso))
    with pytest.raises(ValidationFailed) as refused:
        bags.cryopreserve(db_session, user(db_session, "technician"), lot_id, frozen_at=at(TODAY, 9), bags=[plan])
    assert refused.value.field == field and words in refused.value.message
    assert _count(db_session, Bag) == 0


def test_a_bag_volume_with_three_decimals_is_refused_on_the_page(app, users, db_session, client_as):  # noqa: F811
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    db_session.rollback()
    form = {"cryo-frozen_at": TODAY.isoformat() + "T10:00", "cryo-bag_count": "2", "cryo-volume_ml": "20.005",
            "cryo-cells_per_ml": "1", "cryo-dmso_percent": "10"}
    answer = client_as("technician").post(f"/lots/{lot_id}/cryopreservation", data=form)
    assert answer.status_code == 422
    assert "volume at most 2 decimals" in answer.get_data(as_text=True)
    assert _count(db_session, Bag) == 0
    form["cryo-volume_ml"] = "20.50"  # trailing zeros are 2 decimals: accepted
    assert client_as("technician").post(f"/lots/{lot_id}/cryopreservation", data=form).status_code == 302
    assert _count(db_session, Bag) == 2


# -- tissue amount ---------------------------------------------------------------------------------------------

def _lot_details(donor_id: int, amount: str) -> services.LotDetails:
    return services.LotDetails(donor_id=donor_id, product_id="AT-MSC", collection_at=at(TODAY - timedelta(days=20)),
                               collection_site="Theatre 3", tissue_amount=amount, tissue_unit="g")


@pytest.mark.parametrize("amount", ["0.004", "21.505"])
def test_a_tissue_amount_with_three_decimals_is_refused(app, users, db_session, amount):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    with pytest.raises(ValidationFailed) as refused:
        services.create_lot(db_session, user(db_session, "technician"), _lot_details(donor_id, amount))
    assert refused.value.field == "tissue_amount"
    assert "Tissue amount: at most 2 decimals" in refused.value.message
    assert _count(db_session, Lot) == 0


def test_a_tissue_amount_with_two_decimals_is_kept_as_typed(app, users, db_session):  # noqa: F811
    donor_id = approved_adipose_donor(db_session)
    lot_id = services.create_lot(db_session, user(db_session, "technician"), _lot_details(donor_id, "0.01")).id
    db_session.commit()
    db_session.expire_all()
    assert db_session.get(Lot, lot_id).tissue_amount == Decimal("0.01")


# -- a time the site's clocks skipped ----------------------------------------------------------------------------

def test_a_collection_time_skipped_by_the_spring_clock_change_is_refused_on_the_page(app, users, db_session,  # noqa: F811
                                                                                    client_as):
    donor_id = approved_adipose_donor(db_session)
    db_session.rollback()
    answer = client_as("technician").post("/lots/new", data={
        "donor_id": donor_id, "product_id": "AT-MSC", "collection_at": "2026-03-29T02:30",
        "collection_site": "Theatre 3", "tissue_amount": "40", "tissue_unit": "g"})
    assert answer.status_code == 422, answer.status_code
    html = answer.get_data(as_text=True)
    assert "Collection time: 2026-03-29 02:30 does not exist in Europe/Paris" in html
    assert "(03:30)" in html
    assert _count(db_session, Lot) == 0


# -- identifiers typed on the identifier check page ---------------------------------------------------------------

def test_a_product_code_with_a_sharp_s_is_not_shown_as_valid(app, users, client_as):  # type: ignore[no-untyped-def]
    html = client_as("technician").get("/identifiers", query_string={"text": "S\u00df001V00"}).get_data(as_text=True)
    assert "A valid product code" not in html
    assert "is not a plain letter or digit" in html
