"""An API token's last use, for its owner to revoke stale ones: stamped at sign-in at most every 5 minutes (a burst
of scans costs one write), never audited (bookkeeping, not a change of the record, so `audit reconcile` stays
clean), shown on My account; a revoked or expired token never stamps. On SQLite and PostgreSQL."""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from mscbatch.audit.models import AuditEvent
from mscbatch.audit.reconcile import reconcile_database
from mscbatch.auth import services
from mscbatch.auth.models import API_TOKEN_LAST_USED, ApiToken, AuthSession, User
from mscbatch.database import utcnow
from mscbatch.site import site_config
from tests.conftest import api_token_for
from tests.integration.statements import statements_sent
from tests.time_words import utc_beside


def _me(app: Any, secret: str) -> Any:
    return app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})


def _token(app: Any, secret: str) -> tuple[int, Any]:
    """(id, last_used_at) of the token, read afresh."""
    with app.extensions["mscbatch.db"].new_session() as session:
        row = session.execute(select(ApiToken.id, API_TOKEN_LAST_USED)
                              .where(ApiToken.token_hash == services.token_digest(secret))).one()
        return row.id, row.last_used_at


def _events(app: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def token_updates(app: Any) -> Any:
    """Every UPDATE of api_token sent to the database in the block."""
    return statements_sent(app, "UPDATE API_TOKEN")


def _clock(monkeypatch: Any, moment: Any) -> None:
    monkeypatch.setattr(services, "utcnow", lambda: moment)


def test_first_use_stamps_then_one_write_per_five_minutes_and_none_is_audited(app, users, monkeypatch):
    secret = api_token_for(app, "nurse")
    token_id, never = _token(app, secret)
    assert never is None
    start = utcnow().replace(microsecond=0)
    events = _events(app)

    _clock(monkeypatch, start)
    with token_updates(app) as updates:
        assert _me(app, secret).status_code == 200
    assert _token(app, secret)[1] == start and len(updates) == 1

    # a burst of scans within the 5 minutes: no write at all (the read alone says it is not due)
    for later in (timedelta(seconds=1), timedelta(minutes=4, seconds=59), timedelta(minutes=5)):
        _clock(monkeypatch, start + later)
        with token_updates(app) as updates:
            assert _me(app, secret).status_code == 200
        assert updates == [] and _token(app, secret)[1] == start

    _clock(monkeypatch, start + timedelta(minutes=5, seconds=1))
    with token_updates(app) as updates:
        assert _me(app, secret).status_code == 200
    assert _token(app, secret) == (token_id, start + timedelta(minutes=5, seconds=1)) and len(updates) == 1

    # bookkeeping, not a change of the record: no event, and the trail still matches every audited row
    assert _events(app) == events
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        outcome = reconcile_database(session, keep=100)
    assert outcome.ok, outcome.lines()


def test_a_revoked_an_expired_or_a_locked_users_token_never_stamps(app, users, monkeypatch):
    revoked, expired, locked = (api_token_for(app, name) for name in ("nurse", "clinician", "technician"))
    revoked_id = _token(app, revoked)[0]
    with app.extensions["mscbatch.db"].new_session() as session:
        nurse = session.scalar(select(User).where(User.username == "nurse"))
        services.revoke_api_token(session, nurse, revoked_id)
        # locked out (disabling would revoke its tokens too): the token is valid, its user is not active
        session.execute(update(User).where(User.username == "technician").values(locked_out_at=utcnow()))
        session.commit()
    _clock(monkeypatch, utcnow() + services.API_TOKEN_LIFETIME + timedelta(seconds=1))
    assert _me(app, expired).status_code == 401
    monkeypatch.undo()
    assert _me(app, revoked).status_code == 401
    assert _me(app, locked).status_code == 401
    assert [_token(app, secret)[1] for secret in (revoked, expired, locked)] == [None, None, None]


def test_the_account_page_shows_never_then_the_time_of_the_last_use(app, users, client_as, monkeypatch):
    secret = api_token_for(app, "nurse")
    page = client_as("nurse")
    listed = page.get("/account").get_data(as_text=True)
    assert "<th>Last used</th>" in listed and "<td>never</td>" in listed
    used = utcnow().replace(second=0, microsecond=0) - timedelta(hours=1)
    _clock(monkeypatch, used)
    assert _me(app, secret).status_code == 200
    listed = page.get("/account").get_data(as_text=True)
    local = used.astimezone(site_config().tz)  # the site's time first, UTC beside it
    assert f'<span class="local">{local:%Y-%m-%d %H:%M %Z}</span> <span class="utc hint">{utc_beside(used)}' in listed
    assert "<td>never</td>" not in listed


def test_a_stamp_never_commits_what_a_use_case_left_pending(app, users):
    """Called inside an open use case (not the request loader's place), the token is not stamped: its commit would
    commit the use case's changes too."""
    secret = api_token_for(app, "nurse")
    pending = "p" * 64
    for flushed in (False, True):  # pending in the session, or already written in its open transaction
        with app.extensions["mscbatch.db"].new_session() as session:
            session.add(AuthSession(id=pending, user_id=users["nurse"].id))
            if flushed:
                session.flush()
            assert services.user_for_api_token(session, secret) is not None
            session.rollback()
        assert _token(app, secret)[1] is None
        with app.extensions["mscbatch.db"].new_session() as session:
            assert session.get(AuthSession, pending) is None


def test_two_workers_stamping_the_same_token_at_once_both_answer(app, users):
    """Another worker holds the token row (PostgreSQL) or the write lock (SQLite) with its own stamp: this request
    waits for it, then its conditional UPDATE finds the stamp fresh and changes nothing. No error, one stamp."""
    secret = api_token_for(app, "nurse")
    token_id, _ = _token(app, secret)
    engine = app.extensions["mscbatch.db"].engine
    theirs = utcnow()
    answers: list[int] = []
    with engine.connect() as other:
        other.execute(update(ApiToken.__table__).where(ApiToken.__table__.c.id == token_id)
                      .values({API_TOKEN_LAST_USED: theirs}))
        request = threading.Thread(target=lambda: answers.append(_me(app, secret).status_code))
        request.start()
        time.sleep(0.3)  # the request reads the token (no stamp yet seen) and waits for the row or the lock
        other.commit()
        request.join(30)
    assert answers == [200]
    assert _token(app, secret)[1] == theirs


def test_a_database_too_busy_for_the_stamp_still_answers_and_stamps_next_time(app, users, database_url, monkeypatch):
    """SQLite: another writer keeps the write lock past the busy timeout; the sign-in is served unstamped."""
    if app.extensions["mscbatch.db"].engine.dialect.name != "sqlite":
        return  # PostgreSQL waits for a row lock (the test above)
    import sqlite3

    import mscbatch.database as database

    secret = api_token_for(app, "nurse")
    monkeypatch.setattr(database, "BUSY_TIMEOUT_SECONDS", 0.3)
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert _me(app, secret).status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _token(app, secret)[1] is None
    assert _me(app, secret).status_code == 200
    assert _token(app, secret)[1] is not None
