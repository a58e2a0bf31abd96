"""Sign-in, lockout, sessions that end on the server, account administration."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import AuthSession, User
from mscbatch.auth.services import BAD_CREDENTIALS
from mscbatch.database import utcnow
from tests.conftest import PASSWORD, login


def _user(app, username):  # type: ignore[no-untyped-def]
    with app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        user = session.scalar(select(User).where(User.username == username))
        session.close()
        return user


def _events(app, **where):  # type: ignore[no-untyped-def]
    with app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        query = select(AuditEvent).order_by(AuditEvent.seq)
        for key, value in where.items():
            query = query.where(getattr(AuditEvent, key) == value)
        rows = session.scalars(query).all()
        session.close()
        return rows


def test_a_user_signs_in_and_out(app, users):
    client = app.test_client()
    assert login(client, "nurse").status_code == 302
    assert client.get("/account").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/account").status_code == 302


def test_a_wrong_password_is_refused_with_a_message_next_to_the_field(app, users):
    response = login(app.test_client(), "nurse", "not-the-password")
    assert response.status_code == 401
    assert BAD_CREDENTIALS.encode() in response.data
    assert b'id="password-error"' in response.data


def test_five_wrong_passwords_lock_the_account_until_an_admin_unlocks_it(app, users, client_as):
    client = app.test_client()
    for attempt in range(4):
        assert BAD_CREDENTIALS.encode() in login(client, "nurse", f"wrong-{attempt}").data
        assert _user(app, "nurse").locked_out_at is None
    fifth = login(client, "nurse", "wrong-5")
    # the locking answer is the same as any wrong password's: it must not tell a real account from an unknown name
    assert BAD_CREDENTIALS.encode() in fifth.data
    assert _user(app, "nurse").locked_out_at is not None
    refused = login(client, "nurse", PASSWORD)  # even the right password: no session, the same answer
    assert refused.status_code == 401 and BAD_CREDENTIALS.encode() in refused.data

    admin = client_as("admin")
    nurse_id = _user(app, "nurse").id
    no_reason = admin.post(f"/admin/users/{nurse_id}/unlock", data={"reason": ""})
    assert no_reason.status_code == 422 and b"Give a reason" in no_reason.data
    assert admin.post(f"/admin/users/{nurse_id}/unlock", data={"reason": "called the ward, identity checked"}
                      ).status_code == 302
    again = admin.post(f"/admin/users/{nurse_id}/unlock", data={"reason": "pressed twice"})
    assert again.status_code == 409 and b"is not locked" in again.data  # the account's state, not the form
    assert login(client, "nurse", PASSWORD).status_code == 302
    unlock_events = [e for e in _events(app, entity_type="user_account", field="locked_out_at")
                     if e.new_value is None]
    assert unlock_events and unlock_events[-1].actor_name == "admin"
    assert unlock_events[-1].reason == "called the ward, identity checked"


def test_a_session_cookie_replayed_after_logout_is_refused(app, users):
    client = app.test_client()
    login(client, "qa")
    cookie = client.get_cookie("mscbatch_session").value
    client.post("/logout")
    replay = app.test_client()
    replay.set_cookie("mscbatch_session", cookie)
    response = replay.get("/account")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_idle_session_ends_after_the_configured_timeout(app, users):
    client = app.test_client()
    login(client, "qa")
    with app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        session.execute(update(AuthSession).values(last_seen_at=utcnow() - timedelta(minutes=16)))
        session.commit()
        session.close()
    assert client.get("/account").status_code == 302
    # review 4: the end is in the trail, who and why, as a sign-out is (it was written on the session row only)
    [ended] = _events(app, action="session_expired")
    assert (ended.actor_name, ended.entity_id, ended.reason) == ("qa", str(_user(app, "qa").id),
                                                                 "session ended: idle timeout")


def test_an_absolute_timeout_ends_even_an_active_session(app, users):
    client = app.test_client()
    login(client, "qa")
    with app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        session.execute(update(AuthSession).values(created_at=utcnow() - timedelta(hours=13)))
        session.commit()
        session.close()
    assert client.get("/account").status_code == 302


def test_disabling_an_account_ends_its_open_sessions(app, users, client_as):
    nurse = client_as("nurse")
    assert nurse.get("/account").status_code == 200
    admin = client_as("admin")
    nurse_id = _user(app, "nurse").id
    assert admin.post(f"/admin/users/{nurse_id}/disable", data={"reason": "left the unit"}).status_code == 302
    assert nurse.get("/account").status_code == 302
    assert login(app.test_client(), "nurse").status_code == 401


def test_changing_the_password_ends_every_session_of_the_user(app, users, client_as):
    first, second = client_as("clinician"), client_as("clinician")
    response = first.post("/account/password", data={"current_password": PASSWORD,
                                                      "new_password": "a-brand-new-passphrase"})
    assert response.status_code == 302
    assert second.get("/account").status_code == 302
    assert login(app.test_client(), "clinician", "a-brand-new-passphrase").status_code == 302


def test_a_too_short_new_password_is_refused_and_named(client_as):
    response = client_as("clinician").post("/account/password", data={"current_password": PASSWORD,
                                                                       "new_password": "short"})
    assert response.status_code == 422
    assert b"New password: Use at least 12 characters." in response.data


def test_an_admin_creates_a_user_with_several_roles(app, users, client_as):
    response = client_as("admin").post("/admin/users", data={
        "username": "mixed", "full_name": "Max Mixed", "password": "long-enough-password",
        "roles": ["technician", "qa"], "reason": "trained in both, record TR-7"})
    assert response.status_code == 302
    assert _user(app, "mixed").role_names == {"technician", "qa"}
    inserted = _events(app, entity_type="user_account", action="insert")
    # the trail keeps a keyed digest of the hash (reconcile compares it), never the hash itself
    created = [e for e in inserted if '"username":"mixed"' in e.new_value]
    assert len(created) == 1
    assert re.search(r'"password_hash":"hidden-value:[0-9a-f]{64}"', created[0].new_value)
    assert _user(app, "mixed").password_hash not in created[0].new_value


def test_a_duplicate_user_name_is_refused_next_to_the_field(client_as):
    response = client_as("admin").post("/admin/users", data={
        "username": "nurse", "full_name": "Another", "password": "long-enough-password", "roles": ["nurse"],
        "reason": "new nurse"})
    assert response.status_code == 422
    assert b"already taken" in response.data


def test_changing_roles_is_audited_with_who_and_why(app, users, client_as):
    tech_id = _user(app, "technician").id
    client_as("admin").post(f"/admin/users/{tech_id}/roles",
                            data={"roles": ["technician", "qa"], "reason": "trained as QA"})
    assert _user(app, "technician").role_names == {"technician", "qa"}
    role_events = _events(app, entity_type="user_role", action="insert", actor_name="admin")
    assert role_events and role_events[-1].reason == "trained as QA"


def test_withdrawing_a_role_is_audited_with_who_and_why(app, users, client_as):
    """The withdrawn role's row is deleted by the delete-orphan cascade, which session.deleted never lists."""
    tech_id = _user(app, "technician").id
    admin = client_as("admin")
    admin.post(f"/admin/users/{tech_id}/roles", data={"roles": ["technician", "qa"], "reason": "trained as QA"})
    response = admin.post(f"/admin/users/{tech_id}/roles", data={"roles": ["technician"], "reason": "QA role withdrawn"})
    assert response.status_code == 302
    assert _user(app, "technician").role_names == {"technician"}
    deleted = _events(app, entity_type="user_role", action="delete")
    assert len(deleted) == 1
    assert (deleted[0].actor_name, deleted[0].reason) == ("admin", "QA role withdrawn")
    assert '"role":"qa"' in deleted[0].old_value and f'"user_id":"{tech_id}"' in deleted[0].old_value


def test_an_administrator_cannot_change_their_own_roles(app, users, client_as):
    admin_id = _user(app, "admin").id
    response = client_as("admin").post(f"/admin/users/{admin_id}/roles",
                                       data={"roles": ["admin", "qa"], "reason": "covering QA this week"})
    assert response.status_code == 409  # a rule of the accounts, not a form fault (422 is for the form)
    assert b"cannot change your own roles" in response.data
    assert _user(app, "admin").role_names == {"admin"}
    assert not _events(app, entity_type="user_role", action="insert", actor_name="admin")
