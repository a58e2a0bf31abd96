"""Review 6 (accounts): an account made on the Users page says why in the audit trail, as every role grant does;
sign-in answers tell neither real accounts from unknown names nor a locked account's right password from a wrong one."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.auth.services import BAD_CREDENTIALS, create_user
from mscbatch.errors import ValidationFailed
from tests.conftest import PASSWORD, login

WHY = "New QA officer, training record TR-12"
NEW = {"username": "newqa", "full_name": "Nora New-QA", "password": "a-long-enough-pass", "roles": ["qa"]}


def _rows(app, query):  # type: ignore[no-untyped-def]
    with app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        try:
            return session.execute(query).all()
        finally:
            session.close()


def _creation_events(app):  # type: ignore[no-untyped-def]
    return _rows(app, select(AuditEvent.entity_type, AuditEvent.action, AuditEvent.reason)
                 .where(AuditEvent.entity_type.in_(["user_account", "user_role"]), AuditEvent.actor_name == "admin",
                        AuditEvent.action == "insert"))


def _said(response) -> str:  # type: ignore[no-untyped-def]
    """The refusal words of the sign-in page."""
    page = response.get_data(as_text=True)
    return " ".join(re.sub(r"\s+", " ", m).strip() for m in re.findall(r'class="error"[^>]*>([^<]*)<', page))


# ---- D1: the account's creation and its roles carry the administrator's why --------------------------------------

def test_the_users_page_asks_why_with_an_example(client_as):
    page = client_as("admin").get("/admin/users").get_data(as_text=True)
    assert '<label for="reason">Reason</label>' in page
    assert "New QA officer, training record TR-12" in page


def test_every_event_of_an_account_made_on_the_users_page_carries_its_why(app, users, client_as):
    made = client_as("admin").post("/admin/users", data={**NEW, "reason": f"  {WHY} "})
    assert made.status_code == 302, made.get_data(as_text=True)
    events = _creation_events(app)
    assert {(e.entity_type, e.action) for e in events} == {("user_account", "insert"), ("user_role", "insert")}
    assert {e.reason for e in events} == {WHY}


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_an_account_without_a_why_is_refused_next_to_the_reason_field(app, users, client_as, reason):
    data = dict(NEW) if reason is None else {**NEW, "reason": reason}
    refused = client_as("admin").post("/admin/users", data=data)
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert 'id="reason-error"' in page and "Give a reason: it goes into the audit trail." in page
    assert _rows(app, select(User.id).where(User.username == "newqa")) == []
    assert _creation_events(app) == []


def test_the_service_refuses_a_person_without_a_why_but_not_the_system(app, users, db_session):
    admin = db_session.scalar(select(User).where(User.username == "admin"))
    for reason in (None, " "):
        with pytest.raises(ValidationFailed) as refused:
            create_user(db_session, admin, **NEW, hash_profile="fast", reason=reason)
        assert refused.value.status == 422 and set(refused.value.errors) == {"reason"}
        assert "Reason: say why the account is made" in refused.value.message
    # the why is refused together with the other fields' faults: one answer names every field
    with pytest.raises(ValidationFailed) as both:
        create_user(db_session, admin, **{**NEW, "password": "short"}, hash_profile="fast")
    assert set(both.value.errors) == {"password", "reason"}
    # the system's own accounts (demo, tests, benchmarks) need none; the command line passes its own
    made = create_user(db_session, None, **NEW, hash_profile="fast")
    assert made.role_names == {"qa"}


# ---- D2: only the account's right password hears "locked" or "disabled" -------------------------------------------

def test_wrong_passwords_get_the_same_answer_for_a_real_and_an_unknown_name(app, users):
    def answers(name: str) -> list[tuple[int, str]]:
        client = app.test_client()
        return [(r.status_code, _said(r)) for r in (login(client, name, f"wrong-guess-{i}") for i in range(7))]

    real, unknown = answers("qa"), answers("nobody-here")
    assert real == unknown == [(401, BAD_CREDENTIALS)] * 7  # the 5th locked "qa", the 6th and 7th hit a locked one
    (locked_at,) = _rows(app, select(User.locked_out_at).where(User.username == "qa"))[0]
    assert locked_at is not None
    # the right password at the locked account gets the same answer: else a guesser could go on at a locked
    # account, uncounted, until the answer changed (the answer names a lockout as one cause, for its owner)
    answer = login(app.test_client(), "qa", PASSWORD)
    assert (answer.status_code, _said(answer)) == (401, BAD_CREDENTIALS)
    assert "locked" in BAD_CREDENTIALS


def test_failures_are_audited_and_counted_as_before(app, users):
    client = app.test_client()
    for i in range(7):
        login(client, "qa", f"wrong-guess-{i}")
    login(client, "qa", PASSWORD)
    qa_id = str(users["qa"].id)
    trail = _rows(app, select(AuditEvent.action, AuditEvent.reason)
                  .where(AuditEvent.entity_type == "user_account", AuditEvent.entity_id == qa_id,
                         AuditEvent.action.in_(["login_failed", "login_refused"])).order_by(AuditEvent.seq))
    assert [tuple(e) for e in trail] == [("login_failed", "wrong password")] * 5 + [
        ("login_refused", "account locked")] * 3
    (failed,) = _rows(app, select(User.failed_logins).where(User.username == "qa"))[0]
    assert failed == 5  # a locked account counts no further


def test_a_disabled_account_answers_its_right_password_as_any_wrong_one(app, users, client_as):
    nurse_id = users["nurse"].id
    assert client_as("admin").post(f"/admin/users/{nurse_id}/disable", data={"reason": "left"}).status_code == 302
    wrong, right = login(app.test_client(), "nurse", "wrong-guess-0"), login(app.test_client(), "nurse")
    assert (wrong.status_code, _said(wrong)) == (401, BAD_CREDENTIALS)
    assert (right.status_code, _said(right)) == (401, BAD_CREDENTIALS)
    refusals = _rows(app, select(AuditEvent.reason).where(AuditEvent.action == "login_refused",
                                                          AuditEvent.entity_id == str(nurse_id)))
    assert [r.reason for r in refusals] == ["account disabled"] * 2
