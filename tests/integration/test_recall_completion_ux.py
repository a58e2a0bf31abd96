"""Completing a recall, as QA walks it through the pages (review of the demo), on both databases:

1. a held bag still reserved for a patient is not discarded, and the refusal says what to do (the prescriber
   cancels the course, then QA discards it), not "ask the unit to send it (dispatch)";
2. the recall's page discards the held bags in stock itself (Discard (recalled), QA, the ordinary discard);
3. the closing note is a note, not one word;
4. a completed recall's page and PDF say how many held bags are destroyed, not "on hold now: 0" beside rows
   all saying ON HOLD (session 35: as holds kept, all destroyed, and no bag still in stock or on the ward)."""
from __future__ import annotations

import io
import re
from typing import Any

from pypdf import PdfReader
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.core.identifiers import parse_din
from mscbatch.custody.models import CustodyEvent
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Prescription
from mscbatch.recall.models import BagHold, Recall
from tests.integration.test_custody_support import token_of
from tests.integration.test_recall_completion import (
    NOTE,
    complete,
    discard_all_in_stock,
    held_bags,
    notify_all,
    start,
)
from tests.integration.test_recall_support import scene

OLD_ADVICE = "Ask the unit to send it"


def session_of(app: Any) -> Any:
    return app.extensions["mscbatch.db"].new_session()


def bags_by_status(app: Any, recall_id: int) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for bag_id, _din, status in held_bags(app, recall_id):
        found.setdefault(status, []).append(bag_id)
    return found


def row_of(page: str, din: str) -> str:
    row = page[page.index(f'data-din="{din}"'):]
    return row[:row.index("</tr>")]


def discard_url(recall_id: int, bag_id: int) -> str:
    return f"/recalls/{recall_id}/bags/{bag_id}/discard"


def written(app: Any, bag_id: int) -> tuple[str, int, int]:
    """The bag's state, its custody events and the audit events about it: unchanged when nothing was written."""
    with session_of(app) as session:
        return (session.get(Bag, bag_id).status,
                session.scalar(select(func.count()).select_from(CustodyEvent).where(CustodyEvent.bag_id == bag_id)),
                session.scalar(select(func.count()).select_from(AuditEvent).where(
                    AuditEvent.entity_type == "bag", AuditEvent.entity_id == str(bag_id))))


# ---- 1. a held bag reserved for a patient ---------------------------------------------------------------------------

def test_qa_discarding_a_reserved_bag_is_told_the_prescriber_cancels_first_not_to_dispatch_it(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.released_lot_id))
    reserved = bags_by_status(app, recall_id)["allocated"][0]
    with session_of(app) as session:
        bag = session.get(Bag, reserved)
        din, token = bag.din, token_of(bag)
        prescription_id = session.scalars(select(Prescription.id).where(Prescription.status == "active")).one()
    before = written(app, reserved)

    # the ward page (QA discards a bag in the unit there too): the custody words
    ward = qa.post("/ward/event", data={"bag": token, "action": "discard", "reason": "Recalled: destroyed"})
    words = ward.get_data(as_text=True)
    assert ward.status_code == 409, words[:2000]
    assert f"Bag {parse_din(din).display} cannot be discarded." in words
    assert "reserved for a patient by a signed prescription" in words
    assert "The prescriber first cancels (or stops) that course" in words and "then QA discards it" in words
    assert OLD_ADVICE not in words and "(dispatch)" not in words

    # the recall's page: the row says what to do; the discard route refuses, naming the patient and prescription
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    row = row_of(page, din)
    assert f"reserved for patient {s.patient_code} by prescription #{prescription_id}" in row
    assert "the prescriber cancels the course, then QA discards it" in row
    assert "QA decides (discard / return to stock)" not in page and "Discard (recalled)" not in row
    refused = qa.post(discard_url(recall_id, reserved), data={"reason": "Recalled: destroyed"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409, text[:2000]
    assert 'id="discard-refusal"' in text and f"Recall R-{recall_id}" in text  # shown on the recall's page
    assert (f"Bag {parse_din(din).display} cannot be discarded yet: it is reserved for patient {s.patient_code} by signed "
            f"prescription #{prescription_id}. The prescriber first cancels (or stops) that course") in text
    assert written(app, reserved) == before  # nothing written, by either page

    # the recall's refusal to complete says the same
    outstanding = complete(qa, recall_id).get_data(as_text=True)
    assert f"bag {parse_din(din).display} (in stock, reserved for a patient by a prescription: the prescriber cancels the course, " \
           "then QA discards it)" in outstanding


# ---- 2. Discard (recalled) on the recall's page -----------------------------------------------------------------------

def test_qa_discards_a_held_bag_in_stock_from_the_recall_page(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "donor", s.donor_code)  # its lots: one with 2 bags reserved, one with 2 in stock
    by_status = bags_by_status(app, recall_id)
    assert (len(by_status["allocated"]), len(by_status["stored"])) == (2, 2)
    in_stock = by_status["stored"][0]
    with session_of(app) as session:
        din = session.get(Bag, in_stock).din
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    row = row_of(page, din)
    assert "Discard (recalled)" in row and f'action="{discard_url(recall_id, in_stock)}"' in row
    assert f'id="discard-reason-{in_stock}"' in row and "<strong>ON HOLD</strong>" in row
    assert page.count("Discard (recalled)</button>") == 2  # only the bags QA may discard now (not the reserved ones)

    before = written(app, in_stock)
    for blank in ("", "   "):
        missing = qa.post(discard_url(recall_id, in_stock), data={"reason": blank})
        text = missing.get_data(as_text=True)
        assert missing.status_code == 422 and f"Say why bag {parse_din(din).display} is discarded" in text
        assert 'id="discard-refusal"' in text and 'aria-invalid="true"' in row_of(text, din)
    too_long = qa.post(discard_url(recall_id, in_stock), data={"reason": "x" * 1001})
    assert too_long.status_code == 422 and "at most 1000 characters" in too_long.get_data(as_text=True)
    for role in ("technician", "clinician", "nurse"):
        assert client_as(role).post(discard_url(recall_id, in_stock),
                                     data={"reason": "Recalled: destroyed"}).status_code == 403
    assert written(app, in_stock) == before

    done = qa.post(discard_url(recall_id, in_stock), data={"reason": "Recalled: destroyed"})
    assert done.status_code == 302, done.get_data(as_text=True)[:2000]
    assert done.headers["Location"].split("#")[0].endswith(f"/recalls/{recall_id}")
    after = qa.get(done.headers["Location"]).get_data(as_text=True)
    assert f"Bag {parse_din(din).display} recorded as DISCARDED under recall R-{recall_id} (Recalled: destroyed)" in after
    assert "destroyed (hold kept)" in row_of(after, din) and "Discard (recalled)" not in row_of(after, din)
    with session_of(app) as session:
        assert session.get(Bag, in_stock).status == "discarded"
        event = session.scalars(select(CustodyEvent).where(CustodyEvent.bag_id == in_stock)
                                .order_by(CustodyEvent.id.desc())).first()
        assert (event.kind, event.from_status, event.to_status) == ("discarded", "stored", "discarded")
        assert event.reason == f"Recall R-{recall_id}: Recalled: destroyed"
        trail = session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "bag",
                                                         AuditEvent.entity_id == str(in_stock),
                                                         AuditEvent.field == "status")).all()
        assert [(e.old_value, e.new_value) for e in trail][-1] == ("stored", "discarded")
        assert trail[-1].reason == f"Recall R-{recall_id}: Recalled: destroyed" and trail[-1].actor_name == "qa"
        hold = session.scalars(select(BagHold).where(BagHold.bag_id == in_stock)).one()
        assert hold.lifted_at is None  # the hold stays, the record of the recall

    again = qa.post(discard_url(recall_id, in_stock), data={"reason": "Recalled: destroyed"})
    assert again.status_code == 409 and "It was DISCARDED" in again.get_data(as_text=True)


