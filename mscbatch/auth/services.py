"""Accounts and sign-in: one function per use case, each one transaction, each audited."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, joinedload

from mscbatch.audit import trail
from mscbatch.audit.context import use_case
from mscbatch.auth.models import ROLES, ApiToken, AuthSession, User, UserRole
from mscbatch.auth.passwords import hash_password, password_problem, verify_password
from mscbatch.database import utcnow
from mscbatch.errors import AuthenticationFailed, Conflict, NotFound, PermissionDenied, ValidationFailed

# Same message whether the user exists or not: do not tell an attacker which names are real.
BAD_CREDENTIALS = "Wrong user name or password."


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta
    lockout_threshold: int


# ---- accounts -------------------------------------------------------------------------------------------

def _require_admin(actor: object) -> None:
    """Account administration is the admin's (or the system's: `mscbatch create-user`, the demo), checked here and
    not only by the pages, so that no other path can grant a role."""
    if actor is not None and not (isinstance(actor, User) and actor.has_role("admin")):
        raise PermissionDenied("Only an administrator manages user accounts.")


def create_user(session: Session, actor: object, *, username: str, full_name: str, password: str,
                roles: list[str], hash_profile: str = "standard") -> User:
    _require_admin(actor)
    username = username.strip().lower()
    if not username or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise ValidationFailed("User name: use letters, digits, '.', '-' or '_'.", field="username")
    if not full_name.strip():
        raise ValidationFailed("Full name is required: it is printed on signatures.", field="full_name")
    problem = password_problem(password, username)
    if problem:
        raise ValidationFailed(f"Password: {problem}", field="password")
    _check_roles(roles)
    with use_case(session, actor):
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise Conflict(f"User name '{username}' is already taken.", field="username")
        user = User(username=username, full_name=full_name.strip(),
                    password_hash=hash_password(password, hash_profile),
                    roles=[UserRole(role=r) for r in sorted(set(roles))])
        session.add(user)
    return user


def _check_roles(roles: list[str]) -> None:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValidationFailed(f"Roles: unknown role {', '.join(unknown)}.", field="roles")
    if not roles:
        raise ValidationFailed("Roles: give the user at least one role.", field="roles")


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def set_roles(session: Session, actor: object, user_id: int, roles: list[str], reason: str) -> User:
    _require_admin(actor)
    _check_roles(roles)
    with use_case(session, actor, reason):
        user = get_user(session, user_id)
        if getattr(actor, "id", None) == user_id:  # segregation of duties: no one grants themselves QA release
            raise Conflict("You cannot change your own roles: another administrator must do it.", field="roles")
        wanted = set(roles)
        user.roles = [r for r in user.roles if r.role in wanted] + [
            UserRole(role=r) for r in sorted(wanted - user.role_names)]
    return user


def set_enabled(session: Session, actor: object, user_id: int, enabled: bool, reason: str) -> User:
    _require_admin(actor)
    with use_case(session, actor, reason):
        user = get_user(session, user_id)
        if getattr(actor, "id", None) == user_id and not enabled:
            raise Conflict("You cannot disable your own account.")
        user.is_enabled = enabled
        if not enabled:
            _end_all_sessions(session, user.id, "account disabled")
    return user


def unlock(session: Session, actor: object, user_id: int, reason: str) -> User:
    _require_admin(actor)
    with use_case(session, actor, reason):
        user = get_user(session, user_id)
        if user.locked_out_at is None:
            raise Conflict(f"{user.username} is not locked.")
        user.locked_out_at = None
        user.failed_logins = 0
    return user


def change_password(session: Session, user: User, current_password: str, new_password: str,
                    hash_profile: str = "standard") -> None:
    if not verify_password(user.password_hash, current_password):
        raise ValidationFailed("Current password: wrong password.", field="current_password")
    problem = password_problem(new_password, user.username)
    if problem:
        raise ValidationFailed(f"New password: {problem}", field="new_password")
    with use_case(session, user, "password changed by its owner"):
        user = session.merge(user)
        user.password_hash = hash_password(new_password, hash_profile)
        user.password_changed_at = utcnow()
        _end_all_sessions(session, user.id, "password changed")


# ---- sign-in and sessions -------------------------------------------------------------------------------

def authenticate(session: Session, username: str, password: str, policy: SessionPolicy,
                 remote_addr: str | None = None) -> tuple[User, str]:
    """Check the password; on success open a server-side session and return (user, cookie token).

    Five wrong passwords in a row lock the account until an admin unlocks it (the count is committed
    even though the sign-in fails, so the refusal cannot be retried for free).
    """
    username = (username or "").strip().lower()
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        with use_case(session, None):
            trail.record(session, "login_failed", "user_account", None, new=username, reason="unknown user name")
        raise AuthenticationFailed(BAD_CREDENTIALS)
    if user.locked_out_at is not None:
        with use_case(session, None):
            trail.record(session, "login_refused", "user_account", user.id, reason="account locked")
        raise AuthenticationFailed("This account is locked after too many wrong passwords. Ask an administrator "
                                   "to unlock it.")
    if not user.is_enabled:
        with use_case(session, None):
            trail.record(session, "login_refused", "user_account", user.id, reason="account disabled")
        raise AuthenticationFailed("This account is disabled. Ask an administrator.")
    if not verify_password(user.password_hash, password or ""):
        with use_case(session, None, "wrong password"):
            trail.record(session, "login_failed", "user_account", user.id, reason="wrong password")
            user.failed_logins += 1
            if user.failed_logins >= policy.lockout_threshold:
                user.locked_out_at = utcnow()
        if user.locked_out_at is not None:
            raise AuthenticationFailed(f"Wrong password. The account is now locked after "
                                       f"{policy.lockout_threshold} failures; ask an administrator.")
        raise AuthenticationFailed(BAD_CREDENTIALS)
    token = secrets.token_urlsafe(32)
    with use_case(session, user):
        if user.failed_logins:
            user.failed_logins = 0
        session.add(AuthSession(id=token_digest(token), user_id=user.id, remote_addr=remote_addr))
        trail.record(session, "login", "user_account", user.id)
    return user, token


def load_session_user(session: Session, token: str | None, user_id: str | None,
                      policy: SessionPolicy) -> User | None:
    """The user of a live session, or None: ended, idle too long, too old, or account no longer active."""
    if not token or not user_id:
        return None
    row = session.get(AuthSession, token_digest(token))
    if row is None or row.ended_at is not None or str(row.user_id) != str(user_id):
        return None
    now = utcnow()
    user = session.get(User, row.user_id)
    expired = None
    if now - row.last_seen_at > policy.idle:
        expired = "idle timeout"
    elif now - row.created_at > policy.absolute:
        expired = "absolute timeout"
    elif user is None or not user.is_active:
        expired = "account no longer active"
    if expired:
        row.ended_at, row.end_reason = now, expired
        session.commit()
        return None
    if now - row.last_seen_at > timedelta(seconds=30):  # sliding idle window, without a write per click
        row.last_seen_at = now
        session.commit()
    return user


def end_session(session: Session, token: str | None, reason: str = "logout") -> None:
    if not token:
        return
    row = session.get(AuthSession, token_digest(token))
    if row is None or row.ended_at is not None:
        return
    with use_case(session, (row.user_id, "session")):
        row.ended_at, row.end_reason = utcnow(), reason
        trail.record(session, reason, "user_account", row.user_id)


def _end_all_sessions(session: Session, user_id: int, reason: str) -> None:
    session.execute(update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.ended_at.is_(None))
                    .values(ended_at=utcnow(), end_reason=reason))


# ---- API tokens -----------------------------------------------------------------------------------------

def create_api_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Token name: say what the token is for (e.g. 'ward 3 scanner').", field="name")
    secret = "msc_" + secrets.token_urlsafe(32)
    with use_case(session, user):
        token = ApiToken(user_id=user.id, name=name[:80], prefix=secret[:10], token_hash=token_digest(secret))
        session.add(token)
    return token, secret


def revoke_api_token(session: Session, user: User, token_id: int) -> ApiToken:
    with use_case(session, user, "token revoked by its owner"):
        token = session.get(ApiToken, token_id)
        if token is None or token.user_id != user.id:
            raise NotFound("No such token among yours.")
        if token.revoked_at is not None:
            raise Conflict("This token is already revoked.")
        token.revoked_at = utcnow()
    return token


@cache
def _token_holder() -> Any:
    """The user holding an unrevoked token, with their roles: one statement, built once (every API request)."""
    return (select(User).join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == bindparam("digest"), ApiToken.revoked_at.is_(None))
            .options(joinedload(User.roles)))


def user_for_api_token(session: Session, secret: str) -> User | None:
    user = session.scalars(_token_holder(), {"digest": token_digest(secret)}).unique().first()
    return user if user is not None and user.is_active else None
