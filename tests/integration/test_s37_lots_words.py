"""Session 37, lots: a technician's review of the lot pages' words and checks, through the pages and the API, on
SQLite and PostgreSQL.

- a reagent lot's expiry date outside a plausible window (before 2000, more than 10 years ahead) is refused, naming
  the field and the range: a 2207 typed for 2027 switched off the expired-reagent check for good;
- a count below 0.005 x10^6 printed "0 x10^6";
- a count far too large said "a whole number of cells greater than 0", and a bag correction changing only the
  volume blamed the cells per mL;
- instants in messages are local with UTC;
- the lot list refuses a filter it cannot apply (422, beside the filter) instead of listing every lot.
"""
from __future__ import annotations

import html
import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from mscbatch.lots.models import Bag, Lot, ProcessStep, ReagentLot
from mscbatch.site import local_and_utc, site_today
from tests.conftest import api_token_for
from tests.integration.lot_factories import (
    COLLECTION_DAYS_AGO,
    TODAY,
    M,
    approved_adipose_donor,
    at,
    cryopreserved_lot,
    harvested_lot,
    passages,
    start_lot,
)
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _errors(text: str, field_id: str) -> list[str]:
    return re.findall(rf'id="{re.escape(field_id)}-error">([^<]*)<', text)


def reagent_expiry_window(today: date) -> tuple[date, date]:
    """As lots.reagents says it (written out here: the test must fail, not stop, without it)."""
    return date(2000, 1, 1), today.replace(year=today.year + 10)


def _reagent_count(session: Any) -> int:
    count = session.scalar(select(func.count()).select_from(ReagentLot))
    session.rollback()
    return int(count or 0)


# --- reagent expiry dates ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("expiry", ["9999-12-31", "2200-01-01", "1900-01-01", "1999-12-31"])
def test_an_implausible_reagent_expiry_is_refused_naming_the_field_and_range(app, users, db_session,  # noqa: F811
                                                                             client_as, expiry):
    earliest, latest = reagent_expiry_window(site_today())
    tech = client_as("technician")
    before = _reagent_count(db_session)
    page = tech.post("/reagents", data={"reagent_type": "medium", "name": "alpha-MEM", "supplier": "DemoBio",
                                        "lot_number": "AM-2207", "expiry_date": expiry})
    text = _text(page)
    assert page.status_code == 422, text
    assert (f"Expiry date: {expiry} is not a plausible expiry date for a reagent: it must be between {earliest} and "
            f"{latest} (at most 10 years from today).") in text, text
    assert _reagent_count(db_session) == before

    api = app.test_client().post("/api/v1/reagent-lots", headers={
        "Authorization": f"Bearer {api_token_for(app, 'technician')}"}, json={
        "reagent_type": "medium", "name": "alpha-MEM", "supplier": "DemoBio", "lot_number": "AM-2207",
        "expiry_date": expiry})
    assert api.status_code == 422, api.get_json()
    assert f"must be between {earliest} and {latest}" in api.get_json()["errors"]["expiry_date"][0]
    assert _reagent_count(db_session) == before


def test_a_plausible_reagent_expiry_is_registered_up_to_the_window_s_ends(app, users, db_session,  # noqa: F811
                                                                         client_as):
    earliest, latest = reagent_expiry_window(site_today())
    tech = client_as("technician")
    for number, expiry in enumerate((earliest, latest, TODAY + timedelta(days=400))):
        made = tech.post("/reagents", data={"reagent_type": "medium", "name": "alpha-MEM", "supplier": "DemoBio",
                                            "lot_number": f"AM-{number}", "expiry_date": expiry.isoformat()})
        assert made.status_code == 302, _text(made)
    refused = tech.post("/reagents", data={"reagent_type": "medium", "name": "alpha-MEM", "supplier": "DemoBio",
                                           "lot_number": "AM-9", "expiry_date": (latest + timedelta(days=1)).isoformat()})
    assert refused.status_code == 422


# --- small counts ---------------------------------------------------------------------------------------------------

