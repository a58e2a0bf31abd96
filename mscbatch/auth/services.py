"""Accounts and sign-in: one function per use case, each one transaction, each audited."""
from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NoReturn

from flask import current_app, has_app_context
from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, joinedload

from mscbatch.audit import trail
from mscbatch.audit.context import actor_of, use_case
from mscbatch.auth.lockout import count_wrong_password, end_all_sessions, masked_name
from mscbatch.auth.models import (
    API_TOKEN_LAST_USED,
    ROLE_LABELS,
    ROLES,
    ApiToken,
    AuthSession,
    PasswordHistory,
    SigninFailure,
    User,
    UserRole,
    roles_beside_admin,
)
from mscbatch.auth.names import full_name_problem, name_key, username_problem
from mscbatch.auth.passwords import dummy_hash, hash_password, password_problem, verify_password
from mscbatch.database import READ_ONLY, locked_row, reading, utcnow
from mscbatch.errors import (
    AuthenticationFailed,
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    database_busy,
)

logger = logging.getLogger(__name__)
# the security log's logger (mscbatch.monitoring.security_log.SECURITY), named and not imported: that module brings
# in the custody domain, on which the accounts do not depend
SECURITY = logging.getLogger("mscbatch.security")

# Same message whether the user exists or not: do not tell an attacker which names are real.
BAD_CREDENTIALS = ("Wrong user name or password, or the account is locked or disabled. If you are sure of your "
                   "password, ask an administrator.")
# The longest an API token lives: it is no session (no idle or absolute timeout), so it must end by itself.
API_TOKEN_LIFETIME = timedelta(days=90)
# A token's last use is written when older than this: a burst of scans costs one write, not one per scan, and the
# owner still sees which tokens are stale (the account page shows it to the minute, at worst 5 minutes early).
TOKEN_USE_STAMP_INTERVAL = timedelta(minutes=5)
CREATION_REASON_NEEDED = ("Reason: say why the account is made and its roles granted (e.g. 'New QA officer, "
                          "training record TR-12'): it goes into the audit trail.")
MUST_CHANGE_PASSWORD = ("An administrator chose your password: choose your own on My account before you go on. "
                        "Until then no other page opens, the API is refused and nothing can be signed.")


# 21 CFR 11.300(b): passwords are renewed, not recycled. A new password (the owner's own change) may not be one of
# the account's last PASSWORD_REUSE_DEPTH passwords, the current one included (their hashes: PasswordHistory)...
PASSWORD_REUSE_DEPTH = 5
PASSWORD_REUSED = (f"New password: this is one of your last {PASSWORD_REUSE_DEPTH} passwords. Choose a password you "
                   "have not used before.")
# ... and one older than the site's PASSWORD_MAX_AGE_DAYS must be changed at the next sign-in (must_change_password
# is set then, with this reason in the audit trail)
DEFAULT_PASSWORD_MAX_AGE_DAYS = 180
PASSWORD_TOO_OLD_REASON = "password older than {days} days: its owner must change it"

# The sign-in throttle, in two counts kept over SIGNIN_THROTTLE_WINDOW (rows of signin_failure, so every gunicorn
# worker counts the same failures; a throttled attempt is refused (429) before any password is checked, counted towards
# no account's lockout and written nowhere in the audit trail: a flood from one device neither fills the trail nor
# locks the ward's accounts):
# - per (client address, user name typed): after SIGNIN_THROTTLE_LIMIT failures with one user name from one device,
#   that user name is refused on that device. One person's mistakes on a shared ward tablet do not lock their
#   colleagues out of it (a nurse must still be able to sign in during a running infusion). An administrator who
#   unlocks the account or resets its password lifts it at once (lift_name_throttle).
# - per client address, whatever the names: after SIGNIN_ADDRESS_THROTTLE_FACTOR times as many failures, the device
#   itself is refused. This is the defence against password spraying (one password tried at many names, each under
#   the per-name limit); it is clearly higher than the per-name limit so that a ward's ordinary typing mistakes,
#   spread over several nurses, never reach it.
SIGNIN_THROTTLE_LIMIT = 10
SIGNIN_ADDRESS_THROTTLE_FACTOR = 5
SIGNIN_THROTTLE_WINDOW = timedelta(minutes=15)


def _minutes_words(minutes: int) -> str:
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


class SigninThrottled(DomainError):
    """Too many failed sign-ins: refused unchecked. `minutes`: how long to wait; `device`: True when the whole device
    (client address) is refused, False when only the user name typed is refused on that device."""

    status = 429
    title = "Too many failed sign-ins"

    def __init__(self, minutes: int, *, device: bool = False):
        wait = _minutes_words(minutes)
        if device:
            message = (f"Too many failed sign-ins from this device, under several user names: no one can sign in on "
                       f"this device for the next {wait}. Sign in on another device meanwhile. An administrator "
                       "cannot lift this wait, but tell them: so many failures can be someone guessing passwords.")
        else:
            message = (f"Too many failed sign-ins with this user name on this device: this user name cannot sign in "
                       f"here for the next {wait}. Other people can still sign in on this device. If the password "
                       "is forgotten or the account locked, an administrator can reset the password or unlock the "
                       "account, which also ends this wait.")
        # the field refused: the user name typed, or none (the whole device)
        super().__init__(message, field=None if device else "username")
        self.minutes = minutes
        self.device = device


