"""Session 37, a ward nurse's review (tablet, 3 a.m.) of the bedside check and of the infusion's start:

1. the start form's bag hint printed the whole expected scan ("it must be bag X999926000005P (all 14 characters, the
   boxed one last)"): typed from the screen with no bag in hand, it started the infusion, and the re-scan at the
   start proved nothing. The hint says what to scan, never the bag's number with its check character;
2. a bag code refused at the start (a QR read cut short) answered 422 with a small summary above a big green MATCHES,
   the refused text still in the field and Start one tap away: now NOT STARTED first, the field emptied, and what to
   do in plain words ("The bag scan was not read: scan the bag's label again");
3. a bag scan cut short at the bedside check said "The bag was not identified: scan its label again" in the headline
   and "not genuine ... Do not give it. Call the cell therapy unit." in its reason: a read cut short or damaged is
   now "scan again" throughout; "not genuine / call the unit" is kept for a whole code whose signature does not
   match or a code altered (a forged or altered label: TokenInvalid.kind, test_s37_scan_kinds)."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest

from mscbatch.core.label_token import SIGNATURE_CHARS, TokenInvalid, verify_token
from mscbatch.custody.checks import CALL_UNIT, NOT_READ, scan_reference
from mscbatch.lots.models import Bag
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag
from tests.integration.test_infusion_start import _written

NOT_READ_WORDS = "The bag scan was not read: scan the bag's label again"


def _confirmed(db_session: Any) -> tuple[Any, int, Bag]:
    ward = prescribed_bag(db_session)
    check_id = checked_and_confirmed(db_session, ward)
    bag = db_session.get(Bag, ward.bag_id)
    db_session.expunge(bag)
    db_session.commit()  # SQLite: the test client writes next
    return ward, check_id, bag


def _start_form(page: str) -> str:
    return page.split('id="start-form"', 1)[1].split("</form>", 1)[0]


def _forged(token: str) -> str:
    """The whole code, one character of its signature changed: a label altered or not made by this unit."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


# ---- 1. the start form's hint never hands out the expected scan ------------------------------------------------------

def test_the_start_forms_bag_hint_says_what_to_scan_without_the_bags_number(app, users, db_session, client_as):
    ward, check_id, bag = _confirmed(db_session)
    page = html.unescape(client_as("nurse").get(f"/ward/checks/{check_id}").get_data(as_text=True))
    form = _start_form(page)
    hint = form.split('id="start-bag"', 1)[1].split('<p class="hint">', 1)[1].split("</p>", 1)[0]
    assert "QR code" in hint and "boxed check character" in hint and "from the label" in hint, hint
    full = bag.din + bag.check_character
    for said in (full, bag.din, bag.din_display, "all 14 characters"):
        assert said not in form, (said, form)  # nothing to type from the screen in place of the scan
    # the second person's read-aloud against the label (before the start) is not this form: it stays as it was
    assert 'id="read-aloud"' not in page  # confirmed: the read-aloud form is gone, the start form is shown


# ---- 2. a bag code refused at the start: NOT STARTED first, the field emptied -----------------------------------------

def test_a_start_with_a_bag_scan_cut_short_says_not_started_first_and_empties_the_field(app, users, db_session,
                                                                                          client_as):
    ward, _check_id, bag = _confirmed(db_session)
    cut = ward.token[:20]  # "X999926000005P.RELLG": the QR read cut short
    nurse = client_as("nurse")
    before = _written(db_session)
    response = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": ward.wristband, "bag": cut})
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422, response.status_code
    assert _written(db_session) == before  # nothing started, nothing written
    assert "<title>NOT STARTED" in page and "bedside-start-refused" in page and "bedside-matches" not in page
    # the refusal first: above the check's MATCHES, as a block of its own, in plain words with one thing to do
    refusal = page.index('id="start-refused"')
    assert refusal < page.index('id="verdict"'), "NOT STARTED comes before the MATCHES"
    block = page[refusal:].split("</section>", 1)[0]
    assert "NOT STARTED" in block and NOT_READ_WORDS in block, block
    assert CALL_UNIT not in block and "not genuine" not in block
    assert "Scan the bag's label again" in block
    # the MATCHES below says it too, and no longer fills the screen
    verdict = page[page.index('class="verdict verdict-matches'):].split("</section>", 1)[0]
    assert "verdict-held" in verdict and "NOT STARTED: the infusion was not started." in verdict
    # the refused text is not shown back: an empty bag field, its error beside it; the wristband scanned stays
    form = _start_form(page)
    bag_input = re.search(r"<input[^>]*id=\"start-bag\"[^>]*>", form).group(0)
    assert 'value=""' in bag_input or "value=" not in bag_input, bag_input
    assert 'aria-invalid="true"' in bag_input
    assert cut not in page and cut.lower() not in page.lower()
    assert NOT_READ_WORDS in form.split('id="start-bag-error"', 1)[1]
    assert f'value="{ward.wristband}"' in form


