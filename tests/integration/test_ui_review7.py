"""UI review 7: a blank signature password is not a wrong one, a failed sign-in is headed "Not signed in", the
403 page names roles in words. Through the web pages, on SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.signatures.models import Signature
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen

WHY = "Mycoplasma positive: lot unfit"


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _state(app, username):  # type: ignore[no-untyped-def]
    """(failed password count, refusal events, signatures) as the database holds them."""
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return (user(session, username).failed_logins,
                session.scalar(select(func.count()).select_from(AuditEvent).where(
                    AuditEvent.action.in_(("signature_refused", "login_failed")))),
                session.scalar(select(func.count()).select_from(Signature)))
    finally:
        session.close()


def test_a_blank_signature_password_is_refused_naming_the_field_and_counts_nothing(app, client_as, lot_id):
    qa = client_as("qa")
    before = _state(app, "qa")
    response = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id),
        "action": "reject", "release-password": "", "release-justification": "Mycoplasma positive: lot unfit"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422, page[:2000]
    assert "Type your password to sign. Nothing was signed." in page
    assert "wrong password" not in page
    assert 'id="release-password-error"' in page  # next to the field, not only at the top
    assert "Mycoplasma positive: lot unfit" in page  # what else was typed is kept
    assert _state(app, "qa") == before  # no strike, no refusal in the trail, nothing signed
    # five blanks in a row do not lock the account: the sixth try, with the password, signs
    for _ in range(5):
        assert qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id),
            "action": "reject", "release-password": "", "release-justification": WHY}).status_code == 422
    assert _state(app, "qa") == before
    wrong = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "reject", "release-password": "nope",
                                                             "release-justification": WHY})
    assert wrong.status_code == 401 and "wrong password" in wrong.get_data(as_text=True)
    assert _state(app, "qa")[0] == before[0] + 1  # a wrong password still counts


def test_a_failed_sign_in_is_headed_not_signed_in(app, users):
    client = app.test_client()
    page = client.post("/login", data={"username": "qa", "password": "wrong"}).get_data(as_text=True)
    heading = re.search(r'<h2 id="error-summary-title">(.*?)</h2>', page)
    assert heading and heading.group(1) == "Not signed in:", page[:3000]
    assert "Not saved" not in page


def test_other_refused_forms_keep_their_not_saved_heading(client_as, lot_id):
    qa = client_as("qa")
    page = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "reject", "release-password": "nope",
                                                            "release-justification": WHY}).get_data(as_text=True)
    assert '<h2 id="error-summary-title">Not saved:</h2>' in page


def test_the_403_page_names_the_roles_in_words_not_codes(client_as, lot_id):
    nurse = client_as("nurse")
    response = nurse.get(f"/release/lots/{lot_id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    needs = re.search(r"It needs[^<]*", page)
    assert needs, page[:3000]
    words = needs.group(0)
    assert "QA / Qualified Person" in words and "Lab technician" in words, words
    assert words == "It needs one of these roles: Lab technician, QA / Qualified Person, Clinician, Administrator."


def test_the_403_page_names_a_single_role_in_words(client_as):
    response = client_as("technician").get("/admin/users")
    assert response.status_code == 403
    assert "It needs the role Administrator." in response.get_data(as_text=True)


def test_blank_passwords_on_my_account_are_refused_by_the_forms_and_count_nothing(app, client_as):
    """Already right (DataRequired on both forms): kept so that it stays so."""
    tech = client_as("technician")
    before = _state(app, "technician")
    changed = tech.post("/account/password", data={"current_password": "", "new_password": "a-new-long-password-1"})
    token = tech.post("/account/tokens", data={"name": "scanner", "password": ""})
    assert changed.status_code in (400, 422) and token.status_code in (400, 422)
    assert _state(app, "technician") == before


# ---- the start form on the confirmed check's page (UI review 7, ward findings 3 and 5) -------------------------------

def test_the_start_form_names_the_bag_as_it_must_be_typed_and_says_a_missing_bag_once(app, client_as):
    """The hint named the bag by its 13-character DIN, which the start then refused ("Type all 14 characters");
    and a start with no bag scanned was summarised as "<label>: <the label again> to start the infusion"."""
    from mscbatch.lots.models import Bag
    from tests.integration.test_custody_support import checked_and_confirmed, prescribed_bag

    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session)
    check_id = checked_and_confirmed(session, ward)
    bag = session.get(Bag, ward.bag_id)
    full, din = bag.din + bag.check_character, bag.din
    session.close()
    nurse = client_as("nurse")
    page = nurse.get(f"/ward/checks/{check_id}").get_data(as_text=True)
    # session 37: the hint says what to scan and never the bag's number with K (typed from the screen, it started
    # the infusion with no bag in hand)
    form = page.split('id="start-form"', 1)[1].split("</form>", 1)[0]
    assert "with the boxed check character at its end" in form and full not in form
    response = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": ward.wristband, "bag": ""})
    body = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422, response.status_code
    assert "with its check character) to start the infusion." in body
    assert "with its check character): Scan the label" not in body  # not "label: label again"
    assert f"bag {din} " not in page and f"bag {din}." not in page  # the 13 characters alone are refused at start


@pytest.mark.parametrize(("role", "words"), [("nurse", "Return or discard: tap here to give the reason"),
                                             ("technician", "Return: tap here to give the reason"),
                                             ("qa", "Discard: tap here to give the reason")])
def test_the_ward_reason_panel_names_only_what_the_role_may_do(app, users, client_as, role, words):
    """The panel said "Return or discard" to a technician, who may only return, and to QA, who may only discard; and
    with no marker it read as a plain label, not something to open."""
    page = client_as(role).get("/ward").get_data(as_text=True)
    assert f"<summary>{words}</summary>" in page


def test_a_signature_row_altered_to_any_text_is_reported_not_raised(app, users, db_session):
    """The MAC is compared in constant time, on bytes: a row whose MAC was altered, even to non-ASCII text, is
    reported as altered (never a TypeError from hmac.compare_digest on str)."""
    from mscbatch.custody.models import TwoPersonCheck
    from mscbatch.signatures.services import signatures_of, verify
    from tests.integration.test_custody_support import checked_and_confirmed, prescribed_bag

    check_id = checked_and_confirmed(db_session, prescribed_bag(db_session))
    row = db_session.get(TwoPersonCheck, check_id)
    signature = signatures_of(db_session, row)[0]
    assert verify(db_session, signature, row).valid
    for forged in ("0" * len(signature.mac), "é" + signature.mac[1:]):
        signature.mac = forged  # in memory only: verify reads what it is given
        outcome = verify(db_session, signature, row)
        assert not outcome.valid and outcome.problem == "the signature row was altered"
    db_session.rollback()
