"""The rules a new password must meet (mscbatch/auth/passwords.py): long enough, not one character repeated, without
the user name, not among the passwords attackers try first nor one of them with small changes (NIST SP 800-63B
5.1.1.2). The passwords the demo prints and the tests sign in with meet them."""
from __future__ import annotations

import pytest

from mscbatch.auth import passwords
from mscbatch.auth.passwords import COMMON_PASSWORDS, ONE_WORD, TOO_COMMON, TOO_GUESSABLE, password_problem
from mscbatch.demo import DEMO_USERS
from mscbatch.site import site_config
from tests.conftest import PASSWORD

REPEATED = "The password must not be one character repeated."
WITH_NAME = "The password must not contain the user name."


def test_the_common_list_is_the_long_one_in_lower_case():
    assert len(COMMON_PASSWORDS) >= 10_000
    assert "qwerty123456" in COMMON_PASSWORDS and "password" in COMMON_PASSWORDS
    assert all(word == word.lower() for word in COMMON_PASSWORDS)


@pytest.mark.parametrize(("password", "rule"), [
    ("short-one", "Use at least 12 characters."),
    ("1234567", "Use at least 12 characters."),  # common too, but the length is said first
    ("aaaaaaaaaaaa", REPEATED),
    ("############", REPEATED),
    ("x" * 500, REPEATED),
    ("alice-on-ward-3", WITH_NAME),
    ("ALICE-on-ward-3", WITH_NAME),
    ("qwerty123456", TOO_COMMON),
    ("QWERTY123456", TOO_COMMON),
    ("1qaz2wsx3edc", TOO_COMMON),
    ("password1234", TOO_COMMON),
    ("P@ssw0rd1234", TOO_GUESSABLE),
    ("Welcome12345", TOO_GUESSABLE),
    ("letmein12345", TOO_GUESSABLE),
    ("abcdefghijkl", TOO_GUESSABLE),
    ("passwordpassword", TOO_GUESSABLE),
    ("password" * 20, TOO_GUESSABLE),
    # longer than the estimate reads (its time grows faster than the length): judged on its first 72 characters
    ("w" * 80 + "-and-then-some-words", TOO_GUESSABLE),
])
def test_a_weak_new_password_is_refused_with_its_rule(password, rule):
    assert password_problem(password, "alice") == rule


# one word with digits, symbols or spaces around it; zxcvbn reads a year after about 2017 as random digits
@pytest.mark.parametrize(("password", "word"), [
    ("Summer2026!!!", "summer"),  # a common password
    ("Welcome2026!!", "welcome"),
    ("Hospital2026!", "hospital"),  # a film and TV word
    ("Mscbatch2026!", "mscbatch"),  # the application's name
    ("MSCBATCH 2099", "mscbatch"),
    ("2026!Therapy!", "therapy"),  # digits and symbols before it
    ("!!Welcome1900", "welcome"),
    ("5ummer 2026!!", "summer"),  # look-alikes: '5' and '$' for s, '1' for i or l, '3' for e, '0' for o, '@' for a
    ("Ho$p1tal2026!", "hospital"),
    ("P@ssw0rd2026!", "password"),
    ("Hous3 2026!!!", "house"),  # English Wikipedia
    ("Jennifer2026#", "jennifer"),  # a first name
    ("Lantern83917!", "lantern"),  # any digits, not only a year
])
def test_one_word_with_digits_or_symbols_around_it_is_refused(password, word):
    assert passwords.one_word(password) == word
    assert password_problem(password, "alice") == ONE_WORD


def test_the_words_are_every_ranked_dictionary_the_site_words_and_the_facility_name():
    words = passwords._dictionary()
    assert {"summer", "hospital", "jennifer", "mscbatch", "therapy"} <= words
    assert {w for w in site_config().facility_name.lower().replace("(", " ").replace(")", " ").split()
            if len(w) >= 3} <= words


def test_one_word_says_why_in_plain_words():
    assert ONE_WORD.startswith("This password is one common word with digits or symbols added: ")
    assert "Choose another" in ONE_WORD


@pytest.mark.parametrize("password", [
    "correct-horse-battery", "mscbatch-demo",  # two words joined: not one word
    "bench-password-not-for-production", "Summer2026-kite-lantern", "Sum2026mer-lake",
    "Kestrel-orbit-lantern-7", "Summer2024!!-kite", "correct horse battery staple", "mscbatch-demo",
    "Kestrel orbit lantern, then a walk by the river to Wardle Mill at seven, with tea",  # 81 characters
])
def test_an_uncommon_password_is_accepted(password):
    assert password_problem(password, "alice") is None


def test_the_demo_and_test_passwords_meet_the_rules():
    for username, _full_name, _roles, password in DEMO_USERS:
        assert password_problem(password, username) is None, username
    for username in ("admin", "qa", "qa2", "technician", "clinician", "nurse", "nurse2"):
        assert password_problem(PASSWORD, username) is None, username


def test_the_rule_messages_say_what_to_do_in_plain_words():
    assert TOO_COMMON == ("This password is too common: it is among the passwords most often tried by attackers. "
                          "Choose another.")
    assert TOO_GUESSABLE.startswith("This password is too easy to guess") and "Choose another" in TOO_GUESSABLE