def test_a_small_count_is_never_shown_as_zero(app, users, db_session, client_as):  # noqa: F811
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), 4)
    bag_id = made[0].id
    db_session.commit()
    tech = client_as("technician")
    fixed = tech.post(f"/lots/{lot_id}/bags/correction", data={
        # the smallest content the product's rules allow (0.5 x10^6/mL, products.toml; 0.1 mL): a bag of
        # 50000 cells, which whole millions would show as 0 (0.004 x10^6/mL is now refused as outside the range)
        "bagfix-bag_id": str(bag_id), "bagfix-volume_ml": "0.1", "bagfix-cells_per_ml": "0.5",
        "bagfix-dmso_percent": "10", "bagfix-reason": "volume and cells per mL read off the wrong bag"})
    assert fixed.status_code == 302, _text(fixed)
    db_session.expire_all()
    assert (db_session.get(Bag, bag_id).cells_per_ml, db_session.get(Bag, bag_id).total_cells) == (500000, 50000)
    db_session.rollback()
    page = _text(tech.get(f"/lots/{lot_id}"))
    assert "0.5 x10^6/mL · 0.05 x10^6 cells" in page, page
    assert "0 x10^6/mL" not in page

    other = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, other, [(1000, 8000)])  # 1000 cells seeded at P0 (3 doublings in 4 days)
    db_session.commit()
    page = _text(tech.get(f"/lots/{other}"))
    assert "0.001 x10^6" in page and ">0 x10^6<" not in page


# --- far too many cells ---------------------------------------------------------------------------------------------

TOO_MANY = ("far too many: 999999999999 x10^6 cells; a count must be less than 10000000 x10^6 (10^13 cells). Check "
            "the unit: the forms take counts in millions of cells (x10^6), such as 12.5.")


def test_a_harvest_of_far_too_many_cells_says_so_with_the_limit(app, users, db_session, client_as):  # noqa: F811
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(1 * M, 10 * M)])
    db_session.commit()
    tech = client_as("technician")
    text = _text(tech.post(f"/lots/{lot_id}/harvest", data={
        "harvest-harvested_at": f"{TODAY}T09:00", "harvest-total_cells": "999999999999",
        "harvest-viability_percent": "90"}))
    assert _errors(text, "harvest-total_cells") == [f"Total cells: {TOO_MANY}"], text
    assert "greater than 0" not in text
    assert db_session.get(Lot, lot_id).harvested_at is None
    db_session.rollback()
    api = app.test_client().post(f"/api/v1/lots/{lot_id}/harvest", headers={
        "Authorization": f"Bearer {api_token_for(app, 'technician')}"}, json={
        "harvested_at": at(TODAY).isoformat(), "total_cells": 999999999999 * M, "viability_percent": "90"})
    assert api.status_code == 422, api.get_json()
    assert "far too many" in api.get_json()["errors"]["total_cells"][0]


def test_a_passage_corrected_to_far_too_many_cells_says_so_with_the_limit(app, users, db_session,  # noqa: F811
                                                                         client_as):
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(1 * M, 10 * M)])
    p0 = db_session.scalar(select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 0))
    p0_id, p0_day = p0.id, p0.performed_on.isoformat()
    db_session.commit()
    tech = client_as("technician")
    text = _text(tech.post(f"/lots/{lot_id}/passages/{p0_id}/correction", data={
        f"fix{p0_id}-performed_on": p0_day, f"fix{p0_id}-seeded_cells": "1",
        f"fix{p0_id}-harvested_cells": "100000000", f"fix{p0_id}-viability_percent": "95",
        f"fix{p0_id}-reason": "count typed wrong"}))
    assert ("Cells harvested: far too many: 100000000 x10^6 cells; a count must be less than 10000000 x10^6 "
            "(10^13 cells).") in text, text
    assert "greater than 0" not in text
    assert db_session.get(ProcessStep, p0_id).harvested_cells == 10 * M
    db_session.rollback()


# --- a bag correction names the value it changed ------------------------------------------------------------------

def test_a_bag_correction_of_the_volume_alone_names_the_volume(app, users, db_session, client_as):  # noqa: F811
    lot_id, made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), 4)  # 4 x 20 mL x 1 x10^6/mL
    bag_id = made[0].id
    db_session.commit()
    tech = client_as("technician")
    answer = tech.post(f"/lots/{lot_id}/bags/correction", data={
        "bagfix-bag_id": str(bag_id), "bagfix-volume_ml": "35", "bagfix-cells_per_ml": "1",
        "bagfix-dmso_percent": "10", "bagfix-reason": "volume read off the wrong bag"})
    text = _text(answer)
    assert answer.status_code == 422, text
    words = ("Bag 1: volume refused: 35 mL x 1 x10^6/mL = 35 x10^6 cells in the bag: the 4 bags would hold "
             "95 x10^6 viable cells but the harvest has only 90 x10^6 viable cells (5 x10^6 too many). Nothing was "
             "changed.")
    assert _errors(text, "bagfix-volume_ml") == [words], text
    assert _errors(text, "bagfix-cells_per_ml") == [], text
    assert "cells per mL refused" not in text

    both = _text(tech.post(f"/lots/{lot_id}/bags/correction", data={
        "bagfix-bag_id": str(bag_id), "bagfix-volume_ml": "25", "bagfix-cells_per_ml": "1.5",
        "bagfix-dmso_percent": "10", "bagfix-reason": "volume and count read off the wrong bag"}))
    assert "Bag 1: volume and cells per mL refused: 25 mL x 1.5 x10^6/mL = 37.5 x10^6 cells in the bag" in both
    assert _errors(both, "bagfix-volume_ml") and _errors(both, "bagfix-cells_per_ml"), both
    db_session.expire_all()
    assert db_session.get(Bag, bag_id).volume_ml == 20
    db_session.rollback()


