"""Part 11 review 3: the lockout, the sessions it ends, the audit trail's hidden values and its viewer, on SQLite and
PostgreSQL.

- Wrong passwords sent at the same moment were counted as one on PostgreSQL (read, then written back +1 from a stale
  copy), so the five-try lockout let many more guesses through.
- A lockout (sign-in, a signature, the bedside second person) left the account's open sessions alive, and the
  administrator's unlock brought them back.
- A password hash swapped with SQL went unnoticed by `audit reconcile`: the trail held "(hidden)" for it.
- An account that may not sign in (the administrator role beside another, from an older version) could still sign.
- A sign-out was audited with "session" as who; the viewer's "Older events" link dropped the dates; a date that is
  no date was silently ignored."""
from __future__ import annotations

import html
import re
import threading
from typing import Any

import pytest
from sqlalchemy import select, text

from mscbatch.audit import trail
from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.auth import services as auth_services
from mscbatch.auth.models import AuthSession, User
from mscbatch.auth.passwords import hash_password
from mscbatch.core.audit_chain import canonical_value
from mscbatch.errors import PermissionDenied
from mscbatch.signatures import services as signatures
from mscbatch.signatures.models import Signature
from mscbatch.site import site_today
from tests.conftest import PASSWORD, add_user, login
from tests.integration.stand_in import stand_in_session
from tests.integration.test_audit_reconcile import _attacker, _reconcile, _run
from tests.integration.test_custody_support import check as bedside_check
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_s37_release_seen import seen
from tests.integration.test_signature_lockout import _lot_ready_for_release
from tests.integration.test_signatures import Memo, _TestBase


def _db(app: Any) -> Any:
    return app.extensions["mscbatch.db"]


def _account(app: Any, username: str) -> User:
    with _db(app).new_session() as session:
        account = session.scalar(select(User).where(User.username == username))
        session.expunge(account)
        return account


def _open_sessions(app: Any, username: str) -> int:
    with _db(app).new_session() as session:
        return len(session.scalars(select(AuthSession.id).join(User, User.id == AuthSession.user_id).where(
            User.username == username, AuthSession.ended_at.is_(None))).all())


def _unlock(app: Any, client_as: Any, username: str) -> None:
    answer = client_as("admin").post(f"/admin/users/{_account(app, username).id}/unlock", data={"reason": "phoned"})
    assert answer.status_code == 302, answer.get_data(as_text=True)


# ---- 1. wrong passwords at the same moment are each counted ----------------------------------------------------

