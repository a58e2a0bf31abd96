"""Session 45 review (a ward nurse on a 390 px phone and a 768 px tablet):

1. the bedside check listed "a grade 3 reaction: the prescriber decides: call them" before "too long since thawing",
   and the ward's "Bags out of the unit now" shows the first reason alone: a bag that can never be given read as a
   call to make. What makes the bag unfit for anyone now comes first (custody.checks._FIRST, BAG_UNFIT);
2. a refused START with no confirmed check said only "have a second person confirm", even of a bag past its
   post-thaw limit; and a check only waiting for its second person was headed "Do not give this bag";
3. a start with another patient's wristband was headed "Do not give this bag" over "go to patient ...";
4. the infusion page's reactions table scrolled sideways on a phone, cutting off "3 - severe".
"""
from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.custody import handover, infusions
from mscbatch.custody.models import Infusion
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Patient
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import (
    KEY,
    Ward,
    check,
    checked_and_confirmed,
    token_of,
    ward_bag,
)

pytestmark = pytest.mark.usefixtures("users")


def _words(markup: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", markup).split()))


def _row(page: str, bag_id: int) -> str:
    found = re.search(rf'<tr id="on-ward-{bag_id}">(.*?)</tr>', page, re.S)
    assert found, page[:3000]
    return _words(found.group(1))


def _codes(page: str) -> list[str]:
    """The failures listed on a STOP page, in their order."""
    return re.findall(r'<li data-code="([a-z_]+)"', page)


def _severe_reaction_on_the_course(app: Any, ward: Ward) -> int:
    """Another bag of the same prescription sent, thawed, checked by two people and started for the patient, and a
    grade 3 reaction recorded during it (still running): the bag `ward` is then stopped for "the prescriber decides"
    (and "another bag still running"), both about the patient, not about the bag."""
    with app.extensions["mscbatch.db"].new_session() as session:
        tech, nurse = user(session, "technician"), user(session, "nurse")
        other = session.get(Bag, ward.other_bag_ids[0])
        token = token_of(other)
        handover.dispatch(session, tech, other.id, courier="Fast Courier", shipper="Dry shipper DS-3",
                          temperature_logger_id="TL-0042", location="Cell therapy unit")
        handover.receive(session, nurse, other.id, location="Ward 3", scan=token)
        handover.thaw(session, nurse, other.id, location="Ward 3", scan=token)
        running = Ward(other.id, [], ward.patient_id, ward.wristband, token, ward.lot_id, ward.donor_id)
        checked_and_confirmed(session, running)
        infusion = infusions.start_infusion(session, nurse, other.id, wristband=ward.wristband, bag_scan=token,
                                            label_key=KEY)
        infusions.record_reaction(session, nurse, infusion.id,
                                  infusions.ReactionDetails("Hypotension", 3, "BP 70/40, dizzy"))
        session.commit()
        return infusion.id


def _later(monkeypatch: pytest.MonkeyPatch, hours: int = 3) -> None:
    """The pages read `hours` later (custody events are append-only): past the UC-MSC post-thaw limit (60 min)."""
    later = utcnow() + timedelta(hours=hours)
    for where in ("mscbatch.custody.views.utcnow", "mscbatch.custody.checks.utcnow"):
        monkeypatch.setattr(where, lambda: later)


# ---- 1. the bag itself first ------------------------------------------------------------------------------------

def test_a_bag_past_its_post_thaw_limit_is_said_discard_it_before_call_the_prescriber(app, client_as, monkeypatch):
    ward = ward_bag(app)
    _severe_reaction_on_the_course(app, ward)
    nurse = client_as("nurse")
    before = _row(nurse.get("/ward").get_data(as_text=True), ward.bag_id)
    assert "DO NOT GIVE THIS BAG." in before, before
    assert "STILL RUNNING" in before, before  # within its limit: the patient's reasons, the first of them shown
    _later(monkeypatch)

    row = _row(nurse.get("/ward").get_data(as_text=True), ward.bag_id)
    assert "PAST ITS POST-THAW LIMIT" in row and "Discard it" in row, row
    assert "prescriber" not in row and "STILL RUNNING" not in row, row  # counted, not said first
    assert "more reasons not to give it: scan it at the bedside to see them all" in row, row

    page = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token}, follow_redirects=True)
    listed = _codes(page.get_data(as_text=True))
    assert listed[0] == "post_thaw", listed
    assert listed.index("post_thaw") < listed.index("other_running") < listed.index("severe_reaction"), listed