# --- instants local with UTC ----------------------------------------------------------------------------------------

def test_harvest_corrections_say_the_freezing_and_collection_local_with_utc(app, users, db_session,  # noqa: F811
                                                                            client_as):
    lot_id, _made = cryopreserved_lot(db_session, approved_adipose_donor(db_session), 2)
    lot = db_session.get(Lot, lot_id)
    frozen, collected = local_and_utc(lot.frozen_at), local_and_utc(lot.collection_at)
    db_session.commit()
    tech = client_as("technician")

    def correct(when: str) -> str:
        return _text(tech.post(f"/lots/{lot_id}/harvest/correction", data={
            "harvestfix-harvested_at": when, "harvestfix-total_cells": "100", "harvestfix-viability_percent": "90",
            "harvestfix-reason": "harvest time typed wrong"}))

    after = correct(f"{TODAY}T10:00")
    assert f"The harvest cannot be after the freezing ({frozen})." in after, after
    assert frozen.endswith(" UTC)") and " CE" in frozen  # "2026-12-05 09:00 CET (08:00 UTC)"
    before = correct(f"{TODAY - timedelta(days=COLLECTION_DAYS_AGO)}T08:00")
    assert f"The harvest cannot be before the collection ({collected})." in before, before
    db_session.expire_all()
    assert db_session.get(Lot, lot_id).harvested_at == at(TODAY, 8)
    db_session.rollback()


# --- the lot list's filters ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "field", "words"), [
    ("from=2026-13-01", "from", "Collected from: '2026-13-01' is not a date: type a day as YYYY-MM-DD"),
    ("to=yesterday", "to", "Collected to: 'yesterday' is not a date"),
    ("status=bogus", "status", "Status: 'bogus' is not a lot status: choose one of in process, quarantine"),
    ("product=XX-MSC", "product", "Product: 'XX-MSC' is not a product of this unit: choose one of UC-MSC"),
    ("from=2026-03-02&to=2026-03-01", "to",
     "Collected to (2026-03-01) is before Collected from (2026-03-02): it must be the same day or a later one."),
])
def test_a_lot_filter_that_cannot_be_applied_is_refused_beside_it(app, users, db_session, client_as,  # noqa: F811
                                                                  query, field, words):
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    number = db_session.get(Lot, lot_id).lot_number
    db_session.commit()
    tech = client_as("technician")
    assert number in _text(tech.get("/lots"))
    page = tech.get(f"/lots?{query}")
    text = _text(page)
    assert page.status_code == 422, text
    (said,) = _errors(text, field)
    assert said.startswith(words), said
    assert "No lots are listed: correct what is marked above" in text
    assert number not in text and "No lot matches." not in text

    api_query = query.replace("from=", "collected_from=").replace("to=", "collected_to=")
    api = app.test_client().get(f"/api/v1/lots?{api_query}", headers={
        "Authorization": f"Bearer {api_token_for(app, 'technician')}"})
    assert api.status_code == 422, api.get_json()
    assert {"from": "collected_from", "to": "collected_to"}.get(field, field) in api.get_json()["errors"]


def test_a_product_taken_out_of_the_catalogue_still_filters_its_lots(app, users, db_session, client_as):  # noqa: F811
    """Lots of a product since removed from products.toml exist (lots.queries.product_of expects them): the list,
    and the API a recall search uses, still filter by it; an id no lot and no catalogue has is refused."""
    lot_id = harvested_lot(db_session, approved_adipose_donor(db_session))
    db_session.execute(update(Lot).where(Lot.id == lot_id).values(product_id="OLD-MSC"))  # as the catalogue once had
    number = db_session.get(Lot, lot_id).lot_number
    db_session.commit()
    tech = client_as("technician")
    page = tech.get("/lots?product=OLD-MSC")
    assert page.status_code == 200 and number in _text(page), _text(page)
    api = app.test_client().get("/api/v1/lots?product=OLD-MSC", headers={
        "Authorization": f"Bearer {api_token_for(app, 'technician')}"})
    assert api.status_code == 200 and [lot["lot_number"] for lot in api.get_json()["items"]] == [number], api.get_json()
    assert tech.get("/lots?product=NEVER-MSC").status_code == 422
