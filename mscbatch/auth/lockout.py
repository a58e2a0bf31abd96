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