def password_max_age_days() -> int:
    """PASSWORD_MAX_AGE_DAYS of the running app, else the default."""
    if has_app_context():
        return int(current_app.config.get("PASSWORD_MAX_AGE_DAYS", DEFAULT_PASSWORD_MAX_AGE_DAYS))
    return DEFAULT_PASSWORD_MAX_AGE_DAYS


def password_too_old(user: User, max_age: timedelta | None = None, now: datetime | None = None) -> bool:
    """Whether the account's password is older than the maximum age (the app's setting unless given)."""
    max_age = max_age if max_age is not None else timedelta(days=password_max_age_days())
    return user.password_changed_at is not None and (now or utcnow()) - user.password_changed_at > max_age


def must_change_words(user: User) -> str:
    """Why the account must change its password before anything else, in the words of each refusal."""
    if password_too_old(user):
        days = password_max_age_days()
        return (f"Your password is more than {days} days old: a password must be changed at least every {days} "
                "days. Choose a new one on My account before you go on. Until then no other page opens, the API is "
                "refused and nothing can be signed.")
    return MUST_CHANGE_PASSWORD


class WrongPassword(ValidationFailed):
    """A signed-in user typed a wrong password (password change, new API token): refused, audited, counted
    towards the lockout. `locked`: this failure locked the account and ended its sessions."""

    def __init__(self, message: str, *, field: str, locked: bool):
        super().__init__(message, field=field)
        self.locked = locked


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta
    lockout_threshold: int
    # the profile the accounts' passwords are hashed with (PASSWORD_HASH_PROFILE): an unknown user name is verified
    # against a dummy hash of the same cost, so that sign-in takes as long for it as for a real account
    hash_profile: str = "standard"
    # a password older than this must be changed at the sign-in (PASSWORD_MAX_AGE_DAYS)
    password_max_age: timedelta = timedelta(days=DEFAULT_PASSWORD_MAX_AGE_DAYS)
    # failed sign-ins with one user name from one client address before that name is refused there
    throttle_limit: int = SIGNIN_THROTTLE_LIMIT
    throttle_window: timedelta = SIGNIN_THROTTLE_WINDOW
    # failed sign-ins from one client address, whatever the names, before the address is refused (password
    # spraying); None: SIGNIN_ADDRESS_THROTTLE_FACTOR times throttle_limit
    address_throttle_limit: int | None = None

    @property
    def device_throttle_limit(self) -> int:
        if self.address_throttle_limit is not None:
            return self.address_throttle_limit
        return self.throttle_limit * SIGNIN_ADDRESS_THROTTLE_FACTOR


# ---- accounts -------------------------------------------------------------------------------------------

def _require_admin(actor: object) -> None:
    """Account administration is the admin's (or the system's: `mscbatch create-user`, the demo), checked here and
    not only by the pages, so that no other path can grant a role."""
    if actor is not None and not (isinstance(actor, User) and actor.has_role("admin")):
        raise PermissionDenied("Only an administrator manages user accounts.")


def create_user(session: Session, actor: object, *, username: str, full_name: str, password: str,
                roles: list[str], hash_profile: str = "standard", must_change_password: bool | None = None,
                reason: str | None = None) -> User:
    """`must_change_password`: None (the default) sets it when a person, an administrator, creates the account,
    since they chose its password; the system's own accounts (the demo, tests, benchmarks) are created by actor
    None and are not asked to change it (`mscbatch create-user` asks for it explicitly). `reason` goes on every
    audit event of the creation, the account's and each role granted: a person must give it (the roles granted
    here are grants like set_roles'), the system may not (the command line passes its operator and why)."""
    _require_admin(actor)
    username, full_name = username.strip().lower(), " ".join(full_name.split())
    problems, taken = _new_user_problems(session, username, full_name, password, roles)
    if actor is not None and not (reason or "").strip():
        problems["reason"] = [CREATION_REASON_NEEDED]
    if problems:  # every field's refusal at once (one round trip for the administrator, not one per rule)
        message = " ".join(m for messages in problems.values() for m in messages)
        # 409 when the only fault is a name another account has (as before), else 422
        raise (Conflict if set(problems) <= taken else ValidationFailed)(message, errors=problems)
    with use_case(session, actor, reason):
        user = User(username=username, full_name=full_name, password_hash=hash_password(password, hash_profile),
                    must_change_password=actor is not None if must_change_password is None else must_change_password,
                    roles=[UserRole(role=r) for r in sorted(set(roles))])
        session.add(user)
        try:
            session.flush()
        except IntegrityError as error:  # the same name, created by someone else at the same moment
            raise Conflict(f"User name '{username}' or full name '{full_name}' was just given to another account.",
                           field="full_name" if "full_name" in str(error.orig) else "username") from error
        if actor is not None:  # a person's grant: said on the account's own trail, as set_roles says a change
            _record_roles(session, user.id, [], roles)
    return user


#: the explicit event of a change of an account's roles, on the account itself (entity user_account)
ROLES_CHANGED = "roles_changed"


