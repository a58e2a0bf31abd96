"""Review 3 (ward): a hand-over has a giver and a receiver (one account holding technician and nurse dispatched a
bag and then recorded its receipt on the ward itself), and the second person of a bedside check must be an account
that may sign in (one holding the administrator role beside nurse, left from an older version, could confirm)."""
from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import UserRole
from mscbatch.custody import bedside, handover
from mscbatch.errors import AuthenticationFailed, Conflict
from tests.conftest import PASSWORD, add_user, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, check, prescribed_bag


def test_the_dispatcher_cannot_record_the_receipt(app, users, db_session):
    add_user(app, "technurse", ["technician", "nurse"])
    ward = prescribed_bag(db_session, state="allocated")
    both = user(db_session, "technurse")
    handover.dispatch(db_session, both, ward.bag_id, courier="C", shipper="S", temperature_logger_id="T")
    with pytest.raises(Conflict, match="you dispatched bag .* yourself"):
        handover.receive(db_session, both, ward.bag_id, location="Ward 3")
    db_session.rollback()
    token = api_token_for(app, "technurse")
    answer = app.test_client().post("/api/v1/custody/events", headers={"Authorization": f"Bearer {token}"},
                                    json={"kind": "received", "bag_id": ward.bag_id})
    assert answer.status_code == 409
    handover.receive(db_session, user(db_session, "nurse"), ward.bag_id, location="Ward 3")  # someone else: fine


def test_an_account_that_may_not_sign_in_cannot_be_the_second_person(app, users, db_session):
    ward = prescribed_bag(db_session)
    nurse2_id = user(db_session, "nurse2").id
    db_session.rollback()
    with app.extensions["mscbatch.db"].engine.begin() as connection:  # as an older version could have written it
        connection.execute(insert(UserRole.__table__).values(user_id=nurse2_id, role="admin"))
    result = check(db_session, ward)
    assert result.matches
    with pytest.raises(AuthenticationFailed, match="Second person: wrong user name or password"):  # one answer
        bedside.confirm_second_person(db_session, user(db_session, "nurse"), result.check_id, username="nurse2",
                                      password=PASSWORD, checker_password=PASSWORD, label_key=KEY)
    db_session.rollback()
    assert db_session.scalar(select(AuditEvent.reason).where(AuditEvent.action == "second_person_refused")) == \
        "second person: account may not sign in"
