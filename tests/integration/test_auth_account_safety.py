"""Review 11 findings on accounts, through the web UI and the API, on SQLite and PostgreSQL:

- a wrong current password at /account/password is audited and counted towards the lockout, and the lockout signs
  the screen out (before: unlimited, unaudited guessing from a screen left signed in);
- an API token made from the browser needs the password, expires after API_TOKEN_LIFETIME and is revoked when its
  owner's password changes or an administrator disables the account (before: minted by the open session alone,
  valid for ever, surviving the password change);
- an account an administrator creates must change its password before anything else (pages, API, signatures), and
  no two accounts print the same name on signatures, whatever its case (before: an administrator could sign as
  a second "Quinn QA" with a password they chose);
- a user name no account has is kept masked in the audit trail (before: a password typed into the user-name
  field was kept whole, for ever).
"""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.auth import services
from mscbatch.auth.lockout import masked_name
from mscbatch.auth.models import ApiToken, User
from mscbatch.database import UTCDateTime, normalise_url, utcnow
from mscbatch.errors import PermissionDenied
from mscbatch.lots.models import Lot
from mscbatch.migrate import upgrade
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import sign
from mscbatch.site import site_config
from tests.conftest import PASSWORD, api_token_for, login
from tests.integration.test_s37_release_seen import seen
from tests.reliability.support import empty_database

NEW_PASSWORD = "a-brand-new-passphrase"
CHOSEN_BY_ADMIN = "admin-knows-this-1"


def _user(app, username):  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        user = session.scalar(select(User).where(User.username == username))
        session.expunge_all()
        return user


def _events(app, **where):  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        query = select(AuditEvent).order_by(AuditEvent.seq)
        for key, value in where.items():
            query = query.where(getattr(AuditEvent, key) == value)
        rows = session.scalars(query).all()
        session.expunge_all()
        return rows


def _tokens(app, username):  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        rows = session.scalars(select(ApiToken).join(User).where(User.username == username)
                               .order_by(ApiToken.id)).all()
        session.expunge_all()
        return rows