def _record_roles(session: Session, user_id: int, before: Any, after: Any) -> None:
    """The account's roles before and after, on the account's own trail (field "roles"), with the use case's reason.
    The user_role rows' insert and delete events carry the role rows' ids, not the account's: the account's audit
    trail (its page links to the viewer filtered on user_account and its id) would otherwise show no role granted
    or withdrawn."""
    old, new = sorted(set(before)), sorted(set(after))
    if old != new:
        # the role rows first (their flush takes the account's row, then the chain's head), then this event: the
        # order of every use case that changes an account, so none waits on another holding the other lock
        session.flush()
        trail.record(session, ROLES_CHANGED, "user_account", user_id, field="roles",
                     old=", ".join(old) or None, new=", ".join(new) or None)


def _username_taken(session: Session, username: str) -> str | None:
    if username and session.scalar(select(User.id).where(User.username == username)) is not None:
        return f"User name '{username}' is already taken."
    return None


def _full_name_taken(session: Session, full_name: str) -> str | None:
    """The printed name on a signature names one person: a full name that prints as another account's (whatever
    its case, its spacing or its compatibility forms: names.name_key) is refused here with the field named; the
    unique index on lower(full_name) refuses an exact copy that slips past. The accounts are few: compared here."""
    if not full_name:
        return None
    key = name_key(full_name)
    holder = next((username for username, name in session.execute(select(User.username, User.full_name))
                   if name_key(name) == key), None)
    if holder is None:
        return None
    return (f"Full name: '{full_name}' is already the printed name of another account ({holder}); signatures could "
            "not tell them apart. Add a middle initial or another distinction.")


def new_user_problems(session: Session, *, username: str, full_name: str, password: str,
                      roles: list[str]) -> dict[str, list[str]]:
    """Every rule a new account breaks, per field (empty: none): the user name (its characters, not taken), the full
    name (given, not another account's printed name), the password and the roles, all judged together so that one
    answer names every field to correct. Reads only."""
    return _new_user_problems(session, username.strip().lower(), " ".join(full_name.split()), password, roles)[0]


def _new_user_problems(session: Session, username: str, full_name: str, password: str,
                       roles: list[str]) -> tuple[dict[str, list[str]], set[str]]:
    """(problems per field, the fields refused only because another account has that name)."""
    problems: dict[str, list[str]] = {}
    taken: set[str] = set()
    if words := username_problem(username):
        problems["username"] = [words]
    elif words := _username_taken(session, username):
        problems["username"], taken = [words], taken | {"username"}
    if not full_name:
        problems["full_name"] = ["Full name is required: it is printed on signatures."]
    elif words := full_name_problem(full_name):
        problems["full_name"] = [words]
    elif words := _full_name_taken(session, full_name):
        problems["full_name"], taken = [words], taken | {"full_name"}
    problem = password_problem(password, username)
    if problem:
        problems["password"] = [f"Password: {problem}"]
    roles_problem = _roles_problem(roles)
    if roles_problem:
        problems["roles"] = [roles_problem]
    return problems, taken


def _roles_problem(roles: list[str]) -> str | None:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        return f"Roles: unknown role {', '.join(unknown)}."
    if not roles:
        return "Roles: give the user at least one role."
    beside = roles_beside_admin(roles)
    if beside:
        named = role_list(beside)
        return (f"Roles: an administrator account cannot also hold {named}. System administration is kept apart "
                "from the roles that record and sign (EU GMP Annex 11 §12): use a separate account for the "
                f"{named} work.")
    return None


def _check_roles(roles: list[str]) -> None:
    problem = _roles_problem(roles)
    if problem:
        raise ValidationFailed(problem, field="roles")


def role_list(roles: list[str]) -> str:
    """'QA / Qualified Person', 'Lab technician and Clinician', 'A, B and C': roles as a person reads them."""
    labels = [ROLE_LABELS[role] for role in roles]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def admin_beside_words(user: User) -> str | None:
    """Why an account holding the administrator role beside others (as an older version could leave it) may not be
    used, in the words of each refusal (sign-in, a signature, the bedside second person); None for any other
    account. 'it holds Administrator together with Nurse, which is not allowed (...); another administrator ...'"""
    beside = user.roles_beside_admin
    if not beside:
        return None
    return (f"it holds Administrator together with {role_list(beside)}, which is not allowed (EU GMP Annex 11 §12); "
            "another administrator must remove one of them on the Users page")


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def set_roles(session: Session, actor: object, user_id: int, roles: list[str], reason: str) -> User:
    """The new set must keep the administrator role alone, also for an account that broke the rule before it
    existed: the change that repairs it removes one side."""
    _require_admin(actor)
    if getattr(actor, "id", None) == user_id:  # segregation of duties: no one grants themselves QA release
        raise Conflict("You cannot change your own roles: another administrator must do it.", field="roles")
    _check_roles(roles)
    with use_case(session, actor, reason):
        user = get_user(session, user_id)
        before, wanted = user.role_names, set(roles)
        user.roles = [r for r in user.roles if r.role in wanted] + [
            UserRole(role=r) for r in sorted(wanted - user.role_names)]
        _record_roles(session, user.id, before, wanted)
    return user


def set_enabled(session: Session, actor: object, user_id: int, enabled: bool, reason: str) -> User:
    _require_admin(actor)
    with use_case(session, actor, reason):
        user = get_user(session, user_id)
        if getattr(actor, "id", None) == user_id and not enabled:
            raise Conflict("You cannot disable your own account.")
        if user.is_enabled == enabled:  # a second click, a stale tab: nothing changes, nothing is audited
            return user
        user.is_enabled = enabled
        if not enabled:
            end_all_sessions(session, user.id, "account disabled")
            _revoke_all_tokens(session, user.id)
    return user


