"""The donor page's Lookbacks box said of a lookback QA had closed "Closed since <opening time> (<who opened it>):
<why it was opened>": the opener's name and time read as the closing ones, and QA's name, the closing time and QA's
closing note appeared nowhere (review finding: a record shown with the wrong person and time). Each lookback now says
"Opened <time> by <opener>: <why>" and, once closed, "Closed <time> by <closer>: <closing note>"; the closers' names
are read in the one query that reads the openers'."""
from __future__ import annotations

import html
import re
from datetime import timedelta

from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.auth.models import User
from mscbatch.donors.models import DonorLookback
from mscbatch.web.templating import local
from tests.integration.test_recall_lookbacks import _section
from tests.integration.test_s34_recall_lookback_close import NOTE, _recall_then_a_second_late_result

# the recall's start is QA's, who signed the donor; the form's closer, qa2, is named nowhere else on the page
OPENER, RECALLER, CLOSER = "Tom Technician", "Petra Quality", "Quinn Assurance"


def _rename(app, users) -> None:  # type: ignore[no-untyped-def]
    """Full names that appear nowhere else on the page, so that each one is looked for on its own line."""
    with app.extensions["mscbatch.db"].new_session() as session, use_case(session, None, "test: distinct names"):
        session.get(User, users["technician"].id).full_name = OPENER
        session.get(User, users["qa"].id).full_name = RECALLER
        session.get(User, users["qa2"].id).full_name = CLOSER


def _lines(box: str, lookback_id: int) -> list[str]:
    """The words of one lookback on the donor page, one entry per line (Opened…, Closed…), tags removed."""
    block = _section(box, f'id="lookback-{lookback_id}"', "</p>").split(">", 1)[1]
    return [html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", part))).strip() for part in block.split("<br>")]


def test_the_donor_page_says_who_closed_a_lookback_when_and_why(app, users, client_as):  # type: ignore[no-untyped-def]
    _rename(app, users)
    s = _recall_then_a_second_late_result(app, client_as)  # the first lookback closed by the recall's start
    qa = s["qa"]
    closed = client_as("qa2").post(f"/recalls/lookbacks/{s['lookback_id']}/close", data={"note": NOTE})
    assert closed.status_code == 302, closed.get_data(as_text=True)[:2000]

    with app.extensions["mscbatch.db"].new_session() as session, use_case(session, None, "test: opened earlier"):
        for row in session.scalars(select(DonorLookback).where(DonorLookback.donor_id == s["donor_id"])):
            row.opened_at -= timedelta(hours=3)  # an opening time that cannot be mistaken for the closing one

    response = qa.get(f"/donors/{s['donor_id']}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    box = _section(page, 'id="lookbacks"', "</section>")
    with app.extensions["mscbatch.db"].new_session() as session:
        rows = session.scalars(select(DonorLookback).where(DonorLookback.donor_id == s["donor_id"])
                               .order_by(DonorLookback.id)).all()
        assert [r.closed_at is not None for r in rows] == [True, True]
        assert [(r.opened_by_id, r.closed_by_id) for r in rows] == [
            (users["technician"].id, users["qa"].id), (users["technician"].id, users["qa2"].id)]
        for row, closer in zip(rows, (RECALLER, CLOSER), strict=True):
            block = _section(box, f'id="lookback-{row.id}"', "</p>")
            assert f"<strong>Opened</strong> {local(row.opened_at)} by {OPENER}: " in block
            assert f"<strong>Closed</strong> {local(row.closed_at)} by {closer}: " in block
            opened, shut = _lines(box, row.id)
            assert opened.startswith("Opened ") and OPENER in opened and row.reason in opened
            assert closer not in opened
            assert shut.startswith("Closed ") and shut.endswith(row.closure_note) and closer in shut
            assert OPENER not in shut  # the opener is never named as the one who closed it
            assert str(local(row.opened_at)) not in block[block.index("<strong>Closed</strong>"):]
        by_form, by_recall = rows[1], rows[0]
        assert by_form.closure_note.endswith(NOTE)  # QA's note, typed in the recalls page's form
        assert by_recall.closure_note.startswith(f"Recall R-{s['recall_id']} started")
    assert "since" not in box  # "Closed since <opening time>" read as the closing time
    assert NOTE in box


def test_an_open_lookback_says_who_opened_it_and_that_it_is_still_open(app, users, client_as):  # type: ignore[no-untyped-def]
    _rename(app, users)
    s = _recall_then_a_second_late_result(app, client_as)  # the second lookback is still open
    page = s["qa"].get(f"/donors/{s['donor_id']}").get_data(as_text=True)
    box = _section(page, 'id="lookbacks"', "</section>")
    opened, state = _lines(box, s["lookback_id"])
    assert opened.startswith("Opened ") and OPENER in opened and "Anti-HIV" in opened
    # QA is told how it closes (session 38: "Still open." alone left QA without a next step on the donor page)
    assert state == ("Still open. To close it: start the donor's recall, or, if the result that opened it was a typing "
                     "error, correct it (QA, signed) to negative, then close it here with a note."), state
    assert f'class="lookback open" id="lookback-{s["lookback_id"]}"' in box
