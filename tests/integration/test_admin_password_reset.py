"""An administrator resets a user's password (21 CFR 11.300(b),(c): a forgotten or possibly known password is
replaced under control), through the users page, on SQLite and PostgreSQL:

- the account gets the temporary password and must choose its own at the next sign-in; the old password no longer
  opens it; its run of wrong passwords and the lockout they caused are cleared; every open session ends (and says
  why); every API token is revoked;
- one audit event says who, when and why, the field changes hide the hash as the owner's own change does, and the
  security log has a line; neither ever holds the password;
- refused, with nothing written: an empty reason or a weak password (422, the field and its rule), one's own account
  or a disabled one (409), a role other than the administrator (403), a form without its CSRF token (400).
"""
from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth import services
from mscbatch.auth.models import ApiToken, AuthSession, User
from mscbatch.errors import PermissionDenied, ValidationFailed
from tests.conftest import PASSWORD, add_user, api_token_for, login, make_app
from tests.integration.test_review3_ui_ward import _labels_name_their_own_fields

TEMPORARY = "ward3-temporary-7"
OWN = "my-own-passphrase-42"
REASON = "Forgot her password; identity checked in person on ward 3"


@pytest.fixture
def app(database_url: str) -> Any:
    """The app with JSON logs (its stderr handler writes them, capsys reads them), to read the security line."""
    app = make_app(database_url, LOG_FORMAT="json")
    yield app
    app.extensions["mscbatch.db"].engine.dispose()


def _user(app, username: str) -> User:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        user = session.scalar(select(User).where(User.username == username))
        session.expunge_all()
        return user


def _events(app, **where: Any) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        query = select(AuditEvent).order_by(AuditEvent.seq)
        for key, value in where.items():
            query = query.where(getattr(AuditEvent, key) == value)
        rows = session.scalars(query).all()
        session.expunge_all()
        return rows


def _sessions(app, user_id: int) -> list[AuthSession]:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        rows = session.scalars(select(AuthSession).where(AuthSession.user_id == user_id)).all()
        session.expunge_all()
        return rows


def _written(app) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    """What a refusal must leave as it was: the audit trail's length, and every account, session and token row."""
    with app.extensions["mscbatch.db"].new_session() as session:
        return (session.scalar(select(func.count()).select_from(AuditEvent)),
                hash(tuple(session.execute(select(User.id, User.password_hash, User.must_change_password,
                                                  User.failed_logins, User.locked_out_at, User.password_changed_at)
                                           .order_by(User.id)).all())),
                hash(tuple(session.execute(select(AuthSession.id, AuthSession.ended_at)
                                           .order_by(AuthSession.id)).all())),
                hash(tuple(session.execute(select(ApiToken.id, ApiToken.revoked_at).order_by(ApiToken.id)).all())))


def _me(app, token: str):  # type: ignore[no-untyped-def]
    return app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _errors(response) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """The errors shown next to each field, by the field's id."""
    found: dict[str, list[str]] = {}
    for field_id, message in re.findall(r'<p class="error" id="([^"]*)-error">([^<]+)</p>',
                                        response.get_data(as_text=True)):
        found.setdefault(field_id, []).append(html.unescape(message))
    return found


def _form_errors(response) -> list[str]:  # type: ignore[no-untyped-def]
    block = re.search(r'<div class="form-errors" role="alert">(.*?)</div>', response.get_data(as_text=True), re.S)
    return [html.unescape(m) for m in re.findall(r"<p>([^<]+)</p>", block.group(1))] if block else []


def _reset(client, user_id: int, password: str = TEMPORARY, reason: str = REASON):  # type: ignore[no-untyped-def]
    return client.post(f"/admin/users/{user_id}/reset-password", data={"password": password, "reason": reason})


def _security_lines(capsys) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    return [line for line in lines if line["logger"] == "mscbatch.security"]


# ---- the reset ---------------------------------------------------------------------------------------------------

