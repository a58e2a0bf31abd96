"""Session 42 (ward nurse, 3 a.m.): a MATCHES not yet confirmed showed the same full green as a confirmed one, which
reads as "give it". Before a second person confirms, the page is amber (body .bedside-matches-pending) and says
"NOT YET CONFIRMED" with the next step; a confirmed, still valid check of a thawed bag alone is the full green
"CONFIRMED ... you may start". The "Give before" line carries the server's deadline for js/thaw-countdown.js
(data-thaw-deadline, data-server-now, in UTC) and the STOP words it shows once the limit passes. A STOP is as it was.
Through the web, on SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from mscbatch.custody.models import TwoPersonCheck
from mscbatch.custody.ward_words import minutes_left_words
from mscbatch.database import utcnow
from tests.conftest import PASSWORD
from tests.integration.test_custody_support import check, checked_and_confirmed, prescribed_bag
from tests.time_words import utc_beside

pytestmark = pytest.mark.usefixtures("users")

ISO = "%Y-%m-%dT%H:%M:%SZ"
ICON = re.compile(r'<span aria-hidden="true">.*?</span>')


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _page(client, check_id: int) -> str:  # type: ignore[no-untyped-def]
    answer = client.get(f"/ward/checks/{check_id}")
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def _body_class(page: str) -> list[str]:
    found = re.search(r'<body class="([^"]*)"', page)
    assert found is not None
    return found.group(1).split()


def _state(page: str) -> str:
    """The verdict's state line (#verdict-state), as words, or "" when the page has none."""
    found = re.search(r'<p class="(verdict-state [^"]*)" id="verdict-state">(.*?)</p>', page, re.S)
    if found is None:
        return ""
    return f"{found.group(1)}: {_text(ICON.sub('', found.group(2)))}"


def test_an_unconfirmed_matches_is_amber_and_says_not_yet_confirmed(app, db_session, client_as):  # type: ignore[no-untyped-def]
    check_id = check(db_session, prescribed_bag(db_session)).check_id
    page = _page(client_as("nurse"), check_id)
    assert ">MATCHES</h1>" in page
    assert "bedside-matches" in _body_class(page) and "bedside-matches-pending" in _body_class(page)
    state = _state(page)
    assert state.startswith("verdict-state verdict-state-pending: NOT YET CONFIRMED"), state
    assert "Do not start yet: a second nurse or clinician must confirm before you start." in state
    assert '<a href="#h-second">A second person must now confirm: sign below</a>' in page
    assert "you may start" not in _text(page) and "CONFIRMED Two people" not in _text(page)
    # the heading focused on load (js/verdict-focus.js) is described by the state: read with it
    assert re.search(r'<h1 id="verdict"[^>]*aria-describedby="verdict-state"[^>]*>MATCHES</h1>', page)
    assert "<title>MATCHES · NOT YET CONFIRMED" in page
    # the confirm form follows the verdict, on the same page
    assert page.index('id="verdict-state"') < page.index('id="h-second"') < page.index('name="second_username"')


def test_the_state_names_who_signs_when_another_person_looks(app, db_session, client_as):  # type: ignore[no-untyped-def]
    check_id = check(db_session, prescribed_bag(db_session)).check_id  # scanned by "nurse"
    page = _page(client_as("nurse2"), check_id)
    state = _state(page)
    assert "NOT YET CONFIRMED" in state and "Only Nurse, who scanned, signs it, with a second person." in state, state
    assert "bedside-matches-pending" in _body_class(page)


def test_a_confirmed_check_of_a_thawed_bag_is_the_full_green_go(app, db_session, client_as):  # type: ignore[no-untyped-def]
    check_id = checked_and_confirmed(db_session, prescribed_bag(db_session))
    page = _page(client_as("nurse"), check_id)
    assert "bedside-matches" in _body_class(page) and "bedside-matches-pending" not in _body_class(page)
    state = _state(page)
    assert state.startswith("verdict-state verdict-state-go: CONFIRMED Two people checked this bag against the "
                            "wristband: you may start the infusion."), state
    assert '<a href="#start-form">Scan again below, then start</a>' in page and 'id="start-form"' in page
    assert "NOT YET CONFIRMED" not in page and "<title>MATCHES · mscbatch</title>" in page
    # a clinician (who does not record the start) reads that a nurse may start
    clinician = _state(_page(client_as("clinician"), check_id))
    assert clinician.endswith("a nurse may start the infusion."), clinician


