"""Session 45, the lot page's Store form built from one read of the storage tree (both databases):

1. the statements the lot page runs do not grow with the number of boxes (before: about 10 storage_location
   queries per box, place_label and box_storage walking each box up to its site; 1 000 queries for 100 boxes);
2. the box picker's words and order are those of the per-box walk (queries.location_path and
   container_temperature, kept as the reference here): suited boxes first, then the too warm ones, disabled,
   with their reason; the bags' places on the page are unchanged too.
"""
from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any

from sqlalchemy import event, select

from mscbatch.audit.context import use_case
from mscbatch.lots import storage
from mscbatch.lots.models import StorageLocation
from mscbatch.lots.queries import container_temperature, get_lot, location_path
from mscbatch.lots.views import place_parts
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)


def _tree(session: Any, tag: str, *, tanks: int, boxes_per_rack: int) -> None:
    """A site with `tanks` LN2 tanks (-150 °C) and one -80 °C freezer, each with two racks of boxes."""
    tech = user(session, "technician")
    site = storage.create_location(session, tech, kind="site", name=f"Unit {tag}")
    containers = [storage.create_location(session, tech, kind="tank", name=f"LN2 tank {tag}{n}", parent_id=site.id,
                                          temperature_max_c=Decimal(-150)) for n in range(1, tanks + 1)]
    containers.append(storage.create_location(session, tech, kind="freezer", name=f"Freezer {tag}",
                                              parent_id=site.id, temperature_max_c=Decimal(-80)))
    for container in containers:
        for r in (1, 2):
            rack = storage.create_location(session, tech, kind="rack", name=f"Rack {r}", parent_id=container.id)
            for b in range(1, boxes_per_rack + 1):
                # "Box ..." and a bare name: the picker says "Box" once either way
                name = f"Box {tag}{r}-{b}" if b % 2 else f"{tag}{r}-{b}"
                storage.create_location(session, tech, kind="box", name=name, parent_id=rack.id, rows=3, columns=3)
    session.commit()


def _box_count(session: Any) -> int:
    count = len(list(session.scalars(select(StorageLocation.id).where(StorageLocation.kind == "box"))))
    session.rollback()
    return count


def _options(text: str) -> list[tuple[str, str, bool]]:
    """The Store form's box options: (value, words, disabled)."""
    select_html = re.search(r'<select[^>]*name="store-box_id".*?</select>', text, re.S)
    assert select_html, "the lot page shows no Store form"
    return [(value, html.unescape(words).strip(), "disabled" in attrs)
            for attrs, value, words in re.findall(r'<option([^>]*value="([^"]*)"[^>]*)>([^<]*)</option>',
                                                  select_html.group(0))]


def _expected(session: Any, lot_id: int) -> list[tuple[str, str, bool]]:
    """The picker as the per-box walk built it (the code before session 45)."""
    lot = get_lot(session, lot_id)
    suited, warm = [], []
    for box in session.scalars(select(StorageLocation).where(StorageLocation.kind == "box")
                               .order_by(StorageLocation.id)):
        *above, place = location_path(session, box)
        where = ", ".join(node.name for node in reversed(above))
        label = f"{storage.box_words(place)} — {where}" if where else storage.box_words(place)
        temperature, limit = container_temperature(session, box), storage.storage_limit(lot)
        if storage.too_warm(temperature, limit):
            said = f"at {temperature} °C" if temperature is not None else "not in a freezer or tank"
            warm.append((str(box.id), f"{label}: {said}, too warm for {lot.product_name} (needs <= {limit} °C)", True))
        else:
            suited.append((str(box.id), label, False))
    session.rollback()
    return suited + warm


def _statements(app: Any, client: Any, url: str) -> tuple[int, str]:
    engine = app.extensions["mscbatch.db"].engine
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    client.get(url)  # a first request may fill caches (site config, products)
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(url)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200
    return len(seen), response.get_data(as_text=True)


