"""Session 36, administrator walkthrough (5, 6, 7): what the administrator's pages say. Before: "tech2: roles
done.", "unlock done.", "disable done." (what changed was not said), "enable done." for an account already enabled
(nothing had changed); the administrator's own page offered Disable and Roles forms that were then refused (409);
the summary of refusals said a field's label twice ("Initial password: Password: Use at least 12 characters.",
"Full name (printed on signatures): Full name: ...", "Your password: Password: wrong password..."). Through the
web client, on SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re

from sqlalchemy import select, update

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.database import utcnow
from tests.conftest import PASSWORD, add_user

WHY = "walkthrough check"


def _flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<div class="flash flash-\w+" role="\w+">([^<]*)</div>', page)]


def _summary(page: str) -> list[str]:
    found = re.search(r'<div class="error-summary".*?<ul>(.*?)</ul>', page, re.S)
    assert found is not None, "no summary of refusals"
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", item)).split())
            for item in re.findall(r"<li>(.*?)</li>", found.group(1), re.S)]


def _audit_count(app) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        return len(session.scalars(select(AuditEvent.seq)).all())


def test_each_account_action_says_what_changed(app, users, client_as):
    tech2 = add_user(app, "tech2", ["technician"])
    admin = client_as("admin")
    admin.get("/")  # the sign-in's own message shown
    base = f"/admin/users/{tech2.id}"

    def act(action: str, **data: object) -> list[str]:
        return _flashes(admin.post(f"{base}/{action}", data={"reason": WHY, **data},
                                   follow_redirects=True).get_data(as_text=True))

    assert act("roles", roles=["nurse", "clinician"]) == ["tech2's roles are now: Clinician and Ward nurse."]
    assert act("roles", roles=["clinician", "nurse"]) == [
        "tech2's roles were already: Clinician and Ward nurse. Nothing changed."]
    assert act("disable") == ["tech2 is disabled: they cannot sign in. Their open sessions were ended and their "
                              "API tokens revoked."]
    before = _audit_count(app)
    assert act("disable") == ["tech2 was already disabled: nothing changed."]
    assert act("enable") == ["tech2 is enabled: they can sign in again."]
    after = _audit_count(app)
    assert after > before
    assert act("enable") == ["tech2 was already enabled: nothing changed."]
    assert _audit_count(app) == after  # nothing changed, nothing audited
    with app.extensions["mscbatch.db"].new_session() as session:
        session.execute(update(User).where(User.id == tech2.id).values(locked_out_at=utcnow(), failed_logins=5))
        session.commit()
    assert act("unlock") == ["tech2 is unlocked: they can sign in again."]


def test_the_administrators_own_page_offers_no_form_it_would_refuse(app, users, client_as):
    admin = client_as("admin")
    page = admin.get(f"/admin/users/{users['admin'].id}").get_data(as_text=True)
    assert "/roles\"" not in page and 'id="disable-form"' not in page
    assert "Your own roles: another administrator must change them (no one grants themselves a role)." in page
    assert "Your own account: another administrator must disable it (no one shuts themselves out)." in page
    other = admin.get(f"/admin/users/{users['nurse'].id}").get_data(as_text=True)  # another's page: both offered
    assert f'action="/admin/users/{users["nurse"].id}/roles"' in other and 'id="disable-form"' in other
    # sent anyway (a page saved before): still refused, and said at the top of the page
    refused = admin.post(f"/admin/users/{users['admin'].id}/disable", data={"reason": WHY})
    assert refused.status_code == 409
    assert _summary(refused.get_data(as_text=True)) == ["You cannot disable your own account."]


def test_each_refusal_says_its_field_once(app, users, client_as):
    admin = client_as("admin")
    refused = admin.post("/admin/users", data={"username": "nurse9", "full_name": "Nurse", "password": "short",
                                               "roles": ["nurse"], "reason": WHY})
    assert refused.status_code == 422
    summary = _summary(refused.get_data(as_text=True))
    assert summary == [
        "Full name: 'Nurse' is already the printed name of another account (nurse); signatures could not tell them "
        "apart. Add a middle initial or another distinction.",
        "Password: Use at least 12 characters."], summary

    nurse = client_as("nurse")
    wrong = nurse.post("/account/tokens", data={"name": "ward 3 scanner", "password": "not-" + PASSWORD})
    assert wrong.status_code == 422
    assert _summary(wrong.get_data(as_text=True)) == ["Password: wrong password. No token was created."]


def test_the_user_page_counts_a_wrong_password_at_a_signature_as_what_it_is(app, users, client_as):
    """A wrong password typed to sign counts towards the lockout as at sign-in: the user page called the count
    "failed sign-ins in a row" although no sign-in had failed."""
    from mscbatch.audit.context import use_case
    from mscbatch.auth.lockout import count_wrong_password

    with app.extensions["mscbatch.db"].new_session() as session:
        qa = session.scalar(select(User).where(User.username == "qa"))
        with use_case(session, qa, "wrong signature password"):
            count_wrong_password(qa, session)  # what signatures.services.sign does with a wrong password
        session.commit()
        qa_id = qa.id
    page = html.unescape(client_as("admin").get(f"/admin/users/{qa_id}").get_data(as_text=True))
    assert "wrong passwords in a row (at sign-in, a signature or a second-person check): 1" in page
    assert "failed sign-ins in a row" not in page