def test_the_recall_page_discards_only_what_this_recall_holds(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.quarantine_lot_id))
    with session_of(app) as session:
        other_bag = session.scalars(select(Bag.id).where(Bag.lot_id == s.other_lot_id)).first()
    before = written(app, other_bag)
    not_held = qa.post(discard_url(recall_id, other_bag), data={"reason": "Recalled: destroyed"})
    assert not_held.status_code == 404 and f"Recall R-{recall_id} holds no bag" in not_held.get_data(as_text=True)
    assert qa.post(discard_url(recall_id + 99, other_bag), data={"reason": "x"}).status_code == 404
    assert written(app, other_bag) == before

    held = held_bags(app, recall_id)[0][0]
    assert qa.post(f"/recalls/{recall_id}/end", data={"reason": "Supplier withdrew the notice: wrong lot number",
                                                      "password": "correct-horse-battery"}).status_code == 302
    before = written(app, held)
    lifted = qa.post(discard_url(recall_id, held), data={"reason": "Recalled: destroyed"})
    assert lifted.status_code == 409 and "its hold was lifted when the recall was ended" in lifted.get_data(as_text=True)
    assert written(app, held) == before
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert "Discard (recalled)" not in page and "its holds were lifted" in page


# ---- 3. the closing note ----------------------------------------------------------------------------------------

def test_a_one_word_closing_note_is_refused(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.quarantine_lot_id))
    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held_bags(app, recall_id)])
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert "At least 20 characters" in page[page.index('id="complete"'):]
    for short in ("short", "Done, all destroyed", " " * 30 + "ok" + " " * 30):
        refused = complete(qa, recall_id, note=short)
        text = refused.get_data(as_text=True)
        assert refused.status_code == 422, (short, text[:2000])
        assert re.search(r'id="note-error">Write the closing note, at least 20 characters \(this one has \d+\)', text)
    with session_of(app) as session:
        assert session.get(Recall, recall_id).status == "active"
    assert complete(qa, recall_id, note="Reconciled: 2 made, 2 destroyed.").status_code == 302


# ---- 4. a completed recall's held bags, counted as the rows say them --------------------------------------------

def test_a_completed_recall_says_its_held_bags_are_destroyed_not_on_hold(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.released_lot_id))
    held = held_bags(app, recall_id)
    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held])
    notify_all(app, qa, recall_id)  # its infused patient's clinician told (recall.notices)
    assert complete(qa, recall_id).status_code == 302

    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    summary = page[page.index('id="held-now"'):]
    summary = re.sub(r"<[^>]+>", "", summary[:summary.index("</p>")])
    assert (f"Holds kept: {len(held)} (all destroyed); bags still in stock or on the ward: 0. Completing lifts no "
            "hold: the bedside check still stops every bag this recall held.") in summary
    for _bag_id, din, _status in held:
        row = row_of(page, din)
        assert "destroyed (hold kept)" in row and "ON HOLD" not in row
    assert page.count('data-hold="active"') == len(held)  # the holds themselves stay
    assert NOTE in page

    pdf = qa.get(f"/recalls/{recall_id}/report.pdf")
    words = " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert f"Holds kept: {len(held)} (all destroyed); bags still in stock or on the ward: 0." in words
    assert words.count("(hold kept)") == len(held) and "ON HOLD" not in words
