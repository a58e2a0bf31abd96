"""Review 13 (Part 11): signing in on a browser already signed in (a ward tablet handed to the next nurse) ends the
session it replaces. Its cookie was dropped, but its server-side session stayed open, with no event saying when
the first person's session ended: the trail showed them signed in from then on."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import AuthSession, User
from tests.conftest import login


def test_signing_in_over_an_open_session_ends_it_in_the_trail(app, users, db_session):
    client = app.test_client()
    assert login(client, "nurse").status_code == 302
    assert login(client, "nurse2").status_code == 302
    nurse = db_session.scalar(select(User.id).where(User.username == "nurse"))
    nurse2 = db_session.scalar(select(User.id).where(User.username == "nurse2"))
    first = db_session.scalars(select(AuthSession).where(AuthSession.user_id == nurse)).one()
    assert first.ended_at is not None and first.end_reason == "logout"
    ended = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "logout",
                                                        AuditEvent.entity_id == str(nurse))).all()
    assert len(ended) == 1 and ended[0].actor_id == nurse
    second = db_session.scalars(select(AuthSession).where(AuthSession.user_id == nurse2)).one()
    assert second.ended_at is None
    db_session.rollback()
    assert client.get("/account").status_code == 200  # the new person is signed in


def test_a_refused_sign_in_leaves_the_open_session_alone(app, users, db_session):
    client = app.test_client()
    assert login(client, "nurse").status_code == 302
    assert login(client, "nurse2", "wrong password here").status_code == 401
    nurse = db_session.scalar(select(User.id).where(User.username == "nurse"))
    assert db_session.scalars(select(AuthSession).where(AuthSession.user_id == nurse)).one().ended_at is None
    db_session.rollback()
    assert client.get("/account").status_code == 200  # still the first person's
