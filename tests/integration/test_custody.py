"""Chain of custody (issue 7 point 3): the event log is append-only and impossible sequences are refused by
the bag state machine; dispatch records courier, shipper and temperature logger."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text

from mscbatch.audit.context import use_case
from mscbatch.custody import handover, infusions, services
from mscbatch.custody.models import CustodyEvent
from mscbatch.errors import Conflict, PermissionDenied, RecordLocked, ValidationFailed
from mscbatch.lots.models import Bag
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag


def test_dispatch_receive_thaw_is_recorded_with_who_where_and_the_scan(app, users, db_session):
    ward = prescribed_bag(db_session)
    events = services.events_of(db_session, ward.bag_id)
    assert [(e.kind, e.from_status, e.to_status) for e in events] == [
        ("allocated", "stored", "allocated"),  # written by the prescription (patient factories)
        ("dispatched", "allocated", "dispatched"), ("received", "dispatched", "received"),
        ("thawed", "received", "thawed")]
    events = events[1:]  # the ward's own events from here
    assert events[0].details == {"courier": "Fast Courier", "shipper": "Dry shipper DS-3",
                                 "temperature_logger_id": "TL-0042"}
    assert events[1].location == "Ward 3" and events[1].scan == ward.token
    assert events[1].actor_id == user(db_session, "nurse").id


def test_thawed_before_received_is_refused(app, users, db_session):
    ward = prescribed_bag(db_session, state="dispatched")
    with pytest.raises(Conflict, match="Its arrival on the ward has not been recorded: receive it first"):
        handover.thaw(db_session, user(db_session, "nurse"), ward.bag_id)
    assert db_session.get(Bag, ward.bag_id).status == "dispatched"


def test_received_twice_and_infused_twice_are_refused(app, users, db_session):
    ward = prescribed_bag(db_session)
    nurse = user(db_session, "nurse")
    with pytest.raises(Conflict, match="already received and THAWED"):
        handover.receive(db_session, nurse, ward.bag_id)
    checked_and_confirmed(db_session, ward)
    infusions.start_infusion(db_session, nurse, ward.bag_id, wristband=ward.wristband, bag_scan=ward.token, label_key=KEY)
    with pytest.raises(Conflict, match="is being infused now"):
        infusions.start_infusion(db_session, nurse, ward.bag_id, wristband=ward.wristband, bag_scan=ward.token, label_key=KEY)
    # a running infusion: the ward's words are true of it (not "already infused" as if given and done)
    with pytest.raises(Conflict, match="Its infusion was already started: it is being infused now or was already "
                                       "given"), use_case(db_session, nurse):
        services.record_event(db_session, nurse, db_session.get(Bag, ward.bag_id), "infusion_started")
    with pytest.raises(Conflict, match="Bag .* cannot be thawed. Its infusion was already started"):
        handover.thaw(db_session, nurse, ward.bag_id)


def test_only_the_right_roles_move_a_bag(app, users, db_session):
    ward = prescribed_bag(db_session, state="allocated")
    with pytest.raises(PermissionDenied, match="only technician may dispatch"):
        handover.dispatch(db_session, user(db_session, "nurse"), ward.bag_id, courier="c", shipper="s",
                          temperature_logger_id="t")
    with pytest.raises(ValidationFailed, match="temperature logger id"):
        handover.dispatch(db_session, user(db_session, "technician"), ward.bag_id, courier="c", shipper="s",
                          temperature_logger_id=" ")


def test_an_unallocated_bag_cannot_be_dispatched(app, users, db_session):
    from tests.integration.patient_factories import donor, lot_with_bags

    tech = user(db_session, "technician")
    spare = lot_with_bags(db_session, tech, donor(db_session, tech), bags=1)[0]
    with pytest.raises(Conflict, match="not allocated to a patient"):
        handover.dispatch(db_session, tech, spare.id, courier="c", shipper="s", temperature_logger_id="t")


def test_a_return_and_a_discard_need_a_reason(app, users, db_session):
    ward = prescribed_bag(db_session, state="received")
    nurse = user(db_session, "nurse")
    with pytest.raises(ValidationFailed, match="why the bag is returned"):
        handover.return_bag(db_session, nurse, ward.bag_id, reason="")
    handover.return_bag(db_session, nurse, ward.bag_id, reason="infusion postponed")
    assert db_session.get(Bag, ward.bag_id).status == "returned"


def test_custody_events_are_append_only_in_the_session_and_in_the_database(app, users, db_session):
    ward = prescribed_bag(db_session, state="received")
    event = db_session.scalar(select(CustodyEvent).where(CustodyEvent.bag_id == ward.bag_id))
    with pytest.raises(RecordLocked), use_case(db_session, user(db_session, "qa"), "tamper"):
        event.location = "elsewhere"
        db_session.flush()
    for statement in ("UPDATE custody_event SET location = 'x'", "DELETE FROM custody_event"):
        with pytest.raises(Exception, match="append-only"):
            db_session.execute(text(statement))
        db_session.rollback()
