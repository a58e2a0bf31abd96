"""Password hashing with Argon2id (OWASP's first choice), via argon2-cffi, and the rules a new password must meet."""
from __future__ import annotations

import re
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
# What zxcvbn misses: it reads a year only up to about 2017 as a date, so 'Summer2026!!!' looks random to it. A
# password that is one word (a common password, word or name, or a word of this site) with only digits, symbols and
# spaces around it ('Hospital2026!', '!!Welcome1990', '$ummer 2026') is among the first things guessing tools try.
ONE_WORD = ("This password is one common word with digits or symbols added: guessing tools try these first, whatever "
            "the digits (a year, a date, a number). Choose another: a few unrelated words are easy to remember and "
            "hard to guess.")
# look-alikes read as the letters they stand for ('P@ssw0rd', 'Hosp1tal', '5ummer'); '1' is an i or an l
LOOK_ALIKES = {"@": "a", "0": "o", "1": "il", "3": "e", "$": "s", "5": "s"}
# more readings than this (nine or more '1's in the word) is no dictionary word: not worth reading them all
MAX_READINGS = 256
# words of the site people reach for: the product's name and the facility's (config/site.toml)
SITE_WORDS = frozenset({"mscbatch", "hospital", "cell", "cells", "therapy", "clinic", "ward", "unit"})


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
    if one_word(password) is not None:
        return ONE_WORD
    return None


def one_word(password: str) -> str | None:
    """The one dictionary or site word the password is, with only digits, symbols and spaces around it (a year
    from 1900 to 2099 among them, as any other digits), or None. Case is ignored and look-alikes are read as
    letters; a passphrase ('correct horse battery') or a word joined to another ('mscbatch-demo') is not one word."""
    text = password.lower()
    letters = [i for i, char in enumerate(text) if char.isalpha()]
    if not letters:
        return None
    start, end = letters[0], letters[-1] + 1
    # look-alikes just outside the letters may be the word's first or last letters ('5ummer', 'hous3'), or padding
    before = len(text[:start]) - len(text[:start].rstrip("".join(LOOK_ALIKES)))
    after = len(text[end:]) - len(text[end:].lstrip("".join(LOOK_ALIKES)))
    words = _dictionary()
    # a reading is as long as the text it reads, so none longer than the longest word can be one: without this
    # bound a password of a few thousand look-alikes around one letter ('@0$3...a...5$1') took minutes of a
    # worker's time (every left and right margin read), from any signed-in user's password change
    longest = _longest_word()
    for left in range(min(before, longest - (end - start)) + 1):
        for right in range(min(after, longest - (end - start) - left) + 1):
            for reading in _readings(text[start - left:end + right]):
                if reading in words:
                    return reading
    return None


def _readings(core: str) -> list[str]:
    """Every way to read the core as letters only (its look-alikes as letters); none if it holds anything else."""
    readings = [""]
    for char in core:
        options = char if char.isalpha() else LOOK_ALIKES.get(char)
        if options is None:
            return []
        readings = [reading + option for reading in readings for option in options]
        if len(readings) > MAX_READINGS:
            return []
    return readings


@cache
def _longest_word() -> int:
    return max(map(len, _dictionary()))


@cache
def _dictionary() -> frozenset[str]:
    """zxcvbn's ranked dictionaries (common passwords, English Wikipedia words, first names, surnames, film and TV
    words), the site words and the words of the facility's name."""
    from mscbatch.site import site_config  # read when first needed: a plain file, no application context

    words = set(SITE_WORDS)
    for ranked in RANKED_DICTIONARIES.values():
        words.update(ranked)
    words.update(word for word in re.findall(r"[a-z]+", site_config().facility_name.lower()) if len(word) >= 3)
    return frozenset(words)