def test_the_lot_page_runs_as_many_statements_for_12_boxes_as_for_3(app, users, db_session, client_as):  # noqa: F811
    tech_user = user(db_session, "technician")
    bags = lot_with_bags(db_session, tech_user, donor(db_session, tech_user), bags=2, placed=True)
    lot_id = bags[0].lot_id
    db_session.commit()
    tech = client_as("technician")
    _tree(db_session, "A", tanks=1, boxes_per_rack=1)  # the lot's own box + 4: 5 boxes
    few_boxes = _box_count(db_session)
    few, text = _statements(app, tech, f"/lots/{lot_id}")
    assert len(_options(text)) == few_boxes
    _tree(db_session, "B", tanks=3, boxes_per_rack=3)  # 24 more, in new tanks and racks
    many_boxes = _box_count(db_session)
    many, text = _statements(app, tech, f"/lots/{lot_id}")
    assert len(_options(text)) == many_boxes == few_boxes + 24
    assert many == few, f"{few} statements for {few_boxes} boxes, {many} for {many_boxes}"


def test_the_box_picker_says_what_the_per_box_walk_said(app, users, db_session, client_as):  # noqa: F811
    tech_user = user(db_session, "technician")
    bags = lot_with_bags(db_session, tech_user, donor(db_session, tech_user), product="UC-MSC", bags=2, placed=True)
    lot_id, box_id = bags[0].lot_id, bags[0].box_id
    db_session.commit()
    _tree(db_session, "C", tanks=2, boxes_per_rack=2)
    with use_case(db_session, tech_user):  # a rack straight under a site (older data): its box is in no container
        site = db_session.scalar(select(StorageLocation).where(StorageLocation.name == "Unit C"))
        rack = StorageLocation(kind="rack", name="Bench rack", parent_id=site.id, created_by_id=tech_user.id)
        db_session.add(rack)
        db_session.flush()
        db_session.add(StorageLocation(kind="box", name="Loose", parent_id=rack.id, rows=2, columns=2,
                                       created_by_id=tech_user.id))
    db_session.commit()
    expected = _expected(db_session, lot_id)
    _count, text = _statements(app, client_as("technician"), f"/lots/{lot_id}")
    shown = _options(text)
    assert shown == expected
    # a few pinned, in words
    words = [w for _v, w, _d in shown]
    assert "Box C1-1 — Rack 1, LN2 tank C1, Unit C" in words
    assert "Box C2-2 — Rack 2, LN2 tank C2, Unit C" in words  # "C2-2" named Box once
    assert ("Box C1-1 — Rack 1, Freezer C, Unit C: at -80.0 °C, too warm for UC-MSC (needs <= -150 °C)"
            in words), words
    assert "Box Loose — Bench rack, Unit C: not in a freezer or tank, too warm for UC-MSC (needs <= -150 °C)" in words
    disabled = [d for _v, _w, d in shown]
    assert disabled == sorted(disabled) and disabled.count(True) == 5  # the freezer's 4 and the loose box, last
    # the bags' places: the box's name linked, where it is beneath
    [place] = location_path(db_session, db_session.get(StorageLocation, box_id))[-1:]
    assert f'>{html.escape(storage.box_words(place))}</a>' in text


def test_s46_the_lot_page_names_8_placed_bags_boxes_in_as_many_statements_as_2(app, users, db_session,  # noqa: F811
                                                                                 client_as):
    """Session 45 review: lots/record.py walked each placed bag's box up to its site, a few queries a bag. The bags'
    places now come from the page's one read of the storage tree, with the words the walk gave."""
    tech_user = user(db_session, "technician")
    few_lot = lot_with_bags(db_session, tech_user, donor(db_session, tech_user), bags=2, placed=True)[0].lot_id
    many_bags = lot_with_bags(db_session, tech_user, donor(db_session, tech_user), bags=8, placed=True)
    db_session.commit()
    expected = {bag.id: place_parts(db_session, db_session.get(StorageLocation, bag.box_id)) for bag in many_bags}
    many_lot = many_bags[0].lot_id
    db_session.rollback()  # no transaction left open: SQLite's would hold the write lock the page waits for
    tech = client_as("technician")
    few, _ = _statements(app, tech, f"/lots/{few_lot}")
    many, text = _statements(app, tech, f"/lots/{many_lot}")
    assert many == few, f"{few} statements for 2 placed bags, {many} for 8"
    for box_name, where in expected.values():  # as the walk up from each box named it
        assert f">{html.escape(box_name)}</a>" in text and f'<span class="hint">{html.escape(where)}</span>' in text
