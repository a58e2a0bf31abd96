"""Password hashing with Argon2id (OWASP's first choice), via argon2-cffi, and the rules a new password must meet."""
from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn
from zxcvbn.matching import RANKED_DICTIONARIES

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


# NIST SP 800-63B 5.1.1.2: a new password is compared with a list of commonly used, expected or compromised values.
# The list is zxcvbn's (MIT; the 30,000 passwords most often found in Mark Burnett's 10 million leaked passwords),
# lower case, so 'Qwerty123456' is as common as 'qwerty123456'.
COMMON_PASSWORDS = RANKED_DICTIONARIES["passwords"]
TOO_COMMON = ("This password is too common: it is among the passwords most often tried by attackers. "
              "Choose another.")
# Beyond the exact list, what guessing tools try first: a common password, word or name with small changes
# ('Password1234', 'P@ssw0rd1234', 'iloveyou!!!!'), keyboard rows and runs ('qwertyuiop!!', 'abcdefghijkl'). zxcvbn
# estimates how many guesses find it; under a million is its scores 0 and 1 ('too guessable', 'very guessable').
MIN_GUESSES_LOG10 = 6
TOO_GUESSABLE = ("This password is too easy to guess: it is a common password, word, name or keyboard pattern with "
                 "only small changes (such as digits or symbols added). Choose another: a few unrelated words are "
                 "easy to remember and hard to guess.")
# zxcvbn's own bound (its estimate grows with the length); a longer password is judged on its first 72 characters
ESTIMATE_LENGTH = 72


def password_problem(password: str, username: str = "") -> str | None:
    """Why a new password is refused, in plain words, or None. Only a new password is judged (a change, a new
    account, an administrator's reset): a password chosen before these rules still opens its account."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(set(password)) == 1:
        return "The password must not be one character repeated."
    if username and username.lower() in password.lower():
        return "The password must not contain the user name."
    if password.lower() in COMMON_PASSWORDS:
        return TOO_COMMON
    # no user_inputs: zxcvbn keeps them in a module-wide dictionary that another thread's call would overwrite; the
    # user name is the rule above
    if zxcvbn(password[:ESTIMATE_LENGTH])["guesses_log10"] < MIN_GUESSES_LOG10:
        return TOO_GUESSABLE
    return None
