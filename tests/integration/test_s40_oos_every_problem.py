"""The OOS investigation form says every problem at once. A QA person who left three fields wrong was told one,
fixed it, signed again and was told the next. Now the investigation, the assignable cause, the retest and a blank
password are judged together: one refusal (422) naming each field and its rule, the form shown again with what was
typed, and nothing written: the investigation stays open and unsigned, no audit event, and the password is not
checked (a wrong one is not counted) while another field is wrong."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.errors import ValidationFailed
from mscbatch.release import oos, results
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OOS_INVALIDATED, OOS_OPEN, OosInvestigation, ReleaseResult
from mscbatch.signatures.models import Signature
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, signed_in_closing, user
from tests.integration.test_s37_release_seen import seen

INVESTIGATION = ("Phase I: the LAL plate's positive product control recovered 230 %; the analyst's worksheet shows "
                 "a 1:10 dilution instead of 1:40. Retest of the retained sample at 1:40: 0.12 EU/mL.")


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _failing_and_retest(app: Any, lot_id: int, failing: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """A full panel with a failing endotoxin (0.8 EU/mL: an OOS opens; `failing`: more failing tests), and a
    passing endotoxin retest: {test id: (oos id, failing result id)} and the retest's id under "retest"."""
    with app.extensions["mscbatch.db"].new_session() as session:
        tech = user(session, "technician")
        enter_panel(session, tech, lot_id, {"endotoxin": ("0.8", "EU/mL"), **(failing or {})})
        retest = results.enter_result(session, tech, lot_id, results.ResultEntry(
            test_id="endotoxin", value="0.12", unit="EU/mL", analyst="Tom QC", tested_on=site_today()))
        found: dict[str, Any] = {o.test_id: (o.id, o.result_id) for o in session.scalars(
            select(OosInvestigation).where(OosInvestigation.lot_id == lot_id))}
        found["retest"] = retest.id
        return found


def _written(app: Any, oos_id: int) -> tuple:
    """What a refusal must leave as it was: the OOS, its signatures, the audit trail, QA's failed password count."""
    with app.extensions["mscbatch.db"].new_session() as session:
        found = session.get(OosInvestigation, oos_id)
        failing = session.get(ReleaseResult, found.result_id)
        return (found.status, found.investigation, found.assignable_cause, found.retest_result_id, found.locked_at,
                failing.invalidated_at,
                session.scalar(select(func.count()).select_from(Signature)),
                session.scalar(select(func.max(AuditEvent.seq))),
                session.scalar(select(User.failed_logins).where(User.username == "qa")))


def _beside(page: str, field_id: str) -> list[str]:
    """The messages said beside one field (p.error whose id starts with the field's)."""
    return [html.unescape(m) for m in re.findall(rf'<p class="error" id="{field_id}-error[^"]*">([^<]*)</p>', page)]


def _summary(page: str) -> str:
    """The page's error summary (templates/base.html) as "#field-id|message" lines."""
    found = re.search(r'<div class="error-summary" id="error-summary".*?</div>', page, re.S)
    assert found, "no error summary"
    links = re.findall(r'<li><a href="(#[^"]*)"[^>]*>(.*?)</a>(.*?)</li>', found.group(0), re.S)
    return "\n".join(f"{href}|{html.unescape((text + rest).strip())}" for href, text, rest in links)


def test_the_page_says_every_problem_of_an_invalidation_at_once(app, db_session, lot_id):
    made = _failing_and_retest(app, lot_id)
    oos_id, _failing = made["endotoxin"]
    qa = signed_in_closing(app, db_session, "qa")
    before = _written(app, oos_id)
    assert before[0] == OOS_OPEN
    refused = qa.post(f"/release/oos/{oos_id}", data={
        "action": "invalidate", "oos-investigation": "Retest ok", "oos-assignable_cause": "",
        "oos-retest_result_id": "0", "oos-password": "", **seen(qa, lot_id)})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422, page[:2000]
    investigation = _beside(page, "oos-investigation")
    assert len(investigation) == 1 and investigation[0].startswith("Investigation and conclusion: ")
    assert "at least 10 characters; this has 9" in investigation[0]
    [cause] = _beside(page, f"cause-{oos_id}")
    assert cause.startswith("Assignable cause: choose the laboratory cause the investigation found.")
    [retest] = _beside(page, f"retest-{oos_id}")
    assert retest.startswith("Retest result: none chosen. Choose a valid retest of the same test")
    assert _beside(page, "oos-password") == ["Type your password to sign. Nothing was signed."]
    # said together at the top of the page too, each linked to its field of this investigation's form
    summary = _summary(page).splitlines()
    said = (("oos-investigation", investigation[0]), ("oos-assignable_cause", cause), ("oos-retest_result_id", retest),
            ("oos-password", "Your password (electronic signature): Type your password to sign."))
    assert len(summary) == 4, summary
    for line, (target, message) in zip(summary, said, strict=True):  # in the form's order
        assert line.startswith(f"#{target}|{message}"), summary
    for target, _message in said:
        assert re.search(rf'<(select|textarea|input)[^>]*id="{target}"', page)  # the link's field is there
    assert re.search(r">\s*Retest ok</textarea>", page)  # what was typed is shown again
    assert _written(app, oos_id) == before  # nothing written: open, unsigned, no audit event