def test_wrong_passwords_sent_at_the_same_moment_are_each_counted_and_lock_the_account(app, users, monkeypatch):
    """Five sign-ins with wrong passwords meet after they have read the account and checked the password, before
    they write: PostgreSQL (READ COMMITTED) then lets each see the same counter. On SQLite BEGIN IMMEDIATE lets one
    at a time in; the meeting place times out and each goes on alone."""
    n = 5
    postgres = _db(app).engine.dialect.name == "postgresql"
    meet = threading.Barrier(n)
    real_verify = auth_services.verify_password

    def verify_then_meet(stored: str, typed: str) -> bool:
        right = real_verify(stored, typed)
        try:
            meet.wait(30 if postgres else 1)
        except threading.BrokenBarrierError:
            pass
        return right

    monkeypatch.setattr(auth_services, "verify_password", verify_then_meet)
    codes: list[int] = []

    def guess(i: int) -> None:
        codes.append(login(app.test_client(), "qa", f"guess-{i}").status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    qa = _account(app, "qa")
    assert codes == [401] * n
    assert qa.failed_logins == n and qa.locked_out_at is not None, \
        f"{n} wrong passwords counted as {qa.failed_logins}; locked at {qa.locked_out_at}"
    with _db(app).new_session() as session:  # every refusal audited, and each count step too
        assert len(session.scalars(select(AuditEvent.seq).where(AuditEvent.action == "login_failed")).all()) == n
        steps = session.scalars(select(AuditEvent.new_value).where(
            AuditEvent.entity_type == "user_account", AuditEvent.entity_id == str(qa.id),
            AuditEvent.field == "failed_logins").order_by(AuditEvent.seq)).all()
    assert steps == [str(i) for i in range(1, n + 1)]
    assert _reconcile(app).ok


def test_a_right_password_does_not_get_in_once_guesses_sent_with_it_have_locked_the_account(app, users,
                                                                                             monkeypatch):
    """The right password among parallel guesses: the account was read unlocked, the others locked it meanwhile.
    The sign-in reads the account again under its row lock before it opens a session."""
    if _db(app).engine.dialect.name != "postgresql":
        pytest.skip("on SQLite the sign-in's BEGIN IMMEDIATE holds the write lock from its first read: no other "
                    "guess can lock the account meanwhile")
    real_verify = auth_services.verify_password

    def verify_while_the_others_lock(stored: str, typed: str) -> bool:
        right = real_verify(stored, typed)
        with _db(app).engine.begin() as connection:  # the other guesses, committed meanwhile
            connection.execute(text("UPDATE user_account SET failed_logins = 5, locked_out_at = created_at "
                                    "WHERE username = 'qa'"))
        return right

    monkeypatch.setattr(auth_services, "verify_password", verify_while_the_others_lock)
    answer = login(app.test_client(), "qa")
    assert answer.status_code == 401
    assert auth_services.BAD_CREDENTIALS in answer.get_data(as_text=True)  # as any refusal that needs no right password
    assert _open_sessions(app, "qa") == 0
    with _db(app).new_session() as session:
        refusal = session.scalars(select(AuditEvent).where(AuditEvent.action == "login_refused")).one()
    assert refusal.reason == "account locked"


# ---- 2. a lockout ends the account's sessions; an unlock brings none back -------------------------------------

def test_a_lockout_by_wrong_signature_passwords_ends_the_screen_that_guessed(app, users, monkeypatch, client_as):
    lot_id = _lot_ready_for_release(app, monkeypatch)
    qa = client_as("qa")
    other_screen = client_as("qa")
    for _ in range(5):
        qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release", "release-password": "guess"})
    assert _account(app, "qa").locked_out_at is not None
    assert _open_sessions(app, "qa") == 0
    _unlock(app, client_as, "qa")
    assert qa.get("/account").status_code == 302 and other_screen.get("/account").status_code == 302
    assert client_as("qa").get("/account").status_code == 200  # the owner signs in again


def test_a_lockout_at_sign_in_ends_the_open_sessions(app, users, client_as):
    victim = client_as("qa")
    for _ in range(5):
        login(app.test_client(), "qa", "guess")
    assert _open_sessions(app, "qa") == 0
    _unlock(app, client_as, "qa")
    assert victim.get("/account").status_code == 302


def test_a_lockout_as_the_bedside_second_person_ends_that_account_s_sessions(app, users, client_as):
    nurse2 = client_as("nurse2")
    with _db(app).new_session() as session:
        check_id = bedside_check(session, prescribed_bag(session)).check_id
    nurse = client_as("nurse")
    for _ in range(5):
        nurse.post(f"/ward/checks/{check_id}/confirm", data={
            "second_username": "nurse2", "second_password": "guess", "checker_password": PASSWORD})
    assert _account(app, "nurse2").locked_out_at is not None
    assert _open_sessions(app, "nurse2") == 0
    _unlock(app, client_as, "nurse2")
    assert nurse2.get("/account").status_code == 302
    assert nurse.get("/account").status_code == 200  # the one who scanned is not touched


def test_an_unlock_ends_a_session_an_older_version_left_open_at_its_lockout(app, users, client_as):
    victim = client_as("qa")
    with _db(app).engine.begin() as connection:  # locked as an older version did: the session left open
        connection.execute(text("UPDATE user_account SET failed_logins = 5, locked_out_at = created_at "
                                "WHERE username = 'qa'"))
    _unlock(app, client_as, "qa")
    assert victim.get("/account").status_code == 302
    assert _open_sessions(app, "qa") == 0


# ---- 3. a hidden value swapped with SQL is found by reconcile; none is ever shown ------------------------------

def test_a_password_hash_swapped_with_sql_is_found_by_reconcile_and_not_printed(app, users):
    known = hash_password("attacker-knows-this", "fast")
    _attacker(app, "UPDATE user_account SET password_hash = :h WHERE username = 'qa'", h=known)
    assert login(app.test_client(), "qa", "attacker-knows-this").status_code == 302  # the swap works
    found = _reconcile(app)
    qa_id = _account(app, "qa").id
    assert [(d.table, d.entity_id, d.field) for d in found.listed] == [("user_account", str(qa_id), "password_hash")]
    assert str(found.listed[0]) == (f"user_account id {qa_id}, field password_hash: the database holds another value "
                                    "than the audit trail records (a hidden value: neither is shown)")
    said = _run(app, "audit", "reconcile")
    assert said.exit_code == 1 and "password_hash" in said.output
    assert known not in said.output and "hidden-value:" not in said.output
    assert _run(app, "audit", "verify").exit_code == 0  # the chain itself is intact: only reconcile sees it


def test_a_password_changed_by_its_owner_reconciles_and_the_viewer_shows_no_hidden_value(app, users, client_as):
    qa = client_as("qa")
    assert qa.post("/account/password", data={"current_password": PASSWORD,
                                              "new_password": "Another-pass-123"}).status_code == 302
    assert _reconcile(app).ok
    page = html.unescape(client_as("admin").get("/audit?entity_type=user_account").get_data(as_text=True))
    assert "<td>password_hash</td>" in page and '"password_hash":"(hidden)"' in page
    assert "hidden-value:" not in page and "$argon2" not in page and "scrypt" not in page


def test_hidden_values_an_older_version_wrote_as_hidden_are_said_not_compared(app, users, monkeypatch):
    """Before the keyed digest the trail held "(hidden)": such an account reconciles, with a word that its hidden
    values could not be compared, and neither fails nor crashes."""
    def older_version(_key: bytes, model: Any, field: str, value: Any) -> str | None:
        return "(hidden)" if field in model.__audit_exclude__ and value is not None else canonical_value(value)

    monkeypatch.setattr(trail, "_shown", older_version)
    add_user(app, "legacy", ["nurse"], full_name="Legacy Nurse")
    monkeypatch.undo()
    outcome = _reconcile(app)
    assert outcome.ok and outcome.uncompared == 1
    said = _run(app, "audit", "reconcile")
    assert said.exit_code == 0, said.output
    assert said.output.strip().endswith('1 hidden value(s) cannot be compared: an older version wrote them into the '
                                        'trail as "(hidden)", without their keyed digest.'), said.output


# ---- 4. an account that may not sign in may not sign --------------------------------------------------------

def _legacy_admin_and(app: Any, role: str) -> None:
    """An account holding the administrator role beside `role`, as an older version left it."""
    legacy = add_user(app, "legacy", [role], full_name="Legacy Admin")
    with _db(app).engine.begin() as connection:
        connection.execute(text("INSERT INTO user_role (user_id, role) VALUES (:u, 'admin')"), {"u": legacy.id})
    assert login(app.test_client(), "legacy").status_code == 401  # refused at sign-in, as designed


@pytest.fixture
def memo_session(app, users):  # type: ignore[no-untyped-def]
    yield from stand_in_session(app, _TestBase)


def test_an_account_not_allowed_to_sign_in_cannot_sign(app, memo_session):
    _legacy_admin_and(app, "qa")
    session = memo_session
    legacy = session.scalar(select(User).where(User.username == "legacy"))
    with pytest.raises(PermissionDenied) as refused:
        with use_case(session, legacy):
            memo = Memo(text="Release lot L-1")
            session.add(memo)
            signatures.sign(session, legacy, PASSWORD, memo, "Approved", required_role="qa")
    assert refused.value.message == (
        "Signature refused: the account legacy is not active, as it holds Administrator together with QA / "
        "Qualified Person, which is not allowed (EU GMP Annex 11 §12); another administrator must remove one of them "
        "on the Users page. Nothing was signed.")
    assert session.scalars(select(Signature)).all() == []


def test_an_account_not_allowed_to_sign_in_does_not_sign_the_bedside_check(app, users, client_as):
    _legacy_admin_and(app, "nurse")
    with _db(app).new_session() as session:
        check_id = bedside_check(session, prescribed_bag(session)).check_id
    answer = client_as("nurse").post(f"/ward/checks/{check_id}/confirm", data={
        "second_username": "legacy", "second_password": PASSWORD, "checker_password": PASSWORD})
    assert answer.status_code in (401, 403, 409, 422)
    with _db(app).new_session() as session:
        assert session.scalars(select(Signature).where(Signature.entity_type == "two_person_check")).all() == []


# ---- 5. a sign-out is audited under the user's name ---------------------------------------------------------

def test_a_sign_out_is_audited_under_the_user_s_name(app, users, client_as):
    nurse = app.test_client()
    login(nurse, "nurse")
    nurse.post("/logout")
    with _db(app).new_session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "logout")).one()
    assert (event.actor_name, event.actor_id) == ("nurse", _account(app, "nurse").id)
    assert "<td>logout</td>" in client_as("qa").get("/audit?actor=nurse").get_data(as_text=True)


