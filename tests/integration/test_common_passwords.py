"""A new password is compared with the passwords attackers try first (NIST SP 800-63B 5.1.1.2) and refused with the
reason, next to its field, on every page that sets one (the owner's change on My account, the administrator's new
user and password reset), on SQLite and PostgreSQL, with nothing written. A password set before the rule still opens
its account. The user page's account forms each say which reason they ask for."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import func, select, update

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import AuthSession, User
from mscbatch.auth.passwords import ONE_WORD, TOO_COMMON, TOO_GUESSABLE, hash_password
from tests.conftest import PASSWORD, login
from tests.integration.test_review3_ui_ward import _labels_name_their_own_fields

REPEATED = "The password must not be one character repeated."
# (new password, the rule that refuses it): for the nurse's account (user name "nurse")
REFUSED = [
    ("qwerty123456", TOO_COMMON),  # in the list as it is
    ("Password1234", TOO_COMMON),  # in the list, whatever its case
    ("P@ssw0rd1234", TOO_GUESSABLE),  # a common password with its letters swapped for look-alikes
    ("iloveyou!!!!", TOO_GUESSABLE),  # a common password with symbols added
    ("qwertyuiop!!", TOO_GUESSABLE),  # a keyboard row
    ("zzzzzzzzzzzzzz", REPEATED),
    ("Summer2026!!!", ONE_WORD),  # one word and a year zxcvbn does not read as a date
    ("Welcome2026!!", ONE_WORD),
    ("Hospital2026!", ONE_WORD),
    ("Mscbatch2026!", ONE_WORD),  # the application's own name
    ("the-nurse3-on-ward", "The password must not contain the user name."),  # "nurse", and the new "nurse3"
]
GOOD = "Kestrel-orbit-lantern-7"
WHY = "New nurse on ward 3, training record TR-31"


def _errors(response) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """The errors shown next to each field, by the field's id."""
    found: dict[str, list[str]] = {}
    for field_id, message in re.findall(r'<p class="error" id="([^"]*)-error">([^<]+)</p>',
                                        response.get_data(as_text=True)):
        found.setdefault(field_id, []).append(html.unescape(message))
    return found


def _written(app) -> tuple[Any, ...]:  # type: ignore[no-untyped-def]
    """What a refusal must leave as it was: the audit trail's length, every account and every session."""
    with app.extensions["mscbatch.db"].new_session() as session:
        return (session.scalar(select(func.count()).select_from(AuditEvent)),
                tuple(session.execute(select(User.id, User.username, User.password_hash, User.must_change_password,
                                             User.password_changed_at).order_by(User.id)).all()),
                tuple(session.execute(select(AuthSession.id, AuthSession.ended_at).order_by(AuthSession.id)).all()))


@pytest.mark.parametrize(("password", "rule"), REFUSED)
def test_my_account_refuses_a_common_new_password_and_says_why(app, users, client_as, password, rule):
    nurse = client_as("nurse")
    before = _written(app)
    refused = nurse.post("/account/password", data={"current_password": PASSWORD, "new_password": password})
    assert refused.status_code == 422
    assert _errors(refused) == {"new_password": [f"New password: {rule}"]}
    assert _written(app) == before
    assert nurse.get("/account").status_code == 200  # still signed in: nothing ended
    assert login(app.test_client(), "nurse").status_code == 302  # the old password still opens the account


@pytest.mark.parametrize(("password", "rule"), REFUSED)
def test_a_new_user_with_a_common_password_is_refused_and_not_made(app, users, client_as, password, rule):
    admin = client_as("admin")
    before = _written(app)
    refused = admin.post("/admin/users", data={"username": "nurse3", "full_name": "Nora Newcomer",
                                               "password": password, "roles": ["nurse"], "reason": WHY})
    assert refused.status_code == 422
    assert _errors(refused) == {"password": [f"Password: {rule}"]}
    assert _written(app) == before


def test_a_new_user_with_an_uncommon_password_is_made(app, users, client_as):
    made = client_as("admin").post("/admin/users", data={"username": "nurse3", "full_name": "Nora Newcomer",
                                                         "password": GOOD, "roles": ["nurse"], "reason": WHY})
    assert made.status_code == 302, _errors(made)


@pytest.mark.parametrize(("password", "rule"), REFUSED)
def test_a_reset_to_a_common_temporary_password_is_refused(app, users, client_as, password, rule):
    admin = client_as("admin")
    before = _written(app)
    refused = admin.post(f"/admin/users/{users['nurse'].id}/reset-password",
                         data={"password": password, "reason": "forgot it, identity checked in person"})
    assert refused.status_code == 422
    assert _errors(refused) == {"reset-password-password": [f"Temporary password: {rule}"]}
    assert _written(app) == before
    assert login(app.test_client(), "nurse").status_code == 302


def test_a_common_password_set_before_the_rule_still_opens_its_account_and_can_be_changed(app, users, client_as):
    with app.extensions["mscbatch.db"].engine.begin() as connection:
        connection.execute(update(User).where(User.username == "nurse")
                           .values(password_hash=hash_password("qwerty123456", "fast")))
    client = app.test_client()
    assert login(client, "nurse", "qwerty123456").status_code == 302
    changed = client.post("/account/password", data={"current_password": "qwerty123456", "new_password": GOOD})
    assert changed.status_code == 302, _errors(changed)
    assert login(app.test_client(), "nurse", GOOD).status_code == 302


def test_the_password_fields_say_the_rule_before_it_refuses(app, users, client_as):
    admin, nurse = client_as("admin"), client_as("nurse")
    pages = [nurse.get("/account"), admin.get("/admin/users"), admin.get(f"/admin/users/{users['nurse'].id}")]
    for page in pages:
        assert "not a common password or keyboard pattern" in page.get_data(as_text=True)


def _locked(app, username: str) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].engine.begin() as connection:
        connection.execute(update(User).where(User.username == username)
                           .values(failed_logins=5, locked_out_at=User.created_at))
        return int(connection.execute(select(User.id).where(User.username == username)).scalar_one())


def test_each_reason_on_a_user_page_has_its_own_words_and_its_own_field(app, users, client_as):
    user_id = _locked(app, "nurse2")  # locked and enabled: Roles, Unlock, Disable and Reset password side by side
    page = client_as("admin").get(f"/admin/users/{user_id}").get_data(as_text=True)
    labels = _labels_name_their_own_fields(page)  # each id once, each label's field in the label's own form
    assert labels["Reason for unlocking this account"] == "unlock-reason"
    assert labels["Reason for disabling this account"] == "disable-reason"
    assert labels["Reason for resetting the password"] == "reset-password-reason"
    assert labels["Reason for changing the roles"] == "reason"
    assert "Reason" not in labels  # no reason left unnamed
    shown = re.findall(r"<label[^>]*>([^<]*)</label>", page)
    assert len([t for t in shown if t.startswith("Reason")]) == len({t for t in shown if t.startswith("Reason")}) == 4


def test_a_refused_disable_keeps_its_own_label_and_says_the_rule_under_its_own_field(app, users, client_as):
    user_id = _locked(app, "nurse2")
    refused = client_as("admin").post(f"/admin/users/{user_id}/disable", data={"reason": ""})
    assert refused.status_code == 422
    labels = _labels_name_their_own_fields(refused.get_data(as_text=True))
    assert labels["Reason for disabling this account"] == "disable-reason"
    assert set(_errors(refused)) == {"disable-reason"}