def test_a_reset_ends_the_sessions_revokes_the_tokens_and_the_user_must_choose_their_own_password(app, users,
                                                                                                   client_as):
    nurse_id = users["nurse"].id
    ward_tablet, office = client_as("nurse"), client_as("nurse")
    token, other_token = api_token_for(app, "nurse"), api_token_for(app, "nurse2")
    admin = client_as("admin")
    page = admin.get(f"/admin/users/{nurse_id}").get_data(as_text=True)
    assert 'id="reset-password-form"' in page
    labels = _labels_name_their_own_fields(page)  # each id once, each label in its own form
    assert labels["Temporary password"] == "reset-password-password"

    done = _reset(admin, nurse_id)
    assert done.status_code == 302 and done.headers["Location"] == f"/admin/users/{nurse_id}"
    shown = admin.get(done.headers["Location"]).get_data(as_text=True)
    assert ("nurse: password reset. Tell them the temporary password in person: at their next sign-in they must "
            "choose their own before anything else. Their open sessions were ended and their API tokens revoked."
            in html.unescape(shown))
    assert "must choose their own password" in shown
    nurse = _user(app, "nurse")
    assert nurse.must_change_password and nurse.failed_logins == 0 and nurse.locked_out_at is None

    # every open session ended, saying why, in words, to whoever was at the screen
    assert {(s.end_reason, s.ended_at is not None) for s in _sessions(app, nurse_id)} == {
        ("password reset by an administrator", True)}
    for screen in (ward_tablet, office):
        answer = screen.get("/ward")
        assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")
    said = html.unescape(ward_tablet.get("/login").get_data(as_text=True))
    assert ("Your session was ended: an administrator reset this account's password. Use the temporary password "
            "they gave you. Sign in again to go on.") in said
    # every API token of the account revoked, another user's untouched
    assert _me(app, token).status_code == 401 and _me(app, other_token).status_code == 200

    # the old password no longer opens the account; the temporary one does, for the password change only
    assert login(app.test_client(), "nurse", PASSWORD).status_code == 401
    client = app.test_client()
    assert login(client, "nurse", TEMPORARY).status_code == 302
    for path in ("/", "/ward", "/account/tokens"):
        answer = client.get(path) if path != "/account/tokens" else client.post(path, data={"name": "x",
                                                                                            "password": TEMPORARY})
        assert answer.status_code == 302 and answer.headers["Location"] == "/account", path
    account = client.get("/account").get_data(as_text=True)
    assert 'id="must-change-password"' in account and "The password the administrator gave you." in account
    assert _me(app, api_token_for(app, "nurse")).status_code == 403  # a token the service makes: refused too
    assert client.post("/account/password", data={"current_password": TEMPORARY, "new_password": OWN}
                       ).status_code == 302
    assert not _user(app, "nurse").must_change_password
    assert login(app.test_client(), "nurse", TEMPORARY).status_code == 401
    own = app.test_client()
    assert login(own, "nurse", OWN).status_code == 302 and own.get("/ward").status_code == 200


def test_a_reset_clears_the_wrong_passwords_and_unlocks_the_account_they_locked(app, users, client_as):
    admin = client_as("admin")
    for attempt in range(3):
        assert login(app.test_client(), "clinician", f"guess-{attempt}").status_code == 401
    assert _user(app, "clinician").failed_logins == 3
    assert _reset(admin, users["clinician"].id).status_code == 302
    assert _user(app, "clinician").failed_logins == 0  # guesses at a password that no longer opens anything

    for attempt in range(5):  # the nurse who forgot her password usually locked the account trying
        login(app.test_client(), "nurse", f"guess-{attempt}")
    locked = _user(app, "nurse")
    assert locked.locked_out_at is not None and locked.failed_logins == 5
    assert login(app.test_client(), "nurse", PASSWORD).status_code == 401
    page = " ".join(admin.get(f"/admin/users/{locked.id}").get_data(as_text=True).split())
    assert "their API tokens are revoked, the account is unlocked, and" in page  # the page says it unlocks it
    done = _reset(admin, locked.id)
    assert done.status_code == 302
    assert "nurse: password reset, account unlocked." in html.unescape(admin.get(done.headers["Location"])
                                                                       .get_data(as_text=True))
    nurse = _user(app, "nurse")
    assert nurse.locked_out_at is None and nurse.failed_logins == 0 and nurse.must_change_password
    assert login(app.test_client(), "nurse", TEMPORARY).status_code == 302


