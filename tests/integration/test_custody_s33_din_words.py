"""Session 33 (custody): a hand-over's refusal names the bag as its label and every page do, with its check
character K ("X9999 99 030101 K"), never the bare 13 characters: the nurse reads it against the label in her hand."""
from __future__ import annotations

import pytest

from mscbatch.core.identifiers import din_shown
from mscbatch.custody import handover
from mscbatch.errors import Conflict, PermissionDenied
from mscbatch.lots.models import Bag
from tests.conftest import add_user, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag


def _shown(bag: Bag) -> str:
    return f"{bag.din[:5]} {bag.din[5:7]} {bag.din[7:]} {bag.check_character}"


def test_the_shown_din_is_the_labels_grouping_with_its_k():
    class Row:
        din, check_character = "G123417654321", "A"
    assert din_shown(Row()) == "G1234 17 654321 A"


def _refusal(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises((Conflict, PermissionDenied)) as caught:
        call()
    return str(caught.value)


def test_hand_over_refusals_name_the_bag_with_its_check_character(app, users, db_session):
    add_user(app, "technurse", ["technician", "nurse"])
    ward = prescribed_bag(db_session, state="allocated")
    bag = db_session.get(Bag, ward.bag_id)
    shown = _shown(bag)
    nurse, both = user(db_session, "nurse"), user(db_session, "technurse")
    said = {
        "receive before dispatch": _refusal(lambda: handover.receive(db_session, nurse, bag.id)),
        "a nurse dispatching": _refusal(lambda: handover.dispatch(db_session, nurse, bag.id, courier="C", shipper="S",
                                                                  temperature_logger_id="T")),
    }
    db_session.rollback()
    handover.dispatch(db_session, both, bag.id, courier="C", shipper="S", temperature_logger_id="T")
    said["receipt by its dispatcher"] = _refusal(lambda: handover.receive(db_session, both, bag.id))
    said["thaw before receipt"] = _refusal(lambda: handover.thaw(db_session, nurse, bag.id))
    db_session.rollback()
    for step, words in said.items():
        assert shown in words, (step, words)


def test_the_ward_page_says_the_bag_with_its_check_character(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="dispatched")
    bag = db_session.get(Bag, ward.bag_id)
    shown, din = _shown(bag), bag.din
    db_session.commit()
    client = client_as("nurse")
    page = client.post("/ward/event", data={"bag": ward.token, "action": "thaw"})  # not yet received
    html = page.get_data(as_text=True)
    assert page.status_code == 409 and f"Bag {shown} cannot be thawed." in html, html
    received = client.post("/ward/event", data={"bag": ward.token, "action": "receive"}, follow_redirects=True)
    assert f"Bag {shown} received on the ward." in received.get_data(as_text=True)
    assert f"Bag {din} " not in received.get_data(as_text=True)


def test_a_nurse_asking_the_api_to_dispatch_is_refused_for_her_role_not_asked_for_a_courier(app, users, db_session):
    """The role first (403), as the ward page and the state machine say it: "Give the courier" (422) told a nurse
    what to add, as if with a courier she could send the bag."""
    ward = prescribed_bag(db_session, state="allocated")
    db_session.commit()
    token = api_token_for(app, "nurse")
    answer = app.test_client().post("/api/v1/custody/events", headers={"Authorization": f"Bearer {token}"},
                                    json={"kind": "dispatched", "bag_id": ward.bag_id})
    assert answer.status_code == 403, answer.get_json()
    assert "Give the courier" not in answer.get_json()["detail"]
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Bag, ward.bag_id).status == "allocated"
    # a technician without a courier is still asked for it, naming each field, and nothing is sent
    tech = api_token_for(app, "technician")
    answer = app.test_client().post("/api/v1/custody/events", headers={"Authorization": f"Bearer {tech}"},
                                    json={"kind": "dispatched", "bag_id": ward.bag_id, "courier": "  "})
    assert answer.status_code == 422 and "Give the courier." in answer.get_json()["detail"], answer.get_json()
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Bag, ward.bag_id).status == "allocated"
