"""Session 36, administrator walkthrough (1): no two accounts may look alike on a signature, in the audit trail or
on the Users page. Before: "Quentin QА" (a Cyrillic А) was accepted beside "Quentin QA", a full name with a
zero-width space was accepted, and the user name "qа" (a Cyrillic а) too, though the rule said letters, digits,
'.', '-' and '_'. Through the web client, on SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re

from sqlalchemy import select

from mscbatch.auth.models import User
from tests.conftest import PASSWORD

WHY = "new staff member, training record TR-36"


def _create(client, username, full_name):  # type: ignore[no-untyped-def]
    return client.post("/admin/users", data={"username": username, "full_name": full_name, "password": PASSWORD,
                                             "roles": ["nurse"], "reason": WHY})


def _field_errors(response) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    found: dict[str, list[str]] = {}
    for field_id, message in re.findall(r'<p class="error" id="([^"]*)-error">([^<]+)</p>',
                                        response.get_data(as_text=True)):
        found.setdefault(field_id, []).append(html.unescape(message))
    return found


def _usernames(app) -> set[str]:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        return set(session.scalars(select(User.username)))


def test_a_user_name_with_a_letter_of_another_alphabet_is_refused_and_the_rule_says_so(app, client_as):
    admin = client_as("admin")
    for username in ("qа", "jos\u00e9", "ｑａ"):  # Cyrillic а; an accent; full-width letters
        refused = _create(admin, username, f"Person {len(username)} {username.encode().hex()[:6]}")
        assert refused.status_code == 422, username
        assert _field_errors(refused) == {"username": [
            "User name: use only the letters a to z (no accents, no letters of other alphabets), digits, '.', '-' "
            "or '_': a user name must not look like another one."]}, username
    assert not {"qа", "josé", "ｑａ"} & _usernames(app)
    assert _create(admin, "q.a-2_b", "Quentin Plain").status_code == 302


def test_a_printed_name_that_looks_like_another_is_refused(app, client_as):
    admin = client_as("admin")
    assert _create(admin, "qa-quentin", "Quentin QA").status_code == 302
    for full_name in ("Quentin QА", "Quentin Q\u200bA", "Quentin\u00a0QA", "QUENTIN  qa", "Ｑuentin QA",
                      "Quentin Q\u0391"):  # Cyrillic А; zero-width space; no-break space; case; full-width; Greek
        refused = _create(admin, "qa-copy", full_name)
        assert refused.status_code == 422, full_name
        [message] = _field_errors(refused)["full_name"]
        assert message.startswith("Full name: "), message
    assert "qa-copy" not in _usernames(app)


def test_each_refusal_of_a_printed_name_says_the_rule_in_plain_words(app, client_as):
    admin = client_as("admin")
    assert _create(admin, "qa-quentin", "Quentin QA").status_code == 302
    mixed = _create(admin, "qa-copy", "Quentin QА")
    assert mixed.status_code == 422
    assert _field_errors(mixed) == {"full_name": [
        "Full name: the word 'QА' mixes letters of different alphabets (Cyrillic and Latin), so it can look like "
        "another name; type each word in one alphabet."]}
    invisible = _create(admin, "qa-copy", "Quentin Q\u200bA")
    assert invisible.status_code == 422
    assert _field_errors(invisible) == {"full_name": [
        "Full name: remove the invisible character (U+200B ZERO WIDTH SPACE): a printed name must show every "
        "character it holds, or two names that look the same would be two accounts."]}
    same = _create(admin, "qa-copy", "Ｑuentin  qa")
    assert same.status_code == 422
    assert _field_errors(same) == {"full_name": [
        "Full name: 'Ｑuentin qa' is already the printed name of another account (qa-quentin); signatures could not "
        "tell them apart. Add a middle initial or another distinction."]}


def test_real_names_with_accents_and_names_in_other_alphabets_are_accepted(app, client_as):
    admin = client_as("admin")
    for username, full_name in (("jlm", "José Łukasz Müller"), ("ii", "Иван Иванов"), ("kp", "Κώστας Παπαδόπουλος"),
                                ("yh", "山田 はなこ"), ("mo", "Mary-Jane O’Neil"), ("kk", "Keʻala Kahale"),
                                ("ja", "Jose\u0301 Alvarez"), ("ap", "Ana Иванова")):  # an accent typed as a mark
        answer = _create(admin, username, full_name)
        assert answer.status_code == 302, (full_name, _field_errors(answer))
    assert {"jlm", "ii", "kp", "yh", "mo", "kk", "ja", "ap"} <= _usernames(app)


def test_a_printed_name_wholly_in_another_alphabet_that_prints_as_an_existing_one_is_refused(app, client_as):
    """Re-review: each word in one alphabet passed the mixed-word rule, so "ТОМ ТЕСН" (all Cyrillic) was created
    beside "TOM TECH", and "ТОМ Technician" beside "Tom Technician"."""
    admin = client_as("admin")
    assert _create(admin, "tom-latin", "TOM TECH").status_code == 302
    for username, full_name in (("tom-cyr", "ТОМ ТЕСН"), ("tom-greek", "ΤΟΜ tech"), ("tom-mixed", "ТОМ tech")):
        refused = _create(admin, username, full_name)
        assert refused.status_code == 422, full_name
        [message] = _field_errors(refused)["full_name"]
        assert "already the printed name of another account (tom-latin)" in message, message
    assert not {"tom-cyr", "tom-greek", "tom-mixed"} & _usernames(app)
    assert _create(admin, "ivan", "Иван Иванов").status_code == 302  # a real name in Cyrillic, like no other


def test_s46_a_printed_name_differing_only_by_punctuation_is_refused(app, client_as):
    """Session 45 review: "Noah Nurse." (a full stop) was a second "Noah Nurse" on signatures. A name that differs
    only in its punctuation is refused; a middle initial tells two people apart."""
    admin = client_as("admin")
    assert _create(admin, "noah", "Noah Nurse").status_code == 302
    for full_name in ("Noah Nurse.", "Noah-Nurse", "Noah, Nurse", "'Noah' Nurse", "Noah . Nurse"):
        refused = _create(admin, "noah-copy", full_name)
        assert refused.status_code == 422, full_name
        assert _field_errors(refused) == {"full_name": [
            f"Full name: '{full_name}' is already the printed name of another account (noah); signatures could not "
            "tell them apart. Add a middle initial or another distinction."]}, full_name
    assert "noah-copy" not in _usernames(app)
    assert _create(admin, "noah-b", "Noah B. Nurse").status_code == 302
