"""Session 38: 21 CFR 11.300(b) password ageing and no reuse of recent passwords; a sign-in throttle per client
address (a flood of failed sign-ins from one device neither fills the audit trail nor locks the ward's accounts);
the API's 401 says "locked" for a genuine token of a locked account; sign-out and a session's timeout are in the
audit trail."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from mscbatch.audit.models import AuditEvent
from mscbatch.auth import services
from mscbatch.auth.models import AuthSession, PasswordHistory, SigninFailure, User
from mscbatch.database import utcnow
from mscbatch.errors import PermissionDenied, ValidationFailed
from mscbatch.settings import SettingsError, from_environment
from tests.conftest import PASSWORD, api_token_for, login, make_app

# strong enough for the new-password rules (several unrelated words)
NEW = ["violet harbour cactus tram", "orbit lantern pepper ferry", "quartz meadow bicycle owl",
       "copper whistle tundra kite", "saffron glacier pylon moth", "amber tractor lagoon fig"]


def _db(app):  # type: ignore[no-untyped-def]
    return app.extensions["mscbatch.db"].new_session()


def _user(app, username):  # type: ignore[no-untyped-def]
    with app.app_context():
        session = _db(app)
        try:
            return session.scalar(select(User).where(User.username == username))
        finally:
            session.close()


def _count(app, *where):  # type: ignore[no-untyped-def]
    with app.app_context():
        session = _db(app)
        try:
            return session.scalar(select(func.count()).select_from(AuditEvent).where(*where))
        finally:
            session.close()


def _execute(app, statement):  # type: ignore[no-untyped-def]
    with app.app_context():
        session = _db(app)
        try:
            session.execute(statement)
            session.commit()
        finally:
            session.close()


def _change(app, username, current, new):  # type: ignore[no-untyped-def]
    with app.app_context():
        session = _db(app)
        try:
            user = session.scalar(select(User).where(User.username == username))
            services.change_password(session, user, current, new, "fast")
        finally:
            session.close()


# ---- 1. password history and maximum age ------------------------------------------------------------------

def test_s38_an_earlier_password_cannot_be_chosen_again(app, users, client_as):
    _change(app, "nurse", PASSWORD, NEW[0])
    client = app.test_client()
    assert login(client, "nurse", NEW[0]).status_code == 302
    # A -> B -> A: refused at the page, naming the rule, nothing changed
    response = client.post("/account/password", data={"current_password": NEW[0], "new_password": PASSWORD})
    assert response.status_code == 422
    assert services.PASSWORD_REUSED in response.get_data(as_text=True)
    assert login(app.test_client(), "nurse", NEW[0]).status_code == 302  # still the password


def test_s38_the_last_five_passwords_are_refused_the_sixth_back_is_allowed(app, users):
    chain = [PASSWORD, *NEW[:4]]  # five passwords: PASSWORD, then four changes; NEW[3] is the current one
    for current, new in zip(chain, chain[1:], strict=False):
        _change(app, "qa", current, new)
    for earlier in chain[:-1]:
        with pytest.raises(ValidationFailed, match="one of your last 5 passwords"):
            _change(app, "qa", chain[-1], earlier)
    _change(app, "qa", chain[-1], NEW[4])  # now PASSWORD is the sixth back: allowed again
    _change(app, "qa", NEW[4], PASSWORD)
    with app.app_context():
        session = _db(app)
        try:  # only what the rule reads is kept
            kept = session.scalar(select(func.count()).select_from(PasswordHistory))
        finally:
            session.close()
    assert kept == services.PASSWORD_REUSE_DEPTH - 1


def _age_password(app, username, days):  # type: ignore[no-untyped-def]
    _execute(app, update(User).where(User.username == username)
             .values(password_changed_at=utcnow() - timedelta(days=days)))


def test_s38_a_password_older_than_the_maximum_age_must_be_changed_at_sign_in(app, users):
    _age_password(app, "nurse", 181)
    client = app.test_client()
    assert login(client, "nurse").status_code == 302
    assert _user(app, "nurse").must_change_password
    # the flag was set by the sign-in, audited with why
    assert _count(app, AuditEvent.entity_type == "user_account", AuditEvent.field == "must_change_password",
                  AuditEvent.reason == "password older than 180 days: its owner must change it") == 1
    away = client.get("/donors")
    assert away.status_code == 302 and away.headers["Location"].endswith("/account")
    page = client.get("/account").get_data(as_text=True)
    assert "more than 180 days old" in page and "An administrator set the password" not in page
    token = api_token_for(app, "nurse")
    refused = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403 and "too old" in refused.get_json()["detail"]
    assert client.post("/account/password", data={"current_password": PASSWORD,
                                                  "new_password": NEW[0]}).status_code == 302
    after = app.test_client()
    assert login(after, "nurse", NEW[0]).status_code == 302
    assert after.get("/donors").status_code == 200
    assert not _user(app, "nurse").must_change_password


def test_s38_a_password_within_the_maximum_age_signs_in_as_before(app, users):
    _age_password(app, "nurse", 179)
    client = app.test_client()
    assert login(client, "nurse").status_code == 302
    assert client.get("/donors").status_code == 200
    assert not _user(app, "nurse").must_change_password


def test_s38_the_maximum_age_is_a_setting(database_url, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MSCBATCH_PASSWORD_MAX_AGE_DAYS", "0")
    with pytest.raises(SettingsError, match="MSCBATCH_PASSWORD_MAX_AGE_DAYS must be from 1 to 3650 days"):
        from_environment()
    monkeypatch.setenv("MSCBATCH_PASSWORD_MAX_AGE_DAYS", "90")
    assert from_environment()["PASSWORD_MAX_AGE_DAYS"] == 90


# ---- 2. sign-in throttle per client address ---------------------------------------------------------------

@pytest.fixture
def throttled(database_url, app):  # type: ignore[no-untyped-def]
    """The app with the throttle's shipped values said outright (whatever the suite's own configuration), on the
    database of `app` (whose `users` fixture made the accounts)."""
    made = make_app(database_url, SIGNIN_THROTTLE_LIMIT=services.SIGNIN_THROTTLE_LIMIT,
                    SIGNIN_THROTTLE_MINUTES=15)
    yield made
    made.extensions["mscbatch.db"].engine.dispose()


def _failed_rows(app):  # type: ignore[no-untyped-def]
    return _count(app, AuditEvent.action.in_(("login_failed", "login_refused")))


# the device's own limit (password spraying: many names, each under the per-name limit), session 45
DEVICE_LIMIT = services.SIGNIN_THROTTLE_LIMIT * services.SIGNIN_ADDRESS_THROTTLE_FACTOR


def test_s38_ten_failed_sign_ins_from_one_address_refuse_its_next_attempts_unchecked(throttled, app, users):
    """Session 45: the whole device is refused at DEVICE_LIMIT failures under any names (10 with one name refuse
    only that name there: test_s45_signin_throttle)."""
    attacker = throttled.test_client()
    for n in range(DEVICE_LIMIT):
        assert login(attacker, f"nobody{n}", "whatever").status_code == 401
    assert _failed_rows(app) == DEVICE_LIMIT
    for n in range(20):
        refused = login(attacker, f"nobody{n}", "whatever")
        assert refused.status_code == 429
    text = refused.get_data(as_text=True)
    assert ("Too many failed sign-ins from this device, under several user names: no one can sign in on this device "
            "for the next 15 minutes") in text
    assert "cannot lift this wait" in text
    # said above the form (role="alert"), not under the password field: it is not the password that is refused
    alert = text.split('<div class="form-errors" role="alert">', 1)[1].split("</div>", 1)[0]
    assert "Too many failed sign-ins" in alert
    assert refused.headers["Retry-After"] == "900"
    # refused before the password: a real account's guesses from there count towards nothing, nothing is audited
    for n in range(6):
        assert login(attacker, "nurse", f"wrong-{n}").status_code == 429
    assert login(attacker, "nurse").status_code == 429  # even the right password
    assert _failed_rows(app) == DEVICE_LIMIT
    nurse = _user(app, "nurse")
    assert nurse.failed_logins == 0 and nurse.locked_out_at is None
    # another device signs in as usual
    ward = throttled.test_client()
    ward.environ_base["REMOTE_ADDR"] = "10.0.3.17"
    assert login(ward, "nurse").status_code == 302


def test_s38_the_throttle_ends_with_its_window(throttled, app, users):
    attacker = throttled.test_client()
    for n in range(DEVICE_LIMIT):
        login(attacker, f"nobody{n}", "whatever")
    assert login(attacker, "nurse").status_code == 429
    _execute(app, update(SigninFailure).values(failed_at=utcnow() - timedelta(minutes=10)))
    refused = login(attacker, "nurse")
    assert refused.status_code == 429 and "for the next 5 minutes" in refused.get_data(as_text=True)
    _execute(app, update(SigninFailure).values(failed_at=utcnow() - timedelta(minutes=16)))
    assert login(attacker, "nurse").status_code == 302
    # the next failure prunes what the window no longer holds (it is kept twice: against the address, and against
    # the user name from that address)
    login(throttled.test_client(), "nobody", "whatever")
    with app.app_context():
        session = _db(app)
        try:
            assert session.scalar(select(func.count()).select_from(SigninFailure)) == 2
        finally:
            session.close()


def test_s38_every_worker_sees_the_same_failures(throttled, app, database_url, users):
    """Two processes' apps on one database (gunicorn's workers): failures through one throttle the other."""
    other = make_app(database_url, SIGNIN_THROTTLE_LIMIT=10, SIGNIN_THROTTLE_MINUTES=15)
    try:
        for _ in range(5):  # one user name's failures (session 45: that name is then refused on that device)
            login(throttled.test_client(), "nobody", "whatever")
            login(other.test_client(), "nobody", "whatever")
        assert login(other.test_client(), "nobody", "whatever").status_code == 429
        assert login(throttled.test_client(), "nobody", "whatever").status_code == 429
        for n in range(DEVICE_LIMIT // 2 - 5):  # the device's own limit, counted by both as well
            login(throttled.test_client(), f"nobody{n}", "whatever")
            login(other.test_client(), f"nobody{n}", "whatever")
        assert login(other.test_client(), "nurse").status_code == 429
        assert login(throttled.test_client(), "nurse").status_code == 429
    finally:
        other.extensions["mscbatch.db"].engine.dispose()


def test_s38_behind_a_trusted_proxy_the_forwarded_address_is_throttled(throttled, database_url, users, app):
    proxied = make_app(database_url, TRUSTED_PROXY_HOPS=1, SIGNIN_THROTTLE_LIMIT=10, SIGNIN_THROTTLE_MINUTES=15)
    try:
        def client(forwarded):  # type: ignore[no-untyped-def]
            made = proxied.test_client()
            made.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded
            return made
        # the attacker's own (spoofed) left entries do not matter: the proxy's entry, the last one, is the address
        for n in range(DEVICE_LIMIT):
            assert login(client(f"203.0.113.{n}, 10.0.0.66"), f"nobody{n}", "x").status_code == 401
        assert login(client("10.0.0.66"), "nurse").status_code == 429
        assert login(client("10.0.0.67"), "nurse").status_code == 302  # another ward tablet behind the same proxy
    finally:
        proxied.extensions["mscbatch.db"].engine.dispose()
    # without a trusted proxy the header is the client's say and is ignored: the connection's address counts
    direct = throttled.test_client()
    direct.environ_base["HTTP_X_FORWARDED_FOR"] = "10.0.0.99"
    assert login(direct, "nurse").status_code == 302


# ---- 3. the API's 401 for a locked account ------------------------------------------------------------------

def test_s38_a_genuine_token_of_a_locked_account_is_told_locked(app, users):
    token = api_token_for(app, "nurse")
    _execute(app, update(User).where(User.username == "nurse").values(locked_out_at=utcnow()))
    response = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "locked after too many wrong passwords" in response.get_json()["detail"]
    forged = app.test_client().get("/api/v1/me", headers={"Authorization": "Bearer msc_not-a-real-token"})
    assert forged.status_code == 401 and "locked" not in forged.get_json()["detail"]


# ---- 4. sign-out and a session's timeout are audited --------------------------------------------------------

def test_s38_sign_out_and_an_idle_timeout_are_in_the_audit_trail(app, users, client_as):
    nurse_id = str(users["nurse"].id)
    client_as("nurse").post("/logout")
    assert _count(app, AuditEvent.action == "logout", AuditEvent.entity_id == nurse_id) == 1
    idle = client_as("nurse")
    _execute(app, update(AuthSession).where(AuthSession.ended_at.is_(None))
             .values(last_seen_at=utcnow() - timedelta(hours=1)))
    assert idle.get("/donors").status_code == 302
    assert _count(app, AuditEvent.action == "session_expired", AuditEvent.entity_id == nurse_id,
                  AuditEvent.reason == "session ended: idle timeout") == 1


def test_s38_a_token_made_before_the_password_aged_is_refused_and_no_signature_is_taken(app, users):
    """Code review: the maximum age was judged only at a browser sign-in, so an API token made earlier kept working
    (and signing) for good after the password passed its age. The API and sign() judge it too."""
    from mscbatch.signatures.services import sign

    token = api_token_for(app, "clinician")
    fresh = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert fresh.status_code == 200
    _age_password(app, "clinician", 181)
    aged = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert aged.status_code == 403 and "too old" in aged.get_json()["detail"]
    with app.app_context():
        session = _db(app)
        try:
            clinician = session.scalar(select(User).where(User.username == "clinician"))
            with pytest.raises(PermissionDenied, match="must be changed first"):
                sign(session, clinician, PASSWORD, clinician, "Test meaning")
        finally:
            session.rollback()
            session.close()