def unlock(session: Session, actor: object, user_id: int, reason: str) -> User:
    _require_admin(actor)
    with use_case(session, actor, reason):
        user = get_user(session, user_id)
        if user.locked_out_at is None:
            raise Conflict(f"{user.username} is not locked.")
        user.locked_out_at = None
        user.failed_logins = 0
        lift_name_throttle(session, user.username)  # its owner may sign in again at once, on the device they used
        # a session left open by the lockout (one an older version did not end) must not come back to life: whoever
        # the account belongs to signs in again
        end_all_sessions(session, user.id, "account unlocked")
    return user


#: the explicit event of an administrator's password reset, on the account itself (entity user_account)
PASSWORD_RESET = "password_reset"
#: why the reset account's open sessions ended (AuthSession.end_reason), told to whoever had one open
RESET_SESSION_END = "password reset by an administrator"
RESET_REASON_NEEDED = ("Reason: say why the password is reset and how you made sure who asked (e.g. 'forgot her "
                       "password, identity checked in person on ward 3'): it goes into the audit trail.")


def password_reset_problems(username: str, temporary_password: str, reason: str) -> dict[str, list[str]]:
    """Every rule a password reset breaks, per field (empty: none): the temporary password follows the rules of any
    new password, and the reason is required. Reads nothing."""
    problems: dict[str, list[str]] = {}
    problem = password_problem(temporary_password or "", username)
    if problem:
        problems["password"] = [f"Temporary password: {problem}"]
    if not (reason or "").strip():
        problems["reason"] = [RESET_REASON_NEEDED]
    return problems


def reset_password(session: Session, actor: object, user_id: int, temporary_password: str, reason: str,
                   hash_profile: str = "standard") -> User:
    """An administrator gives an account a temporary password: its owner forgot theirs, or it may be known to
    someone else (21 CFR 11.300(b),(c): passwords checked and their loss managed). The administrator then knows it,
    so the owner must choose their own at the next sign-in (`must_change_password`), as for a new account.

    In the same transaction: the run of wrong passwords and the lockout they caused are cleared (a lockout here
    comes only from wrong passwords, guesses at the old password, which no longer opens anything; the owner who
    forgot it has usually locked the account trying), every open session ends (a screen signed in with the old
    password, perhaps someone else's, is signed out at once) and every API token is revoked (a token is a
    credential made with the old password: whoever knew it may have made one; loss management deauthorises what
    may be compromised, and the owner makes new ones once signed in with their own password). The audit trail has
    the reset (PASSWORD_RESET with the reason), each field changed (the hash only as the trail's keyed digest, as
    at the owner's own change) and each token revoked; the security log has a line once it is committed.

    Not for one's own account (My account asks for the current password), nor for a disabled account (enable it
    first: a reset must not be the way a disabled account comes back)."""
    _require_admin(actor)
    if getattr(actor, "id", None) == user_id:
        raise Conflict("You cannot reset your own password here: change it on My account, which asks for your "
                       "current password.")
    with use_case(session, actor, reason):
        user = locked_row(session, User, user_id, "user")  # read afresh: a disable sent at the same moment counts
        if not user.is_enabled:
            raise Conflict(f"{user.username}'s account is disabled: its password cannot be reset. Enable the account "
                           "first if the person is to work again.")
        problems = password_reset_problems(user.username, temporary_password, reason)
        if problems:  # every field's refusal at once
            raise ValidationFailed(" ".join(m for messages in problems.values() for m in messages), errors=problems)
        _remember_password(session, user)
        user.password_hash = hash_password(temporary_password, hash_profile)
        user.password_changed_at = utcnow()
        user.must_change_password = True
        if user.failed_logins:
            user.failed_logins = 0
        if user.locked_out_at is not None:
            user.locked_out_at = None
        lift_name_throttle(session, user.username)  # the owner signs in with the temporary password at once
        end_all_sessions(session, user.id, RESET_SESSION_END)
        _revoke_all_tokens(session, user.id)
        session.flush()  # the account's row changes first, then this event: the order of every account use case
        trail.record(session, PASSWORD_RESET, "user_account", user.id)
        user_id, username, said = user.id, user.username, session.info["audit_reason"]
    # once committed, as the refusals' lines are (security_log.py); never the password, only who, whose and why
    SECURITY.warning("%s: user_account %s (%s)", PASSWORD_RESET, user_id, said,
                     extra={"action": PASSWORD_RESET, "entity_type": "user_account", "entity_id": str(user_id),
                            "username": username, "reason": said, "actor": actor_of(actor)[1]})
    return user


