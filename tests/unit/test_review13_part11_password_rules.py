"""Review 13 (Part 11): judging a new password takes bounded work. A password of a few thousand look-alike
characters around one letter ('@0$3...a...5$1', sent as a new password from My account by any signed-in user)
made the one-word rule read every pair of margins around the letter: minutes of a worker's time per request.
A reading is as long as the text it reads, so no margin longer than the longest dictionary word is read."""
from __future__ import annotations

import random

import pytest

from mscbatch.auth import passwords


class TooMuchWork(Exception):
    pass


@pytest.fixture
def counted_readings(monkeypatch):  # type: ignore[no-untyped-def]
    calls = {"n": 0}
    original = passwords._readings

    def counting(core: str) -> list[str]:
        calls["n"] += 1
        if calls["n"] > 5000:
            raise TooMuchWork(f"{calls['n']} readings for one password")
        return original(core)

    monkeypatch.setattr(passwords, "_readings", counting)
    return calls


def test_a_long_look_alike_password_is_judged_with_bounded_work(counted_readings):
    rng = random.Random(13)
    margin = "".join(rng.choice("@0135$") for _ in range(2000))
    password = margin + "q" + "".join(rng.choice("@0135$") for _ in range(2000))
    passwords.password_problem(password)
    assert counted_readings["n"] <= (passwords._longest_word() + 1) ** 2


@pytest.mark.parametrize("password", ["Summer2026!!!", "Hosp1tal2026!", "!!Welcome1990", "5ummer2026!!",
                                      "$$$$$$$$ummer2026"])
def test_one_word_passwords_are_still_refused(password, counted_readings):
    assert passwords.password_problem(password) in (passwords.ONE_WORD, passwords.TOO_GUESSABLE)
    assert passwords.one_word(password) is not None


def test_a_passphrase_is_still_accepted(counted_readings):
    assert passwords.password_problem("correct horse battery staple") is None
