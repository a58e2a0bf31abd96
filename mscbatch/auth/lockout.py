"""Account lockout: every wrong password counts, wherever it is typed (sign-in, an electronic signature, the
bedside second person), so that a session left open cannot be used to guess a password through a signature form
(21 CFR 11.300(d): attempts at unauthorised use are detected and stopped)."""
from __future__ import annotations

from flask import current_app, has_app_context
from sqlalchemy import update
from sqlalchemy.orm import Session, object_session

from mscbatch.auth.models import AuthSession, User
from mscbatch.database import locked_row, utcnow
from mscbatch.errors import NotFound

DEFAULT_THRESHOLD = 5
LOCKED_REASON = "account locked"


def lockout_threshold() -> int:
    """LOCKOUT_THRESHOLD of the running app (the same setting as at sign-in), else the default."""
    return int(current_app.config.get("LOCKOUT_THRESHOLD", DEFAULT_THRESHOLD)) if has_app_context() else DEFAULT_THRESHOLD


def end_all_sessions(session: Session, user_id: int, reason: str) -> None:
    """End every open session of the account (its cookies are refused from now on, wherever they are)."""
    session.execute(update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.ended_at.is_(None))
                    .values(ended_at=utcnow(), end_reason=reason))


def count_wrong_password(user: User, session: Session | None = None, threshold: int | None = None) -> bool:
    """Count one wrong password (inside the refusal's use case); True when the account is now locked.

    The account's row is read afresh under a row lock (SELECT ... FOR UPDATE on PostgreSQL; SQLite's BEGIN
    IMMEDIATE serialises writers already) before it is counted: wrong passwords sent in parallel are each counted,
    none lost to another's stale copy of the counter. The change goes through the ORM, so the audit trail has it.
    The lockout ends every open session of the account at once: a screen that guessed stays signed out, also after
    an administrator unlocks the account (its API tokens are refused while it is locked: it is not active).
    Call it before the refusal's audit event is written (the row lock, then the audit chain's head: the order of
    the use cases that change an account). `threshold`: the sign-in's policy, else lockout_threshold()."""
    session = session if session is not None else object_session(user)
    if session is None:
        raise RuntimeError("count_wrong_password needs the session of the refusal's use case")
    try:
        account = locked_row(session, User, user.id, "user")
    except NotFound:
        return False
    account.failed_logins += 1
    locking = account.failed_logins >= (threshold or lockout_threshold()) and account.locked_out_at is None
    if locking:
        account.locked_out_at = utcnow()
        end_all_sessions(session, account.id, LOCKED_REASON)
    return account.locked_out_at is not None


def masked_name(typed: str) -> str:
    """What the audit trail keeps of a user name no account has: its first two characters and its length, never
    the whole text (a password typed into the user-name field would otherwise be kept forever, in a trail that QA and
    the administrator read). 'mscbatch-demo' -> 'ms…(13 characters)'."""
    typed = typed or ""
    count = len(typed)
    return f"{typed[:2]}…({count} character{'' if count == 1 else 's'})"