def change_password(session: Session, user: User, current_password: str, new_password: str,
                    hash_profile: str = "standard") -> None:
    """The owner's own change: ends every session and revokes every API token of the account (whoever knew the
    old password may have made one), and clears `must_change_password`. A wrong current password is refused,
    audited and counted towards the lockout, like one at sign-in or at a signature."""
    if not verify_password(user.password_hash, current_password or ""):
        refuse_wrong_password(session, user, "password_change_refused", "a password change", "current_password",
                              "Current password: wrong password. The password was not changed.")
    problem = password_problem(new_password, user.username)
    if problem:
        raise ValidationFailed(f"New password: {problem}", field="new_password")
    if verify_password(user.password_hash, new_password):
        raise ValidationFailed("New password: choose a password other than the current one.", field="new_password")
    if any(verify_password(earlier, new_password) for earlier in _earlier_hashes(session, user.id)):
        raise ValidationFailed(PASSWORD_REUSED, field="new_password")
    with use_case(session, user, "password changed by its owner"):
        user = session.merge(user)
        _remember_password(session, user)
        user.password_hash = hash_password(new_password, hash_profile)
        user.password_changed_at = utcnow()
        if user.must_change_password:
            user.must_change_password = False
        if user.failed_logins:
            user.failed_logins = 0  # a right password ends the run of failures, as at sign-in
        end_all_sessions(session, user.id, "password changed")
        _revoke_all_tokens(session, user.id)


def _earlier_hashes(session: Session, user_id: int) -> list[str]:
    """The hashes of the account's passwords before the current one, newest first, as many as the reuse rule
    looks at (the current one makes up the PASSWORD_REUSE_DEPTH)."""
    return list(session.scalars(select(PasswordHistory.password_hash).where(PasswordHistory.user_id == user_id)
                                .order_by(PasswordHistory.replaced_at.desc(), PasswordHistory.id.desc())
                                .limit(PASSWORD_REUSE_DEPTH - 1)))


def _remember_password(session: Session, user: User) -> None:
    """Keep the password being replaced in the account's history, and drop what the reuse rule no longer reads."""
    session.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash, replaced_at=utcnow()))
    session.flush()
    kept = select(PasswordHistory.id).where(PasswordHistory.user_id == user.id).order_by(
        PasswordHistory.replaced_at.desc(), PasswordHistory.id.desc()).limit(PASSWORD_REUSE_DEPTH - 1)
    session.execute(delete(PasswordHistory).where(PasswordHistory.user_id == user.id,
                                                  PasswordHistory.id.not_in(kept.scalar_subquery()))
                    .execution_options(synchronize_session=False))


def refuse_wrong_password(session: Session, user: User, action: str, what: str, field: str, message: str) -> NoReturn:
    """A signed-in user typed a wrong password: nothing of the use case is kept, but the refusal is, in a
    transaction of its own, audited as `action` and counted towards the lockout (21 CFR 11.300(d): a screen left
    signed in must not be a way to guess the password). The lockout ends the account's sessions at once."""
    user_id, username = user.id, user.username
    session.rollback()
    with use_case(session, (user_id, username), f"wrong password at {what}"):
        account = session.get(User, user_id)
        if account is None:
            raise NotFound(f"No user with id {user_id}.")
        locked = count_wrong_password(account, session)  # the lockout ends the account's sessions
        trail.record(session, action, "user_account", user_id)
    if locked:
        raise WrongPassword(f"{message} The account is now locked after too many wrong passwords and you are "
                            "signed out; ask an administrator to unlock it.", field=field, locked=True)
    raise WrongPassword(message, field=field, locked=False)


# ---- sign-in and sessions -------------------------------------------------------------------------------

