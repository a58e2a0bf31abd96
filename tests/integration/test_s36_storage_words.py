"""Session 36, the technician's storage pages in plain words (through the web client):

1. a tank or freezer whose temperature is typed but not accepted says what is wrong (not a number, or outside the
   accepted range, naming it), not "Give the storage temperature", which is kept for an empty field;
2. a box's rows and columns: every problem at once, each on its field, naming the field and the rule (before:
   WTForms' "Not a valid integer value." and only the first problem);
3. a bag refused by a box too warm for its product: the refusal is on the Box field as well as at the top;
4. each bag row of the lot page links to the bag's custody log, for the readers that page lets in only.
"""
from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import func, select

from mscbatch.core.identifiers import din_shown
from mscbatch.lots.models import StorageLocation
from tests.integration.lot_factories import box
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)


def _error(text: str, field_id: str) -> list[str]:
    """The messages shown next to the field `field_id`."""
    return [html.unescape(m) for m in re.findall(rf'<p class="error" id="{re.escape(field_id)}-error">([^<]*)</p>', text)]


def _locations(session: Any) -> int:
    count = session.scalar(select(func.count()).select_from(StorageLocation))
    session.rollback()
    return int(count or 0)


def _site(client: Any, session: Any) -> int:
    assert client.post("/storage/new", data={"kind": "site", "name": "Unit S36", "parent_id": 0}).status_code == 302
    site_id = session.scalar(select(StorageLocation.id).where(StorageLocation.name == "Unit S36"))
    session.rollback()
    return int(site_id)


def _tank(client: Any, site_id: int, temperature: str) -> Any:
    return client.post("/storage/new", data={"kind": "tank", "name": "LN2 tank 9", "parent_id": site_id,
                                             "temperature_max_c": temperature})


# ---- 1. the storage temperature ----------------------------------------------------------------------------------

def test_a_temperature_outside_the_range_names_the_range(app, users, db_session, client_as):  # noqa: F811
    tech = client_as("technician")
    site_id = _site(tech, db_session)
    before = _locations(db_session)
    refused = _tank(tech, site_id, "25")
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    [said] = _error(text, "temperature_max_c")
    assert "must be between -200 and -20 °C" in said, said
    assert "Give the storage temperature" not in text
    assert _locations(db_session) == before


def test_a_temperature_not_a_number_says_so_and_an_empty_one_asks_for_it(app, users, db_session,  # noqa: F811
                                                                          client_as):
    tech = client_as("technician")
    site_id = _site(tech, db_session)
    text = _tank(tech, site_id, "cold").get_data(as_text=True)
    [said] = _error(text, "temperature_max_c")
    assert "'cold' is not a number" in said and said.startswith("Storage temperature"), said
    text = _tank(tech, site_id, "").get_data(as_text=True)
    assert _error(text, "temperature_max_c") == ["Give the storage temperature (°C, e.g. -150)."]
    assert _tank(tech, site_id, "-150").status_code == 302


# ---- 2. a box's rows and columns ---------------------------------------------------------------------------------

def _rack(client: Any, session: Any) -> int:
    site_id = _site(client, session)
    assert _tank(client, site_id, "-150").status_code == 302
    tank_id = session.scalar(select(StorageLocation.id).where(StorageLocation.name == "LN2 tank 9"))
    session.rollback()
    assert client.post("/storage/new", data={"kind": "rack", "name": "Rack 9", "parent_id": tank_id}).status_code == 302
    rack_id = session.scalar(select(StorageLocation.id).where(StorageLocation.name == "Rack 9"))
    session.rollback()
    return int(rack_id)


def test_rows_and_columns_are_each_refused_on_their_field_at_once(app, users, db_session, client_as):  # noqa: F811
    tech = client_as("technician")
    rack_id = _rack(tech, db_session)
    before = _locations(db_session)
    refused = tech.post("/storage/new", data={"kind": "box", "name": "Box 9", "parent_id": rack_id, "rows": "abc",
                                              "columns": "-3"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert _error(text, "rows") == ["Rows: a whole number from 1 to 26."]
    assert _error(text, "columns") == ["Columns: a whole number from 1 to 30."]
    assert "Not a valid integer value" not in text
    refused = tech.post("/storage/new", data={"kind": "box", "name": "Box 9", "parent_id": rack_id, "rows": "27",
                                              "columns": ""})
    text = refused.get_data(as_text=True)
    assert _error(text, "rows") == ["Rows: a whole number from 1 to 26."]
    assert _error(text, "columns") == ["Give the columns of the box: a whole number from 1 to 30."]
    text = tech.post("/storage/new", data={"kind": "box", "name": "Box 9", "parent_id": rack_id, "rows": "\u0665",
                                           "columns": "2.5"}).get_data(as_text=True)  # an Arabic-Indic 5
    assert _error(text, "rows") == ["Rows: a whole number from 1 to 26."]
    assert _error(text, "columns") == ["Columns: a whole number from 1 to 30."]
    assert _locations(db_session) == before
    assert tech.post("/storage/new", data={"kind": "box", "name": "Box 9", "parent_id": rack_id, "rows": "9",
                                           "columns": "9"}).status_code == 302


# ---- 3. a box too warm for the product: on the Box field --------------------------------------------------------

def test_a_box_too_warm_is_refused_on_the_box_field(app, users, db_session, client_as):  # noqa: F811
    tech_user = user(db_session, "technician")
    [bag] = lot_with_bags(db_session, tech_user, donor(db_session, tech_user), product="UC-MSC", bags=1,
                          placed=False)
    lot_id, bag_id = bag.lot_id, bag.id
    warm = box(db_session, temperature=-80)
    db_session.commit()
    tech = client_as("technician")
    refused = tech.post(f"/lots/{lot_id}/store", data={"store-bag_id": bag_id, "store-box_id": warm,
                                                       "store-position": "A1"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409
    [said] = _error(text, "store-box_id")
    assert "is stored at -80.0 °C" in said and "must be kept at -150" in said, said
    assert 'id="error-summary"' in text and text.count("is stored at -80.0 °C") == 2


# ---- 4. each bag row links to its custody log --------------------------------------------------------------------

def test_each_bag_row_links_to_its_custody_log_for_its_readers(app, users, db_session, client_as):  # noqa: F811
    tech_user = user(db_session, "technician")
    bags = lot_with_bags(db_session, tech_user, donor(db_session, tech_user), bags=2)
    lot_id = bags[0].lot_id
    shown = {b.id: din_shown(b) for b in bags}
    db_session.commit()
    for role in ("technician", "qa", "clinician", "nurse"):
        page = client_as(role).get(f"/lots/{lot_id}").get_data(as_text=True)
        for bag_id, din in shown.items():
            link = re.search(rf'<a [^>]*href="/trace/bags/{bag_id}"[^>]*>', page)
            assert link and f"Custody log of bag {din}" in link.group(0), (role, bag_id)
    admin = client_as("admin").get(f"/lots/{lot_id}")
    assert admin.status_code == 200 and "/trace/bags/" not in admin.get_data(as_text=True)
