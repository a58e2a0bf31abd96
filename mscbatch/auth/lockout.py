"""Account lockout: every wrong password counts, wherever it is typed (sign-in, an electronic signature, the
bedside second person), so that a session left open cannot be used to guess a password through a signature form
(21 CFR 11.300(d): attempts at unauthorised use are detected and stopped)."""
from __future__ import annotations

from flask import current_app, has_app_context

from mscbatch.auth.models import User
from mscbatch.database import utcnow

DEFAULT_THRESHOLD = 5


def lockout_threshold() -> int:
    """LOCKOUT_THRESHOLD of the running app (the same setting as at sign-in), else the default."""
    return int(current_app.config.get("LOCKOUT_THRESHOLD", DEFAULT_THRESHOLD)) if has_app_context() else DEFAULT_THRESHOLD


def count_wrong_password(user: User) -> bool:
    """Count one wrong password (inside the refusal's use case); True when the account is now locked."""
    user.failed_logins += 1
    if user.failed_logins >= lockout_threshold() and user.locked_out_at is None:
        user.locked_out_at = utcnow()
    return user.locked_out_at is not None


def masked_name(typed: str) -> str:
    """What the audit trail keeps of a user name no account has: its first two characters and its length, never
    the whole text (a password typed into the user-name field would otherwise be kept forever, in a trail that QA and
    the administrator read). 'mscbatch-demo' -> 'ms…(13 characters)'."""
    typed = typed or ""
    count = len(typed)
    return f"{typed[:2]}…({count} character{'' if count == 1 else 's'})"