def authenticate(session: Session, username: str, password: str, policy: SessionPolicy,
                 remote_addr: str | None = None) -> tuple[User, str]:
    """Check the password; on success open a server-side session and return (user, cookie token).

    Five wrong passwords in a row lock the account until an admin unlocks it (the count is committed
    even though the sign-in fails, so the refusal cannot be retried for free). Every refusal that needs no right
    password is the one answer BAD_CREDENTIALS: an unknown name, a wrong password (the one that locks the account
    too), and any password typed at a locked or disabled account, right or wrong. Telling a locked account's right
    password apart would let a guesser go on at a locked account, uncounted, until the answer changed; telling a
    real account apart would name it. The answer says that a locked account is one of the causes, for its owner.

    `remote_addr`: the client's address (loading.client_address). Each failure is kept against it and against the
    user name typed from it (signin_failure); after policy.throttle_limit failures with one name from the address
    within policy.throttle_window, that name's attempts from there are refused, and after
    policy.device_throttle_limit failures from the address (any names) all its attempts are: SigninThrottled, before
    anything else, no password checked, no account's count, no audit event.

    A password older than policy.password_max_age signs in with must_change_password set (audited, with the
    reason): as for a password an administrator chose, its owner changes it before anything else.
    """
    address = (remote_addr or "")[:64] or None
    username = (username or "").strip().lower()
    if address is not None:
        throttled = throttle_refusal(session, address, username, policy)
        if throttled is not None:
            raise throttled
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        # the same Argon2 verification as a wrong password at a real account: else the quicker answer names the
        # unknown names, and so the real ones (user enumeration by response time)
        verify_password(dummy_hash(policy.hash_profile), password or "")
        with use_case(session, None):  # what was typed may be a password typed in the wrong field: never kept whole
            trail.record(session, "login_failed", "user_account", None, new=masked_name(username),
                         reason="unknown user name")
            engaged = _count_signin_failure(session, address, username, policy)
        _say_throttle_engaged(engaged, address, policy)
        raise AuthenticationFailed(BAD_CREDENTIALS)
    right = verify_password(user.password_hash, password or "")  # also at a shut account: the same time taken
    refused = _refusal(user)
    if refused is not None:  # audited (not counted: the account is already shut), whatever was typed
        with use_case(session, None):
            trail.record(session, "login_refused", "user_account", user.id, reason=refused)
            engaged = _count_signin_failure(session, address, username, policy)
        _say_throttle_engaged(engaged, address, policy)
        raise AuthenticationFailed(BAD_CREDENTIALS)
    if not right:
        with use_case(session, None, "wrong password"):
            # counted on the row read afresh under its lock: wrong passwords sent at once are each counted, and the
            # lockout ends the account's open sessions
            count_wrong_password(user, session, policy.lockout_threshold)
            trail.record(session, "login_failed", "user_account", user.id, reason="wrong password")
            engaged = _count_signin_failure(session, address, username, policy)
        _say_throttle_engaged(engaged, address, policy)
        raise AuthenticationFailed(BAD_CREDENTIALS)  # the locking one too: "now locked" would name a real account
    beside = user.roles_beside_admin  # checked after the password: a guesser learns nothing of the roles
    if beside:
        with use_case(session, None):
            trail.record(session, "login_refused", "user_account", user.id,
                         reason=f"administrator together with {', '.join(beside)}")
        raise AuthenticationFailed(
            f"This account cannot be used: {admin_beside_words(user)}.")
    token = secrets.token_urlsafe(32)
    too_old = not user.must_change_password and password_too_old(user, policy.password_max_age)
    days = policy.password_max_age.days
    with use_case(session, user, PASSWORD_TOO_OLD_REASON.format(days=days) if too_old else None):
        # read afresh under the row's lock: wrong passwords sent at the same moment may have locked the account
        # since it was read above, and a right guess among them must not get in
        user = locked_row(session, User, user.id, "user")
        refused = _refusal(user)
        if refused is None:
            if user.failed_logins:
                user.failed_logins = 0
            if too_old and not user.must_change_password:
                user.must_change_password = True  # the same way as a password an administrator chose
            session.add(AuthSession(id=token_digest(token), user_id=user.id, remote_addr=address))
            trail.record(session, "login", "user_account", user.id)
    if refused is not None:
        with use_case(session, None):
            trail.record(session, "login_refused", "user_account", user.id, reason=refused)
            engaged = _count_signin_failure(session, address, username, policy)
        _say_throttle_engaged(engaged, address, policy)
        raise AuthenticationFailed(BAD_CREDENTIALS)  # locked meanwhile by other guesses: the same answer
    return user, token


#: what begins the signin_failure key of a failure counted per user name (name_throttle_key); no address begins so
NAME_KEY_PREFIX = "u:"


def _name_digest(username: str) -> str:
    """A keyed digest of the user name typed (normalised): what was typed may be a password typed in the wrong field,
    so it is never kept whole, and the app's secret key keeps it from being reversed by trying names."""
    key: Any = current_app.config.get("SECRET_KEY") if has_app_context() else None
    key = key if isinstance(key, bytes) else str(key or "").encode()
    return hmac.new(key, (username or "").strip().lower().encode(), hashlib.sha256).hexdigest()[:16]


def name_throttle_key(address: str, username: str) -> str:
    """The signin_failure row key (its `address` column) of a failure with this user name from this address: the
    name's digest, then the address. The failures per address alone are kept under the bare address."""
    return f"{NAME_KEY_PREFIX}{_name_digest(username)}@{address}"[:64]


def _wait(session: Session, key: str, limit: int, window: timedelta, now: datetime) -> int | None:
    """Whole minutes (at least 1) until `key` may try again, or None: it may now. It may once fewer than `limit` of
    its failures are within the window: the limit-th newest failure leaves it then."""
    with reading(session):
        blocking = session.scalar(
            select(SigninFailure.failed_at)
            .where(SigninFailure.address == key, SigninFailure.failed_at > now - window)
            .order_by(SigninFailure.failed_at.desc()).offset(max(limit, 1) - 1).limit(1))
    if blocking is None:
        return None
    return max(1, math.ceil((blocking + window - now).total_seconds() / 60))


def throttle_refusal(session: Session, address: str, username: str, policy: SessionPolicy,
                     now: datetime | None = None) -> SigninThrottled | None:
    """The refusal of a sign-in from `address` with `username` (as typed), or None: it may be tried. The device
    first (policy.device_throttle_limit failures from the address, whatever the names), then the user name on that
    device (policy.throttle_limit failures with it from the address)."""
    now = now or utcnow()
    device = _wait(session, address, policy.device_throttle_limit, policy.throttle_window, now)
    if device is not None:
        return SigninThrottled(device, device=True)
    name = _wait(session, name_throttle_key(address, username), policy.throttle_limit, policy.throttle_window, now)
    return SigninThrottled(name) if name is not None else None


def lift_name_throttle(session: Session, username: str) -> None:
    """Inside an administrator's unlock or password reset: the account's name is no longer refused on any device for
    its earlier failed sign-ins (the device throttle, against guessing at many names, stays)."""
    session.execute(delete(SigninFailure)
                    .where(SigninFailure.address.like(f"{NAME_KEY_PREFIX}{_name_digest(username)}@%"))
                    .execution_options(synchronize_session=False))


