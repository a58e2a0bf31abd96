"""S38 (Part 11 inspection): the audit trail of the bedside check names the second person for what is theirs (the
confirmation, their signature, the lock), every custody step's audit rows say why, and the bedside check's custody
event says where it was done."""
from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.audit.context import acting_as, use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.audit.verify import verify_database
from mscbatch.custody import bedside, handover
from mscbatch.custody.models import CustodyEvent
from mscbatch.errors import ValidationFailed
from mscbatch.lots.models import Bag
from tests.conftest import PASSWORD, TEST_CONFIG, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, check, prescribed_bag


def _last_seq(session: Any) -> int:
    return session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0


def _events_since(session: Any, seq: int) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)))


def _who_did_what(session: Any, check_id: int, since: int) -> dict[str, str]:
    """The confirmation's audit events, each as what -> actor name."""
    seen: dict[str, str] = {}
    for event in _events_since(session, since):
        if event.entity_type == "two_person_check" and event.entity_id == str(check_id) and event.field:
            seen[event.field] = event.actor_name
        elif event.entity_type == "signature" and event.action == "insert":
            signer = json.loads(event.new_value)["signer_id"]
            seen[f"signature of {'nurse' if signer == str(user(session, 'nurse').id) else 'nurse2'}"] = event.actor_name
        elif event.entity_type == "custody_event" and event.action == "insert":
            seen[json.loads(event.new_value)["kind"]] = event.actor_name
    return seen


EXPECTED_ACTORS = {"second_checker_id": "nurse2", "confirmed_at": "nurse2", "locked_at": "nurse2",
                   "signature of nurse": "nurse", "signature of nurse2": "nurse2", "bedside_verified": "nurse"}


def test_s38_second_persons_confirmation_and_signature_are_audited_as_theirs(app, users, db_session):
    ward = prescribed_bag(db_session)
    result = check(db_session, ward)
    since = _last_seq(db_session)
    bedside.confirm_second_person(db_session, user(db_session, "nurse"), result.check_id, username="nurse2",
                                  password=PASSWORD, checker_password=PASSWORD, label_key=KEY)
    db_session.expire_all()
    assert _who_did_what(db_session, result.check_id, since) == EXPECTED_ACTORS
    # every row of the step says why, and the chain still verifies with the actor switched mid-transaction
    reasons = {event.reason for event in _events_since(db_session, since)}
    assert reasons == {"Bedside check confirmed by Nurse2 (nurse2), the second person"}
    db_session.rollback()
    assert verify_database(db_session, TEST_CONFIG["AUDIT_KEY"]).ok


def test_s38_the_api_confirmation_audits_the_second_person_too(app, users):
    with app.extensions["mscbatch.db"].new_session() as session:
        check_id = check(session, prescribed_bag(session)).check_id
        since = _last_seq(session)
    token = api_token_for(app, "nurse")
    response = app.test_client().post(f"/api/v1/custody/checks/{check_id}/confirm",
                                      headers={"Authorization": f"Bearer {token}"},
                                      json={"username": "nurse2", "password": PASSWORD, "checker_password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    with app.extensions["mscbatch.db"].new_session() as session:
        assert _who_did_what(session, check_id, since) == EXPECTED_ACTORS


def test_s38_acting_as_restores_the_actor_and_needs_a_use_case(app, users, db_session):
    nurse, nurse2 = user(db_session, "nurse"), user(db_session, "nurse2")
    with use_case(db_session, nurse, "test"):
        with acting_as(db_session, nurse2):
            assert db_session.info["actor"] == (nurse2.id, "nurse2")
            assert db_session.info["audit_reason"] == "test"  # the use case's reason stays
        assert db_session.info["actor"] == (nurse.id, "nurse")
    with pytest.raises(RuntimeError), acting_as(db_session, nurse2):
        pass


def test_s38_every_custody_step_says_why_in_the_audit_trail(app, users, db_session):
    since = _last_seq(db_session)
    ward = prescribed_bag(db_session)  # dispatched from the unit, received and thawed on Ward 3
    db_session.expire_all()
    steps = {}
    for event in _events_since(db_session, since):
        if event.entity_type == "bag" and event.entity_id == str(ward.bag_id) and event.field == "status":
            steps[event.new_value] = event.reason
        if event.entity_type == "custody_event" and json.loads(event.new_value)["bag_id"] == ward.bag_id:
            kind = json.loads(event.new_value)["kind"]
            if kind in ("dispatched", "received", "thawed"):
                assert event.reason == steps[kind], kind  # the custody event's row says the same
    assert steps["dispatched"] == ("Dispatched to the ward from Cell therapy unit by courier Fast Courier (shipper "
                                   "Dry shipper DS-3, temperature logger TL-0042)")
    assert steps["received"] == "Received on Ward 3"
    assert steps["thawed"] == "Thawed on Ward 3"
    since = _last_seq(db_session)
    result = check(db_session, ward)
    stop = check(db_session, ward, wristband="WB-NOBODY")
    db_session.expire_all()
    assert [e.reason for e in _events_since(db_session, since)] == [
        "Bedside check scanned: MATCHES",
        "Bedside check scanned: STOP (" + ", ".join(f.code.replace("_", " ") for f in stop.failures) + ")"]
    assert result.matches and not stop.matches


def test_s38_a_step_without_location_says_so_and_a_return_still_needs_a_persons_reason(app, users, db_session):
    ward = prescribed_bag(db_session, state="dispatched")
    since = _last_seq(db_session)
    handover.receive(db_session, user(db_session, "nurse"), ward.bag_id)
    db_session.expire_all()
    assert {e.reason for e in _events_since(db_session, since)} == {"Received on the ward (no location given)"}
    with pytest.raises(ValidationFailed, match="Say why the bag is returned"):
        handover.return_bag(db_session, user(db_session, "nurse"), ward.bag_id, reason="  ")
    db_session.rollback()
    assert db_session.get(Bag, ward.bag_id).status == "received"


def _bedside_event(session: Any, bag_id: int) -> CustodyEvent:
    return session.scalar(select(CustodyEvent).where(CustodyEvent.bag_id == bag_id,
                                                     CustodyEvent.kind == "bedside_verified"))


def test_s38_the_bedside_check_event_says_where_the_bag_was_received(app, users, db_session):
    ward = prescribed_bag(db_session)  # received on Ward 3
    result = check(db_session, ward)
    bedside.confirm_second_person(db_session, user(db_session, "nurse"), result.check_id, username="nurse2",
                                  password=PASSWORD, checker_password=PASSWORD, label_key=KEY)
    assert _bedside_event(db_session, ward.bag_id).location == "Ward 3"


def test_s38_the_bedside_check_event_keeps_a_location_given_with_it(app, users, db_session):
    ward = prescribed_bag(db_session)  # received on Ward 3; the check done in a room of it
    result = check(db_session, ward)
    bedside.confirm_second_person(db_session, user(db_session, "nurse"), result.check_id, username="nurse2",
                                  password=PASSWORD, checker_password=PASSWORD, label_key=KEY,
                                  location="  Ward 3, room 12  ")
    assert _bedside_event(db_session, ward.bag_id).location == "Ward 3, room 12"
