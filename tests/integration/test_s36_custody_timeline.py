"""Session 36 (custody): the bag's trace page tells each step of its chain of custody in plain words: who, when,
where from and to, and why or the hand-over's details: a dispatch its courier, shipper, temperature logger and
ward; a return its reason; a move its old position and reason; a reprint that it was one and why; a prescription
letting the bag go that it did so (its reason, which tells of the patient, for the clinical team only); QA's
assessment of a return the logger's warmest temperature. The page reads the timeline in a bounded number of
queries, however long the bag's history."""
from __future__ import annotations

import html as markup
import re
from typing import Any

from sqlalchemy import event, select

from mscbatch.custody import handover, returns
from mscbatch.custody.models import CustodyEvent
from mscbatch.custody.queries import timeline
from mscbatch.labelling.services import print_labels
from mscbatch.lots.models import Bag, StorageLocation
from mscbatch.lots.queries import position_label
from mscbatch.lots.storage import store_bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, prescribed_bag

CANCEL_WHY = "patient febrile, infusion postponed a week"


def _walked(app: Any) -> dict[str, Any]:
    """One bag sent to the ward, received, returned and put back into stock by QA; another of its course moved,
    its label reprinted, then let go when the prescription was cancelled."""
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session, state="received")
        tech = user(session, "technician")
        other = session.get(Bag, ward.other_bag_ids[0])
        box = session.get(StorageLocation, other.box_id)
        old = f"{box.name}, position {position_label(box, other.position)}"
        store_bag(session, tech, other.id, box.id, box.capacity, reason="tank door seal replaced")
        new = f"{box.name}, position {position_label(box, box.capacity)}"
        print_labels(session, tech, other.lot_id, print_format="bag", bag_id=other.id, reason="label smudged",
                     base_url="https://labels.example.org/", key=KEY)
        handover.return_bag(session, user(session, "nurse"), ward.bag_id, reason="infusion postponed: fever",
                            location="Ward 3")
        prescription_id = session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == ward.bag_id))
        prescriptions.cancel(session, user(session, "clinician"), prescription_id, CANCEL_WHY, password=PASSWORD)
        returns.assess_return(session, user(session, "qa"), ward.bag_id, decision="restock", password=PASSWORD,
                              rationale="Logger TL-0042 never above -172 C; bag intact.", logger_max_c="-172.4",
                              intact=True)
        session.commit()
        return {"bag": ward.bag_id, "other": other.id, "old": old, "new": new}


def _rows(client: Any, bag_id: int) -> dict[str, str]:
    """The timeline's rows by their event's kind (the latest of a kind), each as its text."""
    page = client.get(f"/trace/bags/{bag_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    rows = re.findall(r'<tr id="custody-event-(\d+)">(.*?)</tr>', html, re.S)
    session = client.application.extensions["mscbatch.db"].new_session()
    try:
        kinds = {i: k for i, k in session.execute(select(CustodyEvent.id, CustodyEvent.kind).where(
            CustodyEvent.bag_id == bag_id))}
    finally:
        session.close()
    out = {}
    for event_id, cells in rows:
        text = " ".join(markup.unescape(re.sub(r"<[^>]+>", " ", cells)).split())
        out[kinds[int(event_id)]] = text
    return out


def test_a_technician_reads_each_hand_over_in_plain_words(app, users, client_as):
    made = _walked(app)
    rows = _rows(client_as("technician"), made["bag"])
    sent = rows["dispatched"]
    assert "Sent to the ward" in sent and "from Cell therapy unit" in sent and "to the ward (Ward 3)" in sent, sent
    assert "Courier: Fast Courier" in sent and "Shipper: Dry shipper DS-3" in sent, sent
    assert "Temperature logger: TL-0042" in sent, sent
    assert "from courier Fast Courier" in rows["received"] and "Ward 3" in rows["received"], rows["received"]
    back = rows["returned"]
    assert "Returned to the cell therapy unit" in back and "from Ward 3" in back, back
    # the ward's reason tells of the patient: for the readers of patient records (QA assesses the return), not
    # the technician (re-review: a technician read "the patient has a fever" here)
    assert "infusion postponed: fever" not in back and "shown to the clinical team only" in back, back
    assert "Why: infusion postponed: fever" in _rows(client_as("qa"), made["bag"])["returned"]
    restocked = rows["stored"]
    assert "Back into stock after QA's assessment of its return" in restocked, restocked
    assert "Warmest logger temperature: -172.4 °C" in restocked and "seen intact" in restocked, restocked
    assert "status: returned → stored" in restocked, restocked  # a status is said where it changed, only there
    assert not any("status: stored → stored" in row for row in rows.values()), rows
    # the times as every page says them: the site's local time with UTC beside it
    assert re.search(r"\d\d:\d\d [A-Z+0-9-]+ \((\d{4}-\d\d-\d\d )?\d\d:\d\d UTC\)", sent), sent


def test_a_move_a_reprint_and_a_prescription_letting_the_bag_go_say_what_they_were(app, users, client_as):
    made = _walked(app)
    rows = _rows(client_as("technician"), made["other"])
    moved = rows["moved"]
    assert f"from {made['old']}" in moved and f"to {made['new']}" in moved, moved
    assert "Why: tank door seal replaced" in moved, moved
    label = rows["labelled"]
    assert "Label REPRINTED" in label and "Why: label smudged" in label, label
    assert "Print no." not in label, label  # the print's row id is shown nowhere else (re-review)
    let_go = rows["stored"]
    assert "Let go by its prescription: back in stock" in let_go and "was cancelled" in let_go, let_go
    assert f"at {made['new']} (it stays there)" in let_go, let_go
    assert CANCEL_WHY not in let_go and "shown to the clinical team only" in let_go, let_go  # it tells of the patient
    assert CANCEL_WHY in _rows(client_as("clinician"), made["other"])["stored"]


def test_the_timeline_is_read_in_a_bounded_number_of_queries(app, users):
    made = _walked(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        counted: list[str] = []
        engine = session.get_bind()

        def count(*_args: Any) -> None:
            counted.append("q")

        event.listen(engine, "before_cursor_execute", count)
        try:
            entries = timeline(session, made["bag"])
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert len(entries) >= 5 and len(counted) <= 6, (len(entries), len(counted))
        # who, for the readers that want the record only (the evidence bundle): each unpacks as (event, who)
        (first, who), *_rest = entries
        assert isinstance(first, CustodyEvent) and who