def _count_signin_failure(session: Session, address: str | None, username: str,
                          policy: SessionPolicy) -> str | None:
    """Inside the failure's use case, after its audit event (the chain's head taken: failures are written one at a
    time): keep the failure against the address and against the user name from that address, and prune what the
    window no longer holds. "device" or "user name" when this failure is the one that reaches that limit (the
    throttle engages: said once in the security log), else None."""
    if address is None:
        return None
    now = utcnow()
    window_start = now - policy.throttle_window
    name_key = name_throttle_key(address, username)
    session.execute(delete(SigninFailure).where(SigninFailure.failed_at <= window_start)
                    .execution_options(synchronize_session=False))
    session.add_all([SigninFailure(address=address, failed_at=now), SigninFailure(address=name_key, failed_at=now)])
    session.flush()

    def recent(key: str) -> int:
        return session.scalar(select(func.count()).select_from(SigninFailure).where(
            SigninFailure.address == key, SigninFailure.failed_at > window_start)) or 0

    if recent(address) == policy.device_throttle_limit:
        return "device"
    return "user name" if recent(name_key) == policy.throttle_limit else None


def _say_throttle_engaged(engaged: str | None, address: str | None, policy: SessionPolicy) -> None:
    if engaged:
        minutes = int(policy.throttle_window.total_seconds() // 60)
        if engaged == "device":
            SECURITY.warning("signin_throttled: %s failed sign-ins from %s within %s minutes: every attempt from it "
                             "is refused", policy.device_throttle_limit, address, minutes,
                             extra={"action": "signin_throttled", "remote_addr": address})
        else:  # never the name: it may be a password typed in the wrong field
            SECURITY.warning("signin_throttled: %s failed sign-ins with one user name from %s within %s minutes: "
                             "that user name is refused there", policy.throttle_limit, address, minutes,
                             extra={"action": "signin_throttled", "remote_addr": address})


def _refusal(user: User) -> str | None:
    """'account locked', 'account disabled' or None: a locked account is said locked, even when also disabled."""
    if user.locked_out_at is not None:
        return "account locked"
    return "account disabled" if not user.is_enabled else None


def load_session_user(session: Session, token: str | None, user_id: str | None,
                      policy: SessionPolicy, *, activity: bool = True) -> User | None:
    """The user of a live session, or None: ended, idle too long, too old, or account no longer active.
    `activity` False (a page's own poll, no person's doing): the session is checked but its idle window does not
    slide, so an unattended screen still idles out."""
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
    if expired:  # said in the trail, as a sign-out is: when and why this person's session ended
        with use_case(session, (row.user_id, user.username if user is not None else "session"),
                      f"session ended: {expired}"):
            # read again under its lock: two requests with one expired cookie end it (and say so) once
            row = session.get(AuthSession, row.id, with_for_update=True, populate_existing=True)
            if row is not None and row.ended_at is None:
                row.ended_at, row.end_reason = now, expired
                trail.record(session, "session_expired", "user_account", row.user_id)
        return None
    if activity and now - row.last_seen_at > timedelta(seconds=30):  # sliding idle window, not a write per click
        row.last_seen_at = now
        session.commit()
    return user


def session_end_reason(session: Session, token: str | None) -> str | None:
    """Why the browser session of this cookie ended (idle timeout, logout, password changed...), or None when
    the cookie names no session: read after load_session_user refused it, to tell the person."""
    if not token:
        return None
    row = session.get(AuthSession, token_digest(token))
    return row.end_reason if row is not None else None


def end_session(session: Session, token: str | None, reason: str = "logout") -> None:
    if not token:
        return
    row = session.get(AuthSession, token_digest(token))
    if row is None or row.ended_at is not None:
        return
    user = session.get(User, row.user_id)
    with use_case(session, (row.user_id, user.username if user is not None else "session")):
        row.ended_at, row.end_reason = utcnow(), reason
        trail.record(session, reason, "user_account", row.user_id)


def _revoke_all_tokens(session: Session, user_id: int) -> None:
    """Revoke every unrevoked API token of the user, through the ORM: each revocation is an audit event, with the
    use case's reason (password changed, account disabled)."""
    now = utcnow()
    for token in session.scalars(select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))):
        token.revoked_at = now


# ---- API tokens -----------------------------------------------------------------------------------------

def _token_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Token name: say what the token is for (e.g. 'ward 3 scanner').", field="name")
    return name[:80]