def _me(app, token):  # type: ignore[no-untyped-def]
    return app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _errors(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [html.unescape(m) for m in re.findall(r'<p class="error" id="[^"]*">([^<]+)</p>',
                                                 response.get_data(as_text=True))]


# ---- 1. the password change counts wrong current passwords ----------------------------------------------------

def test_wrong_current_passwords_at_the_password_change_are_audited_counted_and_lock_the_account(app, users,
                                                                                                   client_as):
    qa, other_screen = client_as("qa"), client_as("qa")
    for attempt in range(1, 5):
        answer = qa.post("/account/password", data={"current_password": f"guess-{attempt}",
                                                     "new_password": NEW_PASSWORD})
        assert answer.status_code == 422
        assert _errors(answer) == ["Current password: wrong password. The password was not changed."]
        assert _user(app, "qa").failed_logins == attempt and _user(app, "qa").locked_out_at is None
    refused = _events(app, action="password_change_refused")
    assert len(refused) == 4
    assert {(e.entity_type, e.entity_id, e.actor_name, e.reason) for e in refused} == {
        ("user_account", str(users["qa"].id), "qa", "wrong password at a password change")}
    assert "guess" not in " ".join(str(e.new_value) + str(e.old_value) for e in _events(app))  # never what was typed

    fifth = qa.post("/account/password", data={"current_password": "guess-5", "new_password": NEW_PASSWORD})
    assert fifth.status_code == 302 and fifth.headers["Location"].startswith("/login")  # this screen is signed out
    assert "now locked" in qa.get("/login").get_data(as_text=True)
    assert _user(app, "qa").locked_out_at is not None
    assert qa.get("/account").status_code == 302 and other_screen.get("/account").status_code == 302
    # the right password changes nothing now: neither at the form (signed out) nor at sign-in
    qa.post("/account/password", data={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert login(app.test_client(), "qa").status_code == 401
    assert login(app.test_client(), "qa", NEW_PASSWORD).status_code == 401


def test_the_right_current_password_ends_the_run_of_failures(app, users, client_as):
    clinician = client_as("clinician")
    for attempt in range(3):
        clinician.post("/account/password", data={"current_password": f"guess-{attempt}", "new_password": NEW_PASSWORD})
    assert _user(app, "clinician").failed_logins == 3
    assert clinician.post("/account/password", data={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
                          ).status_code == 302
    assert _user(app, "clinician").failed_logins == 0


# ---- 2. API tokens: the password, an expiry, revoked with the password or the account ------------------------

def test_a_token_made_in_the_browser_needs_the_password(app, users, client_as):
    nurse = client_as("nurse")
    missing = nurse.post("/account/tokens", data={"name": "ward 3 scanner"})
    assert missing.status_code == 422 and "Enter your password to create a token." in _errors(missing)
    wrong = nurse.post("/account/tokens", data={"name": "ward 3 scanner", "password": "not-my-password"})
    assert wrong.status_code == 422
    assert _errors(wrong) == ["Password: wrong password. No token was created."]
    assert 'id="new-token"' not in wrong.get_data(as_text=True)
    assert _tokens(app, "nurse") == []
    assert [(e.action, e.entity_id, e.reason) for e in _events(app, action="api_token_refused")] == [
        ("api_token_refused", str(users["nurse"].id), "wrong password at an API token's creation")]
    assert _user(app, "nurse").failed_logins == 1

    made = nurse.post("/account/tokens", data={"name": "ward 3 scanner", "password": PASSWORD})
    assert made.status_code == 201
    secret = re.search(r'<code class="token" id="new-token">(msc_[^<]+)</code>', made.get_data(as_text=True)).group(1)
    assert _me(app, secret).get_json()["username"] == "nurse"
    assert _user(app, "nurse").failed_logins == 0  # the right password ends the run of failures
    (token,) = _tokens(app, "nurse")
    assert token.expires_at - token.created_at == services.API_TOKEN_LIFETIME == timedelta(days=90)
    page = made.get_data(as_text=True)
    assert "A token expires 90 days after it is created" in page
    # The page says the expiry in the site's time: near midnight UTC that is already the next day in Paris.
    assert f"{token.expires_at.astimezone(site_config().tz):%Y-%m-%d %H:%M %Z}" in page


def test_five_wrong_passwords_at_a_new_token_lock_the_account_and_sign_the_screen_out(app, users, client_as):
    tech = client_as("technician")
    for attempt in range(4):
        assert tech.post("/account/tokens", data={"name": "robot", "password": f"guess-{attempt}"}).status_code == 422
    fifth = tech.post("/account/tokens", data={"name": "robot", "password": "guess-5"})
    assert fifth.status_code == 302 and fifth.headers["Location"].startswith("/login")
    assert _user(app, "technician").locked_out_at is not None
    assert tech.get("/account").status_code == 302
    assert _tokens(app, "technician") == []


def test_an_expired_token_authenticates_nobody(app, users, client_as):
    secret = api_token_for(app, "qa")
    assert _me(app, secret).status_code == 200
    with app.extensions["mscbatch.db"].new_session() as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    expired = _me(app, secret)
    assert expired.status_code == 401 and expired.mimetype == "application/problem+json"
    page = client_as("qa").get("/account").get_data(as_text=True)
    assert "<td>expired</td>" in page and "Revoke</button>" not in page


def test_the_token_lookup_stays_one_statement_with_the_expiry_in_it(app, users):
    secret = api_token_for(app, "nurse")
    engine = app.extensions["mscbatch.db"].engine
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with app.extensions["mscbatch.db"].new_session() as session:
            assert services.user_for_api_token(session, secret).username == "nurse"
    finally:
        event.remove(engine, "before_cursor_execute", record)
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1 and "expires_at" in selects[0] and "token_hash" in selects[0]


def test_changing_the_password_revokes_every_token_of_the_user(app, users, client_as):
    first, second = api_token_for(app, "qa"), api_token_for(app, "qa")
    other = api_token_for(app, "qa2")
    qa = client_as("qa")
    assert qa.post("/account/password", data={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
                   ).status_code == 302
    assert _me(app, first).status_code == 401 and _me(app, second).status_code == 401
    assert _me(app, other).status_code == 200  # another user's token is untouched
    assert all(t.revoked_at is not None for t in _tokens(app, "qa"))
    revoked = [e for e in _events(app, entity_type="api_token", field="revoked_at")]
    assert len(revoked) == 2 and {(e.actor_name, e.reason) for e in revoked} == {("qa", "password changed by its owner")}


def test_disabling_an_account_revokes_its_tokens(app, users, client_as):
    secret = api_token_for(app, "nurse")
    admin = client_as("admin")
    assert admin.post(f"/admin/users/{users['nurse'].id}/disable", data={"reason": "left the unit"}).status_code == 302
    assert _me(app, secret).status_code == 401
    assert admin.post(f"/admin/users/{users['nurse'].id}/enable", data={"reason": "back"}).status_code == 302
    assert _me(app, secret).status_code == 401  # enabling the account again does not bring the token back
    (revoked,) = _events(app, entity_type="api_token", field="revoked_at")
    assert (revoked.actor_name, revoked.reason) == ("admin", "left the unit")


# ---- 3. an administrator's chosen password, printed names --------------------------------------------------------

def _admin_creates(client_as, username: str, full_name: str, roles: list[str]):  # type: ignore[no-untyped-def]
    return client_as("admin").post("/admin/users", data={"username": username, "full_name": full_name,
                                                          "password": CHOSEN_BY_ADMIN, "roles": roles,
                                                          "reason": "new staff member"})


def test_an_account_an_administrator_creates_must_change_its_password_before_anything_else(app, users, client_as):
    assert _admin_creates(client_as, "newqa", "Nora New-QA", ["qa"]).status_code == 302
    assert _user(app, "newqa").must_change_password
    client = app.test_client()
    assert login(client, "newqa", CHOSEN_BY_ADMIN).status_code == 302
    for page in ("/", "/donors", "/release", "/audit"):
        answer = client.get(page)
        assert answer.status_code == 302 and answer.headers["Location"] == "/account", page
    account = client.get("/account").get_data(as_text=True)
    assert 'id="must-change-password"' in account and "Choose your own password" in account
    assert 'action="/account/tokens"' not in account  # no token while the administrator knows the password
    assert client.post("/account/tokens", data={"name": "x", "password": CHOSEN_BY_ADMIN}).status_code == 302
    assert _tokens(app, "newqa") == []

    secret = api_token_for(app, "newqa")  # a token the service made (tests, benchmarks): the API still refuses it
    refused = _me(app, secret)
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert "must change it on My account" in refused.get_json()["detail"]

    same = client.post("/account/password", data={"current_password": CHOSEN_BY_ADMIN,
                                                  "new_password": CHOSEN_BY_ADMIN})
    assert same.status_code == 422 and _errors(same) == ["New password: choose a password other than the current one."]
    assert client.post("/account/password", data={"current_password": CHOSEN_BY_ADMIN, "new_password": NEW_PASSWORD}
                       ).status_code == 302
    assert not _user(app, "newqa").must_change_password
    assert login(client, "newqa", NEW_PASSWORD).status_code == 302
    assert client.get("/donors").status_code == 200
    cleared = [e for e in _events(app, entity_type="user_account", field="must_change_password")]
    assert [(e.old_value, e.new_value, e.actor_name) for e in cleared] == [("true", "false", "newqa")]


def test_no_signature_while_the_password_must_be_changed(app, users, client_as, monkeypatch):
    from tests.integration.test_signature_lockout import _lot_ready_for_release

    lot_id = _lot_ready_for_release(app, monkeypatch)
    assert _admin_creates(client_as, "shadowqa", "Sam Shadow", ["qa"]).status_code == 302
    client = app.test_client()
    login(client, "shadowqa", CHOSEN_BY_ADMIN)
    answer = client.post(f"/release/lots/{lot_id}/release", data={**seen(client, lot_id), "action": "release",
                                                                  "release-password": CHOSEN_BY_ADMIN})
    assert answer.status_code == 302 and answer.headers["Location"] == "/account"
    with app.extensions["mscbatch.db"].new_session() as session:  # and the service itself refuses, whatever the path
        signer, lot = session.scalar(select(User).where(User.username == "shadowqa")), session.get(Lot, lot_id)
        with pytest.raises(PermissionDenied, match="an administrator chose it"):
            with use_case(session, signer):
                sign(session, signer, CHOSEN_BY_ADMIN, lot, "Released for clinical use", required_role="qa")
        assert session.get(Lot, lot_id).status == "quarantine"
        assert session.scalar(select(Signature.id).where(Signature.signer_id == signer.id)) is None


def test_the_demo_and_test_accounts_are_not_asked_to_change_their_password(app, users, db_session):
    from mscbatch.demo import DEMO_USERS, seed_users

    seed_users(db_session, "fast")
    names = [u[0] for u in DEMO_USERS] + list(users)
    flagged = db_session.scalars(select(User.username).where(User.username.in_(names),
                                                             User.must_change_password)).all()
    assert flagged == []


def test_a_printed_name_another_account_has_is_refused_whatever_its_case(app, users, client_as):
    for full_name in ("NURSE", "  nurse ", "Nurse"):  # the nurse's printed name is "Nurse"
        answer = _admin_creates(client_as, "nurse-copy", full_name, ["nurse"])
        assert answer.status_code == 422, full_name
        assert _errors(answer) == [f"Full name: '{full_name.strip()}' is already the printed name of another account "
                                   "(nurse); signatures could not tell them apart. Add a middle initial or another "
                                   "distinction."]
    assert _user(app, "nurse-copy") is None
    assert _admin_creates(client_as, "nurse-copy", "Nurse  B.", ["nurse"]).status_code == 302
    assert _user(app, "nurse-copy").full_name == "Nurse B."  # spaces normalised before the comparison


def test_the_database_refuses_a_second_account_with_the_same_printed_name(app, users, db_session):
    nurse = db_session.scalar(select(User).where(User.username == "nurse2"))
    with pytest.raises(IntegrityError):  # an edit of full_name by any path
        with use_case(db_session, None):
            nurse.full_name = "NURSE"
    db_session.rollback()
    # the check that names the field before the index is reached (the new-user form's), whatever the case
    assert services.new_user_problems(db_session, username="nurse-copy", full_name="nURSE", password=PASSWORD,
                                      roles=["nurse"]).get("full_name") == [
        "Full name: 'nURSE' is already the printed name of another account (nurse); signatures could not tell them "
        "apart. Add a middle initial or another distinction."]
    assert "full_name" not in services.new_user_problems(db_session, username="nurse-copy", full_name="Nurse B.",
                                                         password=PASSWORD, roles=["nurse"])


# ---- 4. a user name nobody has is kept masked --------------------------------------------------------------------

def test_masked_name_keeps_two_characters_and_the_length():
    assert masked_name("mscbatch-demo") == "ms…(13 characters)"
    assert masked_name("x") == "x…(1 character)"
    assert masked_name("") == "…(0 characters)"


def test_a_password_typed_as_the_user_name_is_not_kept_in_the_audit_trail(app, users, client_as):
    typed = "Correct-Horse-Battery-99"
    assert app.test_client().post("/login", data={"username": typed, "password": "qa"}).status_code == 401
    (event_,) = _events(app, action="login_failed")
    assert (event_.entity_id, event_.new_value, event_.reason) == (None, "co…(24 characters)", "unknown user name")
    everything = " ".join(f"{e.old_value} {e.new_value} {e.reason}" for e in _events(app)).lower()
    assert typed.lower() not in everything
    page = client_as("admin").get("/audit?action=login_failed").get_data(as_text=True)
    assert typed.lower() not in page.lower() and "co…(24 characters)" in page


# ---- the migration -----------------------------------------------------------------------------------------------

_USERS = sa.table("user_account", sa.column("id", sa.Integer()), sa.column("username", sa.String()),
                  sa.column("full_name", sa.String()), sa.column("password_hash", sa.String()),
                  sa.column("is_enabled", sa.Boolean()), sa.column("failed_logins", sa.Integer()),
                  sa.column("password_changed_at", UTCDateTime()), sa.column("created_at", UTCDateTime()))
_TOKENS = sa.table("api_token", sa.column("id", sa.Integer()), sa.column("user_id", sa.Integer()),
                   sa.column("name", sa.String()), sa.column("prefix", sa.String()),
                   sa.column("token_hash", sa.String()), sa.column("created_at", UTCDateTime()))


def _account(connection, user_id: int, username: str, full_name: str) -> None:  # type: ignore[no-untyped-def]
    connection.execute(sa.insert(_USERS).values(id=user_id, username=username, full_name=full_name, password_hash="x",
                                                is_enabled=True, failed_logins=0, password_changed_at=utcnow(),
                                                created_at=utcnow()))


def test_migration_0013_gives_old_tokens_the_lifetime_and_old_accounts_no_forced_change(database_url, tmp_path):
    created = utcnow() - timedelta(days=100)
    with empty_database(database_url, tmp_path) as url:
        upgrade(url, "0012")
        engine = sa.create_engine(normalise_url(url))
        try:
            with engine.begin() as connection:
                _account(connection, 1, "old", "Olga Old")
                connection.execute(sa.insert(_TOKENS).values(id=1, user_id=1, name="old scanner", prefix="msc_x",
                                                             token_hash="h" * 64, created_at=created))
            upgrade(url)
            with engine.connect() as connection:
                expires = connection.execute(sa.select(sa.column("expires_at", UTCDateTime()))
                                             .select_from(sa.table("api_token"))).scalar_one()
                flag = connection.execute(sa.text("SELECT must_change_password FROM user_account")).scalar_one()
            assert expires == created + timedelta(days=90) and not flag
            with pytest.raises(IntegrityError), engine.begin() as connection:
                _account(connection, 2, "olga", "OLGA OLD")
        finally:
            engine.dispose()


def test_migration_0013_stops_on_two_accounts_with_the_same_printed_name_and_names_them(database_url, tmp_path):
    with empty_database(database_url, tmp_path) as url:
        upgrade(url, "0012")
        engine = sa.create_engine(normalise_url(url))
        try:
            with engine.begin() as connection:
                _account(connection, 1, "quinn", "Quinn QA")
                _account(connection, 2, "qa-temp", "quinn qa")
            with pytest.raises(RuntimeError, match="qa-temp, quinn print 'quinn qa'"):
                upgrade(url)
            with engine.begin() as connection:  # renamed: the upgrade goes through
                connection.execute(sa.update(_USERS).where(_USERS.c.id == 2).values(full_name="Quinn Temp"))
            upgrade(url)
        finally:
            engine.dispose()