def test_a_wrong_password_is_not_checked_while_another_field_is_wrong(app, db_session, lot_id):
    """Several problems and a wrong password: every field problem is said and the password is not verified, so no
    "signature refused" is audited and nothing counts towards the account's lockout; what was chosen stays chosen."""
    made = _failing_and_retest(app, lot_id)
    oos_id, failing_id = made["endotoxin"]
    qa = signed_in_closing(app, db_session, "qa")
    before = _written(app, oos_id)
    refused = qa.post(f"/release/oos/{oos_id}", data={
        "action": "invalidate", "oos-investigation": "Retest passed at 1:40.", "oos-assignable_cause": "other",
        "oos-retest_result_id": str(failing_id), "oos-password": "not-the-password", **seen(qa, lot_id)})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422, page[:2000]
    [investigation] = _beside(page, "oos-investigation")
    assert "Other laboratory cause" in investigation and "at least 50 characters; this has 22" in investigation
    [retest] = _beside(page, f"retest-{oos_id}")
    assert retest.startswith(f"Retest result: result {failing_id} is not a retest of this OOS.")
    assert _beside(page, "oos-password") == [] and "wrong password" not in page
    assert f"#oos-retest_result_id|{retest}" in _summary(page)
    assert '<option value="other" selected>' in page  # the cause chosen stays chosen
    assert _written(app, oos_id) == before  # no signature_refused event, failed_logins still 0
    signed = qa.post(f"/release/oos/{oos_id}", data={
        "action": "invalidate", "oos-investigation": INVESTIGATION, "oos-assignable_cause": "other",
        "oos-retest_result_id": str(made["retest"]), "oos-password": PASSWORD, **seen(qa, lot_id)})
    assert signed.status_code == 302, signed.get_data(as_text=True)[:2000]
    assert _written(app, oos_id)[0] == OOS_INVALIDATED


def test_a_confirmation_says_both_its_problems(app, db_session, lot_id):
    oos_id, _failing = _failing_and_retest(app, lot_id)["endotoxin"]
    qa = signed_in_closing(app, db_session, "qa")
    before = _written(app, oos_id)
    refused = qa.post(f"/release/oos/{oos_id}", data={
        "action": "confirm", "oos-investigation": "  ", "oos-password": "", **seen(qa, lot_id)})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422, page[:2000]
    [investigation] = _beside(page, "oos-investigation")
    assert investigation.startswith("Investigation and conclusion: describe the investigation and its conclusion")
    assert _beside(page, "oos-password") == ["Type your password to sign. Nothing was signed."]
    assert _written(app, oos_id) == before


def test_another_open_investigation_shows_a_blank_form(app, db_session, lot_id):
    """Two open investigations: the refused form, its text and its problems are shown in its own investigation only,
    not copied into the other's form."""
    made = _failing_and_retest(app, lot_id, {"viability": ("61", "%")})
    endotoxin, viability = made["endotoxin"][0], made["viability"][0]
    qa = signed_in_closing(app, db_session, "qa")
    refused = qa.post(f"/release/oos/{endotoxin}", data={
        "action": "invalidate", "oos-investigation": "Typed once", "oos-assignable_cause": "",
        "oos-retest_result_id": "0", "oos-password": "", **seen(qa, lot_id)})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422, page[:2000]
    assert len(re.findall(r">\s*Typed once</textarea>", page)) == 1
    assert page.count("Type your password to sign.") == 2  # beside the field and in the summary, once each
    assert page.count('id="oos-investigation"') == 1  # the other form's fields have ids of their own
    own = page[page.index(f'action="/release/oos/{endotoxin}"'):]
    assert own.index("Typed once") < own.index("</form>")
    other = page[page.index(f'action="/release/oos/{viability}"'):]
    other = other[:other.index("</form>")]
    assert 'class="error"' not in other and "Typed once" not in other


def test_the_service_refuses_every_problem_together(app, lot_id):
    made = _failing_and_retest(app, lot_id)
    oos_id, failing_id = made["endotoxin"]
    before = _written(app, oos_id)
    with app.extensions["mscbatch.db"].new_session() as session:
        with pytest.raises(ValidationFailed) as refused:
            oos.invalidate_oos(session, user(session, "qa"), oos_id, failing_id, "x" * 2001, "",
                               assignable_cause="lab error")
    error = refused.value
    assert error.status == 422
    assert set(error.errors) == {"investigation", "assignable_cause", "retest_result_id", "password"}
    assert error.errors["investigation"] == ["Investigation and conclusion: at most 2000 characters (2001 given); "
                                             "shorten it. Nothing was signed."]
    assert error.errors["assignable_cause"][0].startswith("Assignable cause: 'lab error' is not one of the causes")
    assert error.message.startswith("4 things to put right; nothing was signed. Investigation and conclusion:")
    assert _written(app, oos_id) == before
