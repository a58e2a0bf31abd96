"""Review 7 (21 CFR Part 11, accounts): sign-in takes as long for an unknown user name as for a real account's wrong
password, so its response time names no real account (user enumeration); a role granted or withdrawn, with who and
why, is on the account's own audit trail (the one its page links to), not only on the role rows' events."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth import passwords, services
from mscbatch.auth.services import BAD_CREDENTIALS
from tests.conftest import login


def _said(response: Any) -> str:
    page = response.get_data(as_text=True)
    return " ".join(re.sub(r"\s+", " ", m).strip() for m in re.findall(r'class="error"[^>]*>([^<]*)<', page))


def _spy_verifier(monkeypatch: Any) -> list[str]:
    """Every hash the sign-in verifies a password against."""
    verified: list[str] = []
    real = services.verify_password

    def spy(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(services, "verify_password", spy)
    return verified


def test_an_unknown_name_costs_the_same_hash_verification_as_a_wrong_password(app, users, monkeypatch):
    verified = _spy_verifier(monkeypatch)
    unknown = login(app.test_client(), "nobody-here", "wrong-guess-0")
    assert (unknown.status_code, _said(unknown)) == (401, BAD_CREDENTIALS)
    assert len(verified) == 1, "an unknown user name must be verified against a hash, as a real one is"
    # a hash of the same algorithm and parameters as the accounts' own (the app's PASSWORD_HASH_PROFILE)
    assert verified[0].startswith("$argon2id$")
    assert verified[0].split("$")[3] == users["qa"].password_hash.split("$")[3]  # m=..,t=..,p=..
    assert verified[0] == passwords.dummy_hash(app.config["PASSWORD_HASH_PROFILE"])  # made once, not per sign-in

    wrong = login(app.test_client(), "qa", "wrong-guess-0")
    assert (wrong.status_code, _said(wrong)) == (401, BAD_CREDENTIALS)
    assert len(verified) == 2 and verified[1] == users["qa"].password_hash


def test_an_unknown_name_is_still_audited_and_counted_as_before(app, users, monkeypatch):
    verified = _spy_verifier(monkeypatch)
    for _ in range(2):
        login(app.test_client(), "nobody-here", "wrong-guess-0")
    assert len(verified) == 2
    session = app.extensions["mscbatch.db"].new_session()
    try:
        events = session.execute(select(AuditEvent.action, AuditEvent.entity_id, AuditEvent.new_value,
                                        AuditEvent.reason).where(AuditEvent.action == "login_failed")).all()
    finally:
        session.close()
    assert [tuple(e) for e in events] == [("login_failed", None, "no…(11 characters)", "unknown user name")] * 2


# ---- a role granted or withdrawn is on the account's own audit trail ---------------------------------------------

def _account_trail(app: Any, user_id: int) -> list[tuple[Any, ...]]:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return [tuple(e) for e in session.execute(
            select(AuditEvent.actor_name, AuditEvent.field, AuditEvent.old_value, AuditEvent.new_value,
                   AuditEvent.reason).where(AuditEvent.entity_type == "user_account",
                                            AuditEvent.entity_id == str(user_id),
                                            AuditEvent.action == services.ROLES_CHANGED).order_by(AuditEvent.seq))]
    finally:
        session.close()


def test_a_role_change_shows_on_the_account_s_own_audit_trail(app, users, client_as):
    nurse_id = users["nurse"].id
    admin = client_as("admin")
    granted = admin.post(f"/admin/users/{nurse_id}/roles",
                         data={"roles": ["nurse", "clinician"], "reason": "Trained to prescribe, TR-9"})
    assert granted.status_code == 302
    # the account page's link to its audit trail shows the grant, who made it and why
    page = admin.get(f"/admin/users/{nurse_id}").get_data(as_text=True)
    link = re.search(r'href="(/audit\?[^"]*)">Audit trail of this account', page)
    assert link, "the account page links to its audit trail"
    trail_page = client_as("qa").get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "roles_changed" in trail_page and "clinician, nurse" in trail_page
    assert "Trained to prescribe, TR-9" in trail_page

    withdrawn = admin.post(f"/admin/users/{nurse_id}/roles", data={"roles": ["nurse"], "reason": "Prescribing over"})
    assert withdrawn.status_code == 302
    same = admin.post(f"/admin/users/{nurse_id}/roles", data={"roles": ["nurse"], "reason": "nothing changes"})
    assert same.status_code == 302
    assert _account_trail(app, nurse_id) == [
        ("admin", "roles", "nurse", "clinician, nurse", "Trained to prescribe, TR-9"),
        ("admin", "roles", "clinician, nurse", "nurse", "Prescribing over")]  # an unchanged set says nothing


def test_the_roles_an_account_is_created_with_are_on_its_own_audit_trail(app, users, client_as):
    made = client_as("admin").post("/admin/users", data={
        "username": "newqa", "full_name": "Nora New-QA", "password": "a-long-enough-pass", "roles": ["qa"],
        "reason": "New QA officer, training record TR-12"})
    assert made.status_code == 302
    new_id = int(made.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    assert _account_trail(app, new_id) == [("admin", "roles", None, "qa", "New QA officer, training record TR-12")]