def test_a_bag_recalled_since_says_recalled_first_on_the_ward_list_not_call_the_prescriber(app, client_as):
    ward = ward_bag(app)
    _severe_reaction_on_the_course(app, ward)
    with app.extensions["mscbatch.db"].new_session() as session:
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                             reason="late positive sterility culture", password=PASSWORD)
    nurse = client_as("nurse")
    row = _row(nurse.get("/ward").get_data(as_text=True), ward.bag_id)
    first = row.split("DO NOT GIVE THIS BAG.", 1)[1]
    assert "RECALLED" in first.split(".")[0].upper() or "ON HOLD" in first.split(".")[0].upper(), row
    assert "prescriber" not in row.split("more reason")[0], row
    page = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token}, follow_redirects=True)
    listed = _codes(page.get_data(as_text=True))
    assert listed[0] in ("recalled", "on_hold") and listed[-1] == "severe_reaction", listed


# ---- 2. a start with no confirmed check ---------------------------------------------------------------------------

def _start(client: Any, ward: Ward, wristband: str | None = None) -> str:
    answer = client.post("/ward/event", data={"action": "start", "wristband": wristband or ward.wristband,
                                              "bag": ward.token})
    assert answer.status_code == 303, answer.get_data(as_text=True)[:2000]
    page = client.get(answer.headers["Location"])
    assert page.status_code == 200
    return page.get_data(as_text=True)


def test_a_start_of_a_bag_past_its_limit_says_its_own_reasons_before_fetch_a_second_person(app, client_as,
                                                                                           monkeypatch):
    ward = ward_bag(app)
    _later(monkeypatch)
    page = _start(client_as("nurse"), ward)
    listed = _codes(page)
    assert listed == ["post_thaw", "no_confirmed_check"], listed
    words = _words(page)
    assert "Do not give this bag." in words and "Too long since thawing" in words, words
    assert words.index("Too long since thawing") < words.index("have a second person confirm"), words
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(Infusion.id).where(Infusion.bag_id == ward.bag_id)) is None
        assert session.get(Bag, ward.bag_id).status == "thawed"


def test_a_start_whose_check_waits_for_its_second_person_says_so_with_a_link_to_it(app, client_as):
    ward = ward_bag(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        check_id = check(session, ward).check_id
        session.commit()
    page = _start(client_as("nurse"), ward)
    words = _words(page)
    assert "Do not give this bag" not in words, words
    assert "Not started: the bedside check of this bag is waiting for its second person." in words, words
    assert f'href="/ward/checks/{check_id}"' in page, page
    assert "<title>NOT STARTED" in page


def test_a_start_with_no_check_at_all_is_not_headed_do_not_give_this_bag(app, client_as):
    ward = ward_bag(app)
    words = _words(_start(client_as("nurse"), ward))
    assert "Do not give this bag" not in words, words
    assert "Not started: this bag has no confirmed two-person check now." in words, words


# ---- 3. another patient's wristband at the start -----------------------------------------------------------------

def test_a_start_with_another_patients_wristband_says_not_for_this_patient_not_do_not_give(app, client_as):
    ward, elsewhere = ward_bag(app), ward_bag(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        checked_and_confirmed(session, ward)
        session.commit()
        code = session.get(Patient, ward.patient_id).code
    page = _start(client_as("nurse"), ward, wristband=elsewhere.wristband)
    words = _words(page)
    assert "Do not start: this bag is not for this patient." in words, words
    assert "Do not give this bag" not in words, words
    assert f"go to patient {code}" in words, words
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Bag, ward.bag_id).status == "thawed"  # fit for its own patient: nothing recorded


def test_another_patients_wristband_on_a_bag_past_its_limit_says_do_not_give_it_first(app, client_as, monkeypatch):
    ward, elsewhere = ward_bag(app), ward_bag(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        checked_and_confirmed(session, ward)
        session.commit()
    later = utcnow() + timedelta(hours=2)  # the bag past its limit, its check still valid (read at the real time)
    monkeypatch.setattr("mscbatch.custody.checks.utcnow", lambda: later)
    page = _start(client_as("nurse"), ward, wristband=elsewhere.wristband)
    words = _words(page)
    assert "this bag is not for this patient" not in words, words
    assert "Do not give this bag." in words, words
    assert _codes(page) == ["post_thaw", "start_refused"], _codes(page)


# ---- 4. the reactions table on a phone ----------------------------------------------------------------------------

def test_the_reactions_table_is_row_cards_with_every_cell_labelled(app, client_as):
    ward = ward_bag(app)
    infusion_id = _severe_reaction_on_the_course(app, ward)
    page = client_as("nurse").get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    table = re.search(r'<table id="reactions-table"([^>]*)>(.*?)</table>', page, re.S)
    assert table, page[:3000]
    assert 'class="row-cards"' in table.group(1)
    cells = re.findall(r"<td\b[^>]*>", table.group(2))
    assert cells and all("data-label=" in cell for cell in cells), cells
    assert 'data-label="Grade"' in table.group(2) and "3 - severe" in _words(table.group(2))
