"""A reviewer on the demo data, nurse on a tablet (/ward/checks/<id>):

1. Beside "Give before" the page said "a site value still to confirm", in an amber badge, next to the verdict's
   CONFIRMED / NOT YET CONFIRMED: a tired nurse read it as the check still pending. It now names what it is about
   (the post-thaw limit config/products.toml marks `to_confirm`) and whose job it is, in small words under the limit,
   never in the verdict's headline (h1#verdict, p#verdict-state).
2. The green CONFIRMED box says "Scan again below, then start" (the start form, on the page) while a big "Scan again"
   button under it left the check for the ward page. That button now says what it does.

Through GET of the page, as a nurse, on SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re

import pytest

from mscbatch.custody.ward_words import provisional_thaw_limit_words
from tests.integration.test_custody_support import check, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")

#: config/products.toml's demo UC-MSC limit: 60 minutes, `to_confirm = true`
CAVEAT = "(post-thaw limit of 60 minutes: the unit's provisional setting, until its stability study sets it)"
NEW_CHECK = ('<p class="verdict-back"><a class="button big secondary" id="new-check" href="/ward">'
             "New check: back to Ward scanning</a></p>")


def _page(client, url: str) -> str:  # type: ignore[no-untyped-def]
    answer = client.get(url)
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def _element(page: str, pattern: str) -> str:
    found = re.search(pattern, page, re.S)
    assert found is not None, pattern
    return found.group(0)


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _old_words_gone(page: str) -> None:
    text = _text(page)
    assert "still to confirm" not in text and "a site value" not in text
    # the button's old words, alone: "Scan again below, then start" (the start form) is another link
    assert ">Scan again</a>" not in page and not re.search(r">\s*Scan again\s*<", page)


def _caveat_is_small_and_outside_the_headline(page: str) -> None:
    caveat = _element(page, r'<small class="hint thaw-limit-provisional" id="post-thaw-to-confirm"[^>]*>.*?</small>')
    assert _text(caveat) == CAVEAT
    assert "status" not in caveat.split(">", 1)[0]  # no amber badge, the colour of NOT YET CONFIRMED
    for headline in (r'<h1 id="verdict".*?</h1>', r'<p class="verdict-state[^"]*" id="verdict-state">.*?</p>'):
        found = re.search(headline, page, re.S)
        if found is not None:
            assert "post-thaw" not in found.group(0) and "QA" not in found.group(0)
    assert page.count('id="post-thaw-to-confirm"') == 1


def test_the_confirmed_check_page_says_whose_limit_it_is_and_what_the_leaving_button_does(app, db_session,
                                                                                          client_as):  # type: ignore[no-untyped-def]
    check_id = checked_and_confirmed(db_session, prescribed_bag(db_session))
    page = _page(client_as("nurse"), f"/ward/checks/{check_id}")
    state = _text(_element(page, r'<p class="verdict-state verdict-state-go" id="verdict-state">.*?</p>'))
    assert "CONFIRMED" in state and "you may start the infusion" in state, state
    _old_words_gone(page)
    # the caveat under the limit it qualifies, in the Give before line
    give_before = _element(page, r'<dd id="give-before".*?</dd>')
    assert 'id="post-thaw-to-confirm"' in give_before and CAVEAT in _text(give_before)
    _caveat_is_small_and_outside_the_headline(page)
    # "Scan again below" is the start form's, on this page; the leaving button says it leaves, and keeps its link
    assert '<a href="#start-form">Scan again below, then start</a>' in page and 'id="start-form"' in page
    assert NEW_CHECK in page and page.index('id="start-form"') < page.index('id="new-check"')


def test_the_not_yet_confirmed_page_says_the_same(app, db_session, client_as):  # type: ignore[no-untyped-def]
    check_id = check(db_session, prescribed_bag(db_session)).check_id
    page = _page(client_as("nurse"), f"/ward/checks/{check_id}")
    assert "NOT YET CONFIRMED" in _text(_element(page, r'<p class="verdict-state[^"]*" id="verdict-state">.*?</p>'))
    _old_words_gone(page)
    _caveat_is_small_and_outside_the_headline(page)
    assert NEW_CHECK in page


def test_a_stop_page_says_the_same(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)
    stopped = check(db_session, ward, wristband=other.wristband)  # the bag scanned against another patient
    assert not stopped.matches
    page = _page(client_as("nurse"), f"/ward/checks/{stopped.check_id}")
    assert ">STOP</h1>" in page
    _old_words_gone(page)
    limit = _element(page, r"<dt>Post-thaw limit</dt><dd>.*?</dd>")
    assert CAVEAT in _text(limit)
    _caveat_is_small_and_outside_the_headline(page)
    assert NEW_CHECK in page


def test_a_refused_start_page_says_the_same(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward, other = prescribed_bag(db_session), prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    nurse = client_as("nurse")
    wrong = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": other.wristband, "bag": ward.token})
    assert wrong.status_code == 303
    page = _page(nurse, wrong.headers["Location"])
    assert "WRONG PATIENT" in page and 'class="verdict verdict-stop' in page
    _old_words_gone(page)
    assert NEW_CHECK in page


def test_the_caveat_never_says_confirm():
    """Beside CONFIRMED / NOT YET CONFIRMED the caveat must not use the verdict's own word."""
    words = provisional_thaw_limit_words(60)
    assert "confirm" not in words.lower() and "60 minutes" in words and "stability study" in words