def test_a_start_with_a_forged_bag_code_says_not_genuine_in_the_not_started_block(app, users, db_session, client_as):
    ward, _check_id, _bag = _confirmed(db_session)
    response = client_as("nurse").post(f"/ward/bags/{ward.bag_id}/infusion",
                                       data={"wristband": ward.wristband, "bag": _forged(ward.token)})
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    block = page[page.index('id="start-refused"'):].split("</section>", 1)[0]
    assert "not genuine" in block and CALL_UNIT in block and NOT_READ_WORDS not in block
    assert _forged(ward.token) not in page


def test_a_start_accepted_shows_no_not_started_block(app, users, db_session, client_as):
    """The block is a refusal's only: the confirmed page before the start has none, and the start itself goes on."""
    ward, check_id, _bag = _confirmed(db_session)
    nurse = client_as("nurse")
    page = nurse.get(f"/ward/checks/{check_id}").get_data(as_text=True)
    assert 'id="start-refused"' not in page and "bedside-matches" in page and 'id="not-started"' not in page
    started = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": ward.wristband, "bag": ward.token})
    assert started.status_code in (302, 303) and "/ward/infusions/" in started.headers["Location"]


# ---- 3. one instruction for a bag scan cut short; "not genuine" for a forged code only ---------------------------------

def _check_page(client: Any, ward: Any, scan: str) -> str:
    response = client.post("/ward/check", data={"wristband": ward.wristband, "bag": scan}, follow_redirects=True)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def test_a_bag_scan_cut_short_at_the_bedside_says_scan_again_only(app, users, db_session, client_as):
    ward = prescribed_bag(db_session)
    db_session.commit()
    page = _check_page(client_as("nurse"), ward, ward.token[:20])
    assert ">STOP<" in page
    assert "The bag was not identified: scan its label again." in page
    failures = page.split('class="failures"', 1)[1].split("</ul>", 1)[0]
    assert NOT_READ_WORDS in failures
    assert "not genuine" not in page and CALL_UNIT not in page and "Call the cell therapy unit" not in page


def test_a_forged_bag_code_at_the_bedside_says_do_not_give_and_call_the_unit_only(app, users, db_session, client_as):
    ward = prescribed_bag(db_session)
    db_session.commit()
    page = _check_page(client_as("nurse"), ward, _forged(ward.token))
    failures = page.split('class="failures"', 1)[1].split("</ul>", 1)[0]
    assert "not genuine" in failures and CALL_UNIT in failures
    assert "scan its label again" not in page and "says nothing about the bag itself" not in page
    assert "Do not give this bag." in page


@pytest.mark.parametrize("how", ["cut short", "no signature", "cut after the dot",
                                 "a character no label prints", "a web address cut before /v/", "two codes"])
def test_every_code_not_read_whole_says_scan_again(how: str) -> None:
    from mscbatch.core.label_token import make_token

    token = make_token("X999926000005P", KEY)
    scan = {"cut short": token[:20], "no signature": token.split(".")[0] + ".",
            "cut after the dot": token[:-1],
            "a character no label prints": token[:-1] + "!", "a web address cut before /v/": "https://ward.exa",
            "two codes": token + token}[how]
    with pytest.raises(TokenInvalid):
        verify_token(scan, KEY)
    assert scan_reference(scan, KEY) == (None, NOT_READ)
    assert NOT_READ.startswith(NOT_READ_WORDS) and CALL_UNIT not in NOT_READ


def test_a_whole_code_with_another_signature_or_altered_is_not_genuine() -> None:
    from mscbatch.core.label_token import make_token

    token = make_token("X999926000005P", KEY)
    assert len(token.split(".")[1]) == SIGNATURE_CHARS
    # a signature longer than any label prints: altered, as the label check page says (test_s37_scan_kinds)
    for forged in (_forged(token), make_token("X999926000005P", "another unit's key"), token + "A"):
        ref, problem = scan_reference(forged, KEY)
        assert ref is None and problem.startswith("The code on the bag label is not genuine (") and CALL_UNIT in problem


def test_a_bar_code_that_is_no_bag_number_says_scan_the_qr_code_not_call_the_unit() -> None:
    ref, problem = scan_reference("=O99992600000500", KEY)  # a FIN never starts with O
    assert ref is None and "bar code scanned is not a bag number" in problem and CALL_UNIT not in problem
