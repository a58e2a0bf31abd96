"""The administrator role is held alone (review 2, r1): system administration is kept apart from the roles that
record and sign GMP records (EU GMP Annex 11 §12, 21 CFR 11.10(d),(g)). Comparing account ids was not enough: an
administrator made a second admin account and, signed in as it, gave their first account QA."""
from __future__ import annotations

from sqlalchemy import func, insert, select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User, UserRole
from tests.conftest import PASSWORD, api_token_for, login

SECOND_PASSWORD = "Another-pass-123"


def _db(app):  # type: ignore[no-untyped-def]
    return app.extensions["mscbatch.db"]


def _roles(app, username):  # type: ignore[no-untyped-def]
    with _db(app).new_session() as session:
        return set(session.scalars(select(UserRole.role).join(User).where(User.username == username)))


def _user_id(app, username):  # type: ignore[no-untyped-def]
    with _db(app).new_session() as session:
        return session.scalar(select(User.id).where(User.username == username))


def _count(app, model):  # type: ignore[no-untyped-def]
    with _db(app).new_session() as session:
        return session.scalar(select(func.count()).select_from(model))


def _second_admin(app, admin):  # type: ignore[no-untyped-def]
    """The reviewer's chain: the admin makes 'ada2' (admin), signs in as it and chooses its password."""
    made = admin.post("/admin/users", data={"username": "ada2", "full_name": "Ada Second",
                                            "password": SECOND_PASSWORD, "roles": ["admin"],
                                            "reason": "second administrator"})
    assert made.status_code == 302, made.get_data(as_text=True)
    client = app.test_client()
    assert login(client, "ada2", SECOND_PASSWORD).status_code == 302
    changed = client.post("/account/password", data={"current_password": SECOND_PASSWORD,
                                                     "new_password": "Third-pass-4567"})
    assert changed.status_code == 302
    assert login(client, "ada2", "Third-pass-4567").status_code == 302
    return client


def test_a_second_admin_account_cannot_give_the_first_one_qa(app, users, client_as):
    admin = client_as("admin")
    ada2 = _second_admin(app, admin)
    admin_id = _user_id(app, "admin")
    events_before = _count(app, AuditEvent)

    refused = ada2.post(f"/admin/users/{admin_id}/roles", data={"roles": ["admin", "qa"], "reason": "cover"})

    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert 'id="roles-error"' in page
    assert "an administrator account cannot also hold QA / Qualified Person" in page
    assert "Annex 11" in page and "use a separate account" in page
    assert _roles(app, "admin") == {"admin"}
    assert _count(app, AuditEvent) == events_before  # nothing written on refusal
    assert admin.post("/release/lots/1/release", data={}).status_code == 403  # the QA release stays out of reach


def test_an_admin_cannot_give_a_qa_account_the_admin_role_either(app, users, client_as):
    qa_id, admin = _user_id(app, "qa"), client_as("admin")
    events_before = _count(app, AuditEvent)
    refused = admin.post(f"/admin/users/{qa_id}/roles",
                                      data={"roles": ["qa", "admin"], "reason": "QA lead also runs the system"})
    assert refused.status_code == 422
    assert "cannot also hold QA / Qualified Person" in refused.get_data(as_text=True)
    assert _roles(app, "qa") == {"qa"}
    assert _count(app, AuditEvent) == events_before


def test_an_account_cannot_be_created_with_admin_and_a_recording_role(app, users, client_as):
    admin = client_as("admin")
    accounts_before, events_before = _count(app, User), _count(app, AuditEvent)
    refused = admin.post("/admin/users", data={
        "username": "boss", "full_name": "Bo Boss", "password": SECOND_PASSWORD,
        "roles": ["admin", "qa", "technician"], "reason": "new boss"})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert 'id="roles-error"' in page
    assert "cannot also hold Lab technician and QA / Qualified Person" in page
    assert _count(app, User) == accounts_before and _count(app, AuditEvent) == events_before
    assert _user_id(app, "boss") is None


def test_an_account_that_already_combines_admin_and_qa_is_blocked_until_one_is_removed(app, users, client_as):
    """A database from before the rule: the account's session ends, its API token is refused, sign-in is refused
    and audited, and the Users page says why; another administrator removing one role brings it back."""
    qa_session = client_as("qa")
    token = api_token_for(app, "qa")
    qa_id = _user_id(app, "qa")
    bearer = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/v1/me", headers=bearer).status_code == 200
    with _db(app).engine.begin() as connection:  # written as an older version could have: past the service
        connection.execute(insert(UserRole.__table__).values(user_id=qa_id, role="admin"))

    assert qa_session.get("/account").status_code == 302  # back to the sign-in page: the session has ended
    assert app.test_client().get("/api/v1/me", headers=bearer).status_code == 401
    refused = login(app.test_client(), "qa", PASSWORD)
    assert refused.status_code == 401
    assert "holds Administrator together with QA / Qualified Person" in refused.get_data(as_text=True)
    with _db(app).new_session() as session:
        reasons = session.scalars(select(AuditEvent.reason).where(
            AuditEvent.action == "login_refused", AuditEvent.entity_id == str(qa_id))).all()
    assert reasons == ["administrator together with qa"]

    admin = client_as("admin")
    assert "<strong>blocked</strong>: Administrator together with QA / Qualified Person" in \
        admin.get("/admin/users").get_data(as_text=True)
    still_both = admin.post(f"/admin/users/{qa_id}/roles", data={"roles": ["admin", "qa"], "reason": "keep"})
    assert still_both.status_code == 422 and _roles(app, "qa") == {"admin", "qa"}
    repaired = admin.post(f"/admin/users/{qa_id}/roles", data={"roles": ["qa"], "reason": "admin role split off"})
    assert repaired.status_code == 302
    assert _roles(app, "qa") == {"qa"}
    assert login(app.test_client(), "qa", PASSWORD).status_code == 302
