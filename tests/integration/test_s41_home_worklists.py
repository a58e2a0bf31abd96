"""Session 41, a technician's to-do lists on the home page (through the web client):

1. "Lots in process – next step", "Bags frozen, not placed in storage" and "Bags allocated, waiting to be sent to
   the ward" (box and position, patient code), each linking to the page where the step is done;
2. each list shows its first 10 and says "and N more", read in as many statements for 1 lot as for 12;
3. the other roles' home is what it was: no laboratory lists.
"""
from __future__ import annotations

import html
import re
from typing import Any

from mscbatch.lots.models import Bag
from mscbatch.lots.worklists import next_step
from mscbatch.patients.models import Patient
from tests.integration.lot_factories import approved_adipose_donor, start_lot
from tests.integration.patient_factories import donor, lot_with_bags, user
from tests.integration.statements import statements_sent
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)


def _section(text: str, section_id: str) -> str:
    found = re.search(rf'<section aria-labelledby="[^"]*" id="{section_id}"[^>]*>(.*?)</section>', text, re.S)
    assert found, f"no section {section_id}"
    return found.group(1)


def _words(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _in_process_lots(session: Any, n: int) -> list[int]:
    """Lots in process written directly, without a step (the lot services have their own tests)."""
    tech = user(session, "technician")
    made = [lot_with_bags(session, tech, donor(session, tech), status="in_process", bags=0, placed=False)
            for _ in range(n)]
    session.commit()
    return [len(m) for m in made]


def test_a_technician_sees_each_list_linking_where_the_step_is_done(app, users, db_session, client_as):  # noqa: F811
    ward = prescribed_bag(db_session, state="allocated")  # first: the prescription takes bags from any lot in stock
    db_session.commit()
    waiting = db_session.get(Bag, ward.bag_id)
    box_id, lot_id, din = waiting.box_id, waiting.lot_id, waiting.din
    code = db_session.get(Patient, ward.patient_id).code
    lot_id_new = start_lot(db_session, approved_adipose_donor(db_session))
    tech = user(db_session, "technician")
    unplaced = lot_with_bags(db_session, tech, donor(db_session, tech), status="quarantine", bags=2, placed=False)
    unplaced_lot = unplaced[0].lot_id
    db_session.commit()
    db_session.rollback()

    text = client_as("technician").get("/").get_data(as_text=True)
    lots = _section(text, "work-lots")
    assert f'href="/lots/{lot_id_new}#process"' in lots and "Record the isolation" in _words(lots), _words(lots)
    bags = _section(text, "work-unplaced")
    assert f'href="/lots/{unplaced_lot}#bags"' in bags and "bag 1 of 2" in _words(bags) and "bag 2 of 2" in _words(bags)
    dispatch = _section(text, "work-dispatch")
    said = _words(dispatch)
    assert din[-6:] in said and f"for patient {code}" in said, said
    assert re.search(r"fetch it from box \S+, A[1-3]", said), said
    assert f'href="/storage/{box_id}"' in dispatch and 'href="/ward#h-dispatch"' in dispatch
    assert f"/lots/{lot_id}" not in bags  # a lot whose bags are all in boxes has nothing to place


def test_each_list_shows_ten_and_how_many_more_in_a_constant_number_of_statements(
        app, users, db_session, client_as):  # noqa: F811
    _in_process_lots(db_session, 1)
    client = client_as("technician")
    client.get("/")  # the first request warms what later ones read from caches
    with statements_sent(app) as one:
        assert client.get("/").status_code == 200
    _in_process_lots(db_session, 11)
    with statements_sent(app) as twelve:
        text = client.get("/").get_data(as_text=True)
    assert len(twelve) == len(one), (len(one), len(twelve))
    lots = _section(text, "work-lots")
    assert lots.count("<li ") == 10 and "and 2 more" in _words(lots), _words(lots)
    assert "Record the isolation" in _words(lots) and 'href="/lots?status=in_process"' in lots


def test_the_other_roles_home_has_no_laboratory_lists(app, users, db_session, client_as):  # noqa: F811
    _in_process_lots(db_session, 1)
    for role in ("qa", "clinician", "nurse", "admin"):
        text = client_as(role).get("/").get_data(as_text=True)
        assert 'id="work"' not in text and "What you can do here, by your role" in text, role
    assert client_as("technician").get("/").get_data(as_text=True).count('id="work"') == 1
    signed_out = app.test_client().get("/").get_data(as_text=True)
    assert 'id="work"' not in signed_out and "Sign in" in signed_out


def test_the_next_step_follows_the_lot_page_forms() -> None:
    assert next_step(0, 0, False, 0) == ("Record the isolation", "process")
    assert next_step(1, 0, False, 0) == ("Record passage P0", "process")
    assert next_step(3, 2, False, 0) == ("Record passage P2 or the harvest", "process")
    assert next_step(3, 2, True, 0) == ("Cryopreserve into bags", "harvest")
    assert next_step(3, 2, True, 4)[1] == "state"
