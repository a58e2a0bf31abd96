"""Password hashing with Argon2id (OWASP's first choice), via argon2-cffi."""
from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHERS = {
    "standard": PasswordHasher(),  # argon2-cffi's RFC 9106 low-memory profile
    # tests only: the same algorithm with minimal cost, so a suite of hundreds of logins stays fast
    "fast": PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
}
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str, profile: str = "standard") -> str:
    return _HASHERS[profile].hash(password)


@cache
def dummy_hash(profile: str = "standard") -> str:
    """A hash of a random secret no one knows, made once per profile with the same algorithm and parameters as the
    accounts' own: sign-in verifies an unknown user name's password against it, so that an unknown name costs the
    same Argon2 verification as a wrong password at a real account (its response time names no real account)."""
    return _HASHERS[profile].hash(secrets.token_urlsafe(32))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHERS["standard"].verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str, username: str = "") -> str | None:
    """Why a new password is refused, in plain words, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if username and username.lower() in password.lower():
        return "The password must not contain the user name."
    return None