# ---- 6 and 7. the viewer's dates: kept by "Older events", refused when no date ------------------------------

def test_the_older_events_link_keeps_every_filter_the_dates_included(app, users, client_as):
    for _ in range(30):  # 30 failed sign-ins and 30 sign-ins: more than a page of today's events
        login(app.test_client(), "nurse", "wrong-password-x")
        login(app.test_client(), "clinician")
    today = site_today().isoformat()  # the filter's days are the site's (Paris), not the server's UTC date
    page = client_as("qa").get(f"/audit?from={today}&to={today}&entity_type=user_account").get_data(as_text=True)
    link = re.search(r'href="(/audit\?[^"]*before=[^"]*)"', page)
    assert link, "expected an 'Older events' link"
    href = html.unescape(link.group(1))
    assert f"from={today}" in href and f"to={today}" in href and "entity_type=user_account" in href, href


@pytest.mark.parametrize("typed, said", [("from=2024-31-12", "From: not a date (YYYY-MM-DD)."),
                                         ("to=yesterday", "To: not a date (YYYY-MM-DD).")])
def test_a_date_that_is_no_date_is_refused_beside_its_field(app, users, client_as, typed, said):
    answer = client_as("qa").get(f"/audit?{typed}")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    field = typed.split("=")[0]
    assert f'<span class="error" id="{field}-error">{said}</span>' in page
    assert "<td>login</td>" not in page  # nothing listed as if no date had been given
