"""Session 41, the box map says what each bag is (through the web client):

1. each occupied position shows the bag's status in the lot page's words (core.states.effective_bag_status) and in
   a colour class: a released bag in stock, a quarantined lot's bag, a recalled lot's bag with the recall's number,
   a bag on hold, a bag allocated to a patient (their trial code);
2. a bag dispatched to the ward keeps its position (custody frees it only when the bag is infused or discarded,
   as it may come back): the map says OUT OF THE UNIT, dispatched to the patient's ward and when, not present;
3. the box is read in one statement whatever the number of bags, and the page in as many statements for one bag
   as for several of every status.
"""
from __future__ import annotations

import html
import re
from typing import Any

from mscbatch.audit.context import use_case
from mscbatch.lots.models import Bag, Lot, StorageLocation
from mscbatch.lots.queries import box_grid
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.integration.statements import statements_sent
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)


def _cell(text: str, label: str) -> str:
    """The text of the box map's cell at `label` ("A1"), tags removed, spaces folded, its class and colour (tone)."""
    found = re.search(rf'<td class="([^"]*)" data-position="{label}"(?: data-tone="([^"]*)")?[^>]*>(.*?)</td>',
                      text, re.S)
    assert found, f"no cell {label}"
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(3))).split())
    return f"[{found.group(1)} slot-{found.group(2)}] {words}"


def _lot(session: Any, status: str, bags: int = 2) -> list[Bag]:
    tech = user(session, "technician")
    made = lot_with_bags(session, tech, donor(session, tech), status=status, bags=bags)
    session.commit()
    return made


def _recall(session: Any, bags: list[Bag], *, lot_status: str) -> int:
    """A recall holding these bags (written directly, as the bedside tests do), their lot set to `lot_status`."""
    from mscbatch.recall.models import BagHold, Recall

    qa = user(session, "qa")
    with use_case(session, qa, "test: a recall holds the bags"):
        recall = Recall(scope="lot", lot_id=bags[0].lot_id, reason="late positive marker", started_by_id=qa.id)
        session.add(recall)
        session.flush()
        for bag in bags:
            session.add(BagHold(recall_id=recall.id, bag_id=bag.id, bag_status_at_hold=bag.status))
        session.get(Lot, bags[0].lot_id).status = lot_status
    session.commit()
    return recall.id


def test_each_bag_shows_its_status_in_words_and_colour(app, users, db_session, client_as):  # noqa: F811
    released = _lot(db_session, "released")
    quarantined = _lot(db_session, "quarantine")
    recalled = _lot(db_session, "released")
    recall_id = _recall(db_session, recalled, lot_status="recalled")
    held = _lot(db_session, "released")
    hold_id = _recall(db_session, held[:1], lot_status="released")
    tech = client_as("technician")

    text = tech.get(f"/storage/{released[0].box_id}").get_data(as_text=True)
    cell = _cell(text, "A1")
    assert "slot-ok" in cell and "stored · lot released" in cell and "X9999" in cell, cell
    text = tech.get(f"/storage/{quarantined[0].box_id}").get_data(as_text=True)
    cell = _cell(text, "A1")
    assert "slot-hold" in cell and "quarantine" in cell and "stored" not in cell, cell
    text = tech.get(f"/storage/{recalled[0].box_id}").get_data(as_text=True)
    for label in ("A1", "A2"):
        cell = _cell(text, label)
        assert "slot-stop" in cell and f"recalled R-{recall_id}" in cell and "stored" not in cell, cell
    text = tech.get(f"/storage/{held[0].box_id}").get_data(as_text=True)
    cell = _cell(text, "A1")
    assert "slot-hold" in cell and f"on hold R-{hold_id}" in cell, cell
    assert "slot-ok" in _cell(text, "A2") and "R-" not in _cell(text, "A2")  # the bag not held stays in stock
    assert "free" in _cell(text, "A3")


def test_an_allocated_bag_names_its_patient_and_a_dispatched_one_is_out_of_the_unit(
        app, users, db_session, client_as):  # noqa: F811
    ward = prescribed_bag(db_session, state="dispatched")
    db_session.commit()
    bag = db_session.get(Bag, ward.bag_id)
    box_id, position = bag.box_id, bag.position
    from mscbatch.patients.models import Patient

    code = db_session.get(Patient, ward.patient_id).code
    db_session.rollback()
    assert box_id is not None and position == 1  # the data model keeps the position while the bag is out
    text = client_as("technician").get(f"/storage/{box_id}").get_data(as_text=True)
    out = _cell(text, "A1")
    assert "slot-out" in out and "OUT OF THE UNIT – dispatched to Ward 3 at" in out and "dispatched" in out, out
    assert "UTC" in out  # the time in site local time with UTC beside it, as the pages say instants
    allocated = _cell(text, "A2")
    assert "slot-allocated" in allocated and f"allocated to {code}" in allocated, allocated
    assert "1 of them kept for a bag out of the unit" in " ".join(html.unescape(text).split())
    # a role the ward page does not show patients to is told that a patient has it, not who
    admin = client_as("admin").get(f"/storage/{box_id}").get_data(as_text=True)
    assert "allocated to a patient" in _cell(admin, "A2") and code not in admin


def _page_statements(app: Any, client: Any, box_id: int) -> int:
    with statements_sent(app) as statements:
        assert client.get(f"/storage/{box_id}").status_code == 200
    return len(statements)


def test_the_box_is_read_in_one_statement_whatever_its_bags(app, users, db_session, client_as):  # noqa: F811
    ward = prescribed_bag(db_session, state="dispatched")  # first: the prescription takes bags from any lot in stock
    db_session.commit()
    one = _lot(db_session, "released", bags=1)
    many = _lot(db_session, "released", bags=6)
    _recall(db_session, many[:2], lot_status="released")  # two bags held, four in stock
    ward_box = db_session.get(Bag, ward.bag_id).box_id
    with use_case(db_session, user(db_session, "technician"), "test: gather every status in one box"):
        gathered = [ward.bag_id, *ward.other_bag_ids]
        for n, bag_id in enumerate(gathered, start=7):
            moved = db_session.get(Bag, bag_id)
            moved.box_id, moved.position = many[0].box_id, n
    db_session.commit()
    box = db_session.get(StorageLocation, many[0].box_id)
    with statements_sent(app, "SELECT") as statements:
        grid = box_grid(db_session, box)
    db_session.rollback()
    assert len(statements) == 1, statements
    cells = [cell for row in grid for cell in row if cell.bag]
    assert len(cells) == 6 + len(gathered) and len(gathered) >= 2
    assert {cell.status.status for cell in cells} == {"stored", "on_hold", "dispatched", "allocated"}
    assert ward_box != box.id
    box_ids = one[0].box_id, many[0].box_id
    db_session.rollback()  # SQLite: the reads above hold the write lock until their transaction ends
    tech = client_as("technician")
    tech.get(f"/storage/{box_ids[0]}")  # the first request warms what later ones read from caches
    assert _page_statements(app, tech, box_ids[1]) == _page_statements(app, tech, box_ids[0])