def test_the_reset_is_audited_with_who_and_why_and_logged_and_neither_holds_the_password(app, users, client_as,
                                                                                          capsys):
    nurse_id = users["nurse"].id
    api_token_for(app, "nurse")
    login(app.test_client(), "nurse", "one-wrong-guess")
    before = _user(app, "nurse").password_hash
    admin = client_as("admin")
    capsys.readouterr()
    done = _reset(admin, nurse_id, reason=f"  {REASON}  ")
    assert done.status_code == 302
    after = _user(app, "nurse").password_hash

    (reset,) = _events(app, action="password_reset")
    assert (reset.entity_type, reset.entity_id, reset.actor_id, reset.actor_name, reset.reason) == (
        "user_account", str(nurse_id), users["admin"].id, "admin", REASON)
    assert reset.occurred_at is not None and reset.old_value is None and reset.new_value is None
    changes = {e.field: e for e in _events(app, entity_type="user_account", entity_id=str(nurse_id), action="update")
               if e.seq < reset.seq and e.actor_name == "admin"}
    assert {field: (e.old_value, e.new_value) for field, e in changes.items()
            if field in ("must_change_password", "failed_logins")} == {
        "must_change_password": ("false", "true"), "failed_logins": ("1", "0")}
    assert {e.reason for e in changes.values()} == {REASON}
    hidden = changes["password_hash"]  # as at the owner's own change: the trail's keyed digest, never the hash
    assert hidden.old_value.startswith("hidden-value:") and hidden.new_value.startswith("hidden-value:")
    (revoked,) = _events(app, entity_type="api_token", field="revoked_at")
    assert (revoked.actor_name, revoked.reason) == ("admin", REASON)
    everything = " ".join(f"{e.old_value} {e.new_value} {e.reason}" for e in _events(app))
    for secret in (TEMPORARY, before, after):
        assert secret not in everything

    security = _security_lines(capsys)
    assert [(x["level"], x["action"], x["entity_id"], x["username"], x["actor"], x["reason"], x["request_id"])
            for x in security] == [("WARNING", "password_reset", str(nurse_id), "nurse", "admin", REASON,
                                    done.headers["X-Request-ID"])]
    assert TEMPORARY not in json.dumps(security) and after not in json.dumps(security)


# ---- refusals: nothing written -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("password", "reason", "errors"), [
    (TEMPORARY, "", {"reset-password-reason": ["Give a reason: it goes into the audit trail."]}),
    (TEMPORARY, "   ", {"reset-password-reason": ["Give a reason: it goes into the audit trail."]}),
    ("short-1", REASON, {"reset-password-password": ["Temporary password: Use at least 12 characters."]}),
    ("nurse-temporary-1", REASON, {"reset-password-password": [
        "Temporary password: The password must not contain the user name."]}),
    ("", REASON, {"reset-password-password": ["Enter a temporary password."]}),
    ("short-1", "", {"reset-password-password": ["Temporary password: Use at least 12 characters."],
                     "reset-password-reason": ["Give a reason: it goes into the audit trail."]}),
])
def test_an_empty_reason_or_a_weak_password_is_refused_naming_the_field_and_its_rule(app, users, client_as,
                                                                                     password, reason, errors):
    admin, nurse_screen = client_as("admin"), client_as("nurse")
    token = api_token_for(app, "nurse")
    written = _written(app)
    refused = _reset(admin, users["nurse"].id, password, reason)
    assert refused.status_code == 422
    assert _errors(refused) == errors
    _labels_name_their_own_fields(refused.get_data(as_text=True))
    assert 'id="reset-password-form"' in refused.get_data(as_text=True)
    assert _written(app) == written
    assert nurse_screen.get("/ward").status_code == 200 and _me(app, token).status_code == 200
    assert login(app.test_client(), "nurse", PASSWORD).status_code == 302