def create_api_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A token for `user`, valid API_TOKEN_LIFETIME. No password here: the system's callers (tests, benchmarks)
    use it; a person goes through create_api_token_confirmed."""
    return _new_token(session, user, _token_name(name))


class FormAlreadyUsed(Conflict):
    """The token form was sent again (a reload of the answer, a second click): the token it made is `token`."""

    def __init__(self, token: ApiToken):
        super().__init__(f"No second token was created: token '{token.name}' ({token.prefix}…) was created since "
                         "this form was opened, most likely by this same form (a reload sends it again). Its secret "
                         "was shown only once, when it was made: if you did not copy it, revoke that token and "
                         "create a new one.")
        self.token = token


def create_api_token_confirmed(session: Session, user: User, name: str, password: str,
                               newest_seen: int | None = None) -> tuple[ApiToken, str]:
    """A token made by its owner from the browser: the password is asked again, as for a signature (an open
    screen must not mint a credential that outlives the session). A wrong one is refused, audited and counted.
    `newest_seen`: the id of the owner's newest token when the form was shown (0: none). A token made since means
    this form was already used (the browser sends it again on a reload): FormAlreadyUsed, and no second token. The
    secret is never kept, so the token made is named, not shown again."""
    name = _token_name(name)
    if user.must_change_password:
        raise PermissionDenied(must_change_words(user))
    if not verify_password(user.password_hash, password or ""):
        refuse_wrong_password(session, user, "api_token_refused", "an API token's creation", "password",
                              "Password: wrong password. No token was created.")
    return _new_token(session, user, name, password_confirmed=True, newest_seen=newest_seen)


def _new_token(session: Session, user: User, name: str, password_confirmed: bool = False,
               newest_seen: int | None = None) -> tuple[ApiToken, str]:
    secret = "msc_" + secrets.token_urlsafe(32)
    with use_case(session, user):
        if newest_seen is not None:
            locked_row(session, User, user.id, "user")  # the same form sent twice at once: the second waits here
            newest = session.scalar(select(ApiToken).where(ApiToken.user_id == user.id)
                                    .order_by(ApiToken.id.desc()).limit(1))
            if newest is not None and newest.id > newest_seen:
                raise FormAlreadyUsed(newest)
        created = utcnow()
        token = ApiToken(user_id=user.id, name=name, prefix=secret[:10], token_hash=token_digest(secret),
                         created_at=created, expires_at=created + API_TOKEN_LIFETIME)
        session.add(token)
        if password_confirmed:
            account = session.get(User, user.id)
            if account is not None and account.failed_logins:
                account.failed_logins = 0  # a right password ends the run of failures, as at sign-in
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
    """The user holding an unrevoked, unexpired token, with their roles, and the token's id and last use (to stamp
    it): one statement over the token's unique index, built once (every API request)."""
    return (select(User, ApiToken.id, API_TOKEN_LAST_USED).join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == bindparam("digest"), ApiToken.revoked_at.is_(None),
                   ApiToken.expires_at > bindparam("now"))
            .options(joinedload(User.roles)))


@cache
def _token_use_stamp() -> Any:
    """Stamp the token's use unless another request did within the interval: of two workers stamping the same token
    at once, the second (after the first's row lock on PostgreSQL, its write lock on SQLite) updates nothing."""
    return (update(ApiToken.__table__)
            .where(ApiToken.__table__.c.id == bindparam("token_id"),
                   or_(API_TOKEN_LAST_USED.is_(None), API_TOKEN_LAST_USED < bindparam("cutoff")))
            .values({API_TOKEN_LAST_USED: bindparam("used_at")}))


def user_for_api_token(session: Session, secret: str) -> User | None:
    """The active user the token signs in, or None. Stamps the token's last use (at most every
    TOKEN_USE_STAMP_INTERVAL), which is bookkeeping and not audited (see ApiToken)."""
    quiet = _nothing_to_commit(session)  # judged before the read: the read itself may open the transaction
    now = utcnow()
    found = session.execute(_token_holder(), {"digest": token_digest(secret), "now": now}).unique().first()
    if found is None or not found[0].is_active:
        return None
    user, token_id, last_used_at = found
    if quiet and (last_used_at is None or now - last_used_at > TOKEN_USE_STAMP_INTERVAL):
        _stamp_token_use(session, token_id, now)
    return user


def api_token_refusal(session: Session, secret: str) -> str | None:
    """Why a token user_for_api_token refused authenticates nobody, told only for a genuine token (its holder has
    the secret: telling them names nothing to a guesser): "locked" when its account is locked (after too many wrong
    passwords), else None (unknown, revoked, expired, or an account disabled or blocked: the general answer)."""
    found = session.execute(select(User.locked_out_at).join(ApiToken, ApiToken.user_id == User.id).where(
        ApiToken.token_hash == token_digest(secret), ApiToken.revoked_at.is_(None),
        ApiToken.expires_at > utcnow())).first()
    return "locked" if found is not None and found[0] is not None else None


def _nothing_to_commit(session: Session) -> bool:
    """The stamp may end the session's transaction, so it is written only where that transaction holds nothing: a
    session with none (the request loader runs before any view) or in reading()'s read-only one. Called in the
    middle of a use case, the token is not stamped (its next use will be)."""
    if session.new or session.dirty or session.deleted:
        return False
    return not session.in_transaction() or bool(session.connection().get_execution_options().get(READ_ONLY))


def _stamp_token_use(session: Session, token_id: int, now: datetime) -> None:
    """In a transaction and on a connection of its own: neither its commit nor its failure touches the session's
    (a rollback there would expire the signed-in user, whose reload would then want SQLite's write lock)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not connection.get_execution_options().get(READ_ONLY):
        session.commit()  # the read began a write transaction (BEGIN IMMEDIATE; nothing else is in it): let go
    try:
        with session.get_bind().begin() as stamping:
            stamping.execute(_token_use_stamp(), {"token_id": token_id, "cutoff": now - TOKEN_USE_STAMP_INTERVAL,
                                                  "used_at": now})
    except (DBAPIError, sqlite3.OperationalError) as error:  # SQLite's refused BEGIN IMMEDIATE comes unwrapped
        if not database_busy(error):
            raise
        # a database too busy to take the stamp now (another writer past the busy timeout, a lock timeout) must not
        # refuse the scan for bookkeeping: the next use stamps it
        logger.warning("api_token_use_not_stamped: token id %s, database busy", token_id)