def test_a_confirmed_check_of_a_frozen_bag_is_not_a_go(app, db_session, client_as):  # type: ignore[no-untyped-def]
    check_id = checked_and_confirmed(db_session, prescribed_bag(db_session, state="received"))
    page = _page(client_as("nurse"), check_id)
    assert "bedside-matches-pending" in _body_class(page)
    state = _state(page)
    assert "CONFIRMED, STILL FROZEN" in state and "Do not start yet: thaw this bag" in state, state
    assert "you may start" not in page and 'id="give-before"' not in page  # no post-thaw clock before a thaw


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_check_past_its_validity_is_not_a_go(app, db_session, client_as, confirmed):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    check_id = checked_and_confirmed(db_session, ward) if confirmed else check(db_session, ward).check_id
    db_session.execute(update(TwoPersonCheck).where(TwoPersonCheck.id == check_id)
                       .values(checked_at=utcnow() - timedelta(minutes=31)))
    db_session.commit()
    page = _page(client_as("nurse"), check_id)
    assert "bedside-matches-pending" in _body_class(page)
    assert "NO LONGER VALID" in _state(page) and "you may start" not in page


def test_a_refused_confirmation_keeps_one_not_confirmed_note(app, db_session, client_as):  # type: ignore[no-untyped-def]
    check_id = check(db_session, prescribed_bag(db_session)).check_id
    refused = client_as("nurse").post(f"/ward/checks/{check_id}/confirm", data={
        "second_username": "nurse2", "second_password": "not-the-password", "checker_password": PASSWORD})
    page = refused.get_data(as_text=True)
    assert refused.status_code in (401, 403, 409, 422)
    assert "bedside-matches-pending" in _body_class(page)
    assert 'id="not-confirmed-yet"' in page and 'id="verdict-state"' not in page  # said once, not twice
    assert re.search(r'<h1 id="verdict"[^>]*aria-describedby="not-confirmed-yet"', page)


def test_the_give_before_line_carries_the_deadline_for_the_countdown(app, db_session, client_as):  # type: ignore[no-untyped-def]
    check_id = check(db_session, prescribed_bag(db_session)).check_id  # thawed just now: 60 minutes
    before = datetime.now(UTC).replace(microsecond=0)
    page = _page(client_as("nurse"), check_id)
    after = datetime.now(UTC)
    line = re.search(r'<dd id="give-before" data-thaw-deadline="([^"]+)" data-server-now="([^"]+)">(.*?)</dd>',
                     page, re.S)
    assert line is not None, page
    deadline = datetime.strptime(line.group(1), ISO).replace(tzinfo=UTC)
    served = datetime.strptime(line.group(2), ISO).replace(tzinfo=UTC)
    assert before <= served <= after
    assert timedelta(minutes=59) < deadline - served <= timedelta(minutes=60)
    words = line.group(3)
    minutes = int((deadline - served).total_seconds() // 60)  # both rounded down to the second: a minute less too
    assert any(f'<strong id="minutes-left">{minutes_left_words(m)}</strong>, by' in words for m in (minutes - 1, minutes))
    # what the script shows once the limit passes, in the page's words (inert until then: a <template>)
    passed = re.search(r'<template id="thaw-passed-words">(.*?)</template>', words, re.S)
    assert passed is not None
    assert "Post-thaw limit PASSED at " in _text(passed.group(1)) and utc_beside(deadline) in _text(passed.group(1))
    assert "Do not give this bag. Scan it again, or call the cell therapy unit." in _text(passed.group(1))
    assert '<div class="thaw-passed" id="thaw-passed" role="alert" hidden></div>' in page
    assert '<script src="/static/js/thaw-countdown.js"></script>' in page
    assert 'id="give-before-term">Give before</dt>' in page


def test_a_stop_is_as_it_was(app, db_session, client_as):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    other = prescribed_bag(db_session)
    check_id = check(db_session, ward, wristband=other.wristband).check_id  # another patient's wristband
    page = _page(client_as("nurse"), check_id)
    assert ">STOP</h1>" in page and _body_class(page) == ["bedside", "bedside-stop"]
    assert 'id="verdict-state"' not in page and "data-thaw-deadline" not in page and "NOT YET CONFIRMED" not in page
    assert "minutes left" not in page and "Post-thaw limit" in page


def test_the_minutes_left_words() -> None:
    assert [minutes_left_words(m) for m in (0, 1, 2, 59)] == [
        "less than 1 minute left", "1 minute left", "2 minutes left", "59 minutes left"]