def test_ones_own_account_and_a_disabled_account_are_refused_with_409(app, users, client_as):
    admin = client_as("admin")
    own_page = admin.get(f"/admin/users/{users['admin'].id}").get_data(as_text=True)
    assert 'id="reset-password-form"' not in own_page and 'Your own password: change it on <a href="/account">' \
        in own_page
    assert admin.post(f"/admin/users/{users['nurse2'].id}/disable", data={"reason": "left the unit"}
                      ).status_code == 302
    disabled_page = admin.get(f"/admin/users/{users['nurse2'].id}").get_data(as_text=True)
    assert 'id="reset-password-form"' not in disabled_page
    assert "The account is disabled: its password cannot be reset." in disabled_page

    written = _written(app)
    own = _reset(admin, users["admin"].id)
    assert own.status_code == 409
    assert _form_errors(own) == ["You cannot reset your own password here: change it on My account, which asks for "
                                 "your current password."]
    disabled = _reset(admin, users["nurse2"].id)
    assert disabled.status_code == 409
    assert _form_errors(disabled) == ["nurse2's account is disabled: its password cannot be reset. Enable the "
                                      "account first if the person is to work again."]
    assert _written(app) == written
    assert admin.get("/admin/users").status_code == 200  # the administrator's own session goes on


@pytest.mark.parametrize("role", ["technician", "qa", "clinician", "nurse"])
def test_only_an_administrator_resets_a_password(app, users, client_as, role):
    client = client_as(role)
    written = _written(app)
    refused = _reset(client, users["nurse2"].id)
    assert refused.status_code == 403
    assert "It needs the role Administrator." in html.unescape(refused.get_data(as_text=True))
    assert _written(app) == written
    assert login(app.test_client(), "nurse2", PASSWORD).status_code == 302


def test_the_service_refuses_anyone_but_an_administrator_and_a_blank_reason_whatever_the_path(app, users,
                                                                                               db_session):
    written = _written(app)
    qa, admin = (db_session.scalar(select(User).where(User.username == name)) for name in ("qa", "admin"))
    with pytest.raises(PermissionDenied, match="Only an administrator manages user accounts."):
        services.reset_password(db_session, qa, users["nurse"].id, TEMPORARY, REASON, "fast")
    with pytest.raises(ValidationFailed) as refused:  # a caller other than the form: the reason is still required
        services.reset_password(db_session, admin, users["nurse"].id, "short", "  ", "fast")
    assert refused.value.errors == {"password": ["Temporary password: Use at least 12 characters."],
                                    "reason": [services.RESET_REASON_NEEDED]}
    db_session.rollback()  # the reads' transaction (SQLite's write lock) ends before the check reads
    assert _written(app) == written


def test_the_reset_form_needs_its_csrf_token(database_url):
    app = make_app(database_url, WTF_CSRF_ENABLED=True)
    try:
        add_user(app, "sysadmin", ["admin"])
        nurse = add_user(app, "nurse", ["nurse"])
        admin = app.test_client()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                          admin.get("/login").get_data(as_text=True)).group(1)
        assert admin.post("/login", data={"username": "sysadmin", "password": PASSWORD, "csrf_token": token}
                          ).status_code == 302
        written = _written(app)
        refused = _reset(admin, nurse.id)
        assert refused.status_code == 400 and b"CSRF" in refused.data
        assert _written(app) == written
        page = admin.get(f"/admin/users/{nurse.id}").get_data(as_text=True)
        form_token = re.search(r'id="reset-password-csrf_token" name="csrf_token" type="hidden" value="([^"]+)"',
                               page).group(1)
        done = admin.post(f"/admin/users/{nurse.id}/reset-password",
                          data={"password": TEMPORARY, "reason": REASON, "csrf_token": form_token})
        assert done.status_code == 302 and _user(app, "nurse").must_change_password
    finally:
        app.extensions["mscbatch.db"].engine.dispose()
