"""Session 42b (ward nurses at night): the ward page's "Give by" of a thawed bag was a time said once; a list left
open on the tablet never said PAST until someone reloaded it. Each thawed bag's cell now carries its deadline and
the server's time (data-thaw-deadline, data-server-now) for js/thaw-countdown.js, the one script the bedside result
page counts down with, its minutes left in the bedside page's words (ward_words.minutes_left_words), and the page
holds the list's STOP words once (<template id="give-by-passed-words">): the same words the server says of a bag
already past its limit. Through the web client, on SQLite and PostgreSQL (the browser test drives the countdown)."""
from __future__ import annotations

import html
import re
from datetime import UTC, timedelta

import pytest
from sqlalchemy import select

from mscbatch.custody.models import CustodyEvent
from mscbatch.database import utcnow
from mscbatch.lots.models import Lot
from mscbatch.lots.queries import product_of
from mscbatch.site import local_parts
from tests.integration.test_custody_support import ward_bag

pytestmark = pytest.mark.usefixtures("users")

PAST = "PAST ITS POST-THAW LIMIT ({}): do not give it. Discard it (Return or discard, above)."


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


def _cell(page: str, bag_id: int) -> str:
    row = re.search(rf'<tr id="on-ward-{bag_id}">(.*?)</tr>', page, re.S)
    assert row, page[:3000]
    cell = re.search(r'(<td data-label="Give by".*?</td>)', row.group(1), re.S)
    assert cell, row.group(1)
    return cell.group(1)


def _give_by(app, ward):  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        thaw = session.scalar(select(CustodyEvent.occurred_at).where(CustodyEvent.bag_id == ward.bag_id,
                                                                     CustodyEvent.kind == "thawed"))
        return thaw + product_of(session.get(Lot, ward.lot_id)).post_thaw_limit


def test_a_thawed_bags_give_by_carries_its_deadline_and_counts_its_minutes(app, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    thawed, received = ward_bag(app), ward_bag(app, state="received")
    give_by = _give_by(app, thawed)
    now = utcnow().replace(microsecond=0)
    monkeypatch.setattr("mscbatch.custody.views.utcnow", lambda: now)
    page = client_as("nurse").get("/ward").get_data(as_text=True)
    cell = _cell(page, thawed.bag_id)
    assert 'data-give-by ' in cell
    assert f'data-thaw-deadline="{give_by.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"' in cell
    assert f'data-server-now="{now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"' in cell
    minutes = int((give_by - now).total_seconds() // 60)
    assert f'(<span class="minutes-left">{minutes} minutes left</span>)' in cell and 50 < minutes <= 60
    local, utc = local_parts(give_by)
    assert local in _text(cell) and utc in _text(cell) and "PAST" not in cell
    # a bag not thawed counts nothing
    assert "data-give-by" not in _cell(page, received.bag_id)
    assert "— (thaw it first)" in _text(_cell(page, received.bag_id))
    # the STOP words the script puts in place, once, with a slot for the bag's time; and the script itself
    template = re.search(r'<template id="give-by-passed-words">(.*?)</template>', page, re.S)
    assert template and _text(template.group(1)) == PAST.format("")
    assert '<span data-give-by-time></span>' in template.group(1)
    assert '<script src="/static/js/thaw-countdown.js"></script>' in page


def test_a_bag_served_past_its_limit_says_the_same_words_and_counts_nothing(app, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    thawed = ward_bag(app)
    give_by = _give_by(app, thawed)
    later = utcnow() + timedelta(hours=3)  # custody events are append-only: the page is read three hours later
    monkeypatch.setattr("mscbatch.custody.views.utcnow", lambda: later)
    page = client_as("nurse").get("/ward").get_data(as_text=True)
    cell = _cell(page, thawed.bag_id)
    local, utc = local_parts(give_by)
    assert _text(cell) == PAST.format(f"{local} ({utc})")
    assert "data-give-by" not in cell and "minutes-left" not in cell and 'class="flag flag-stop"' in cell


def test_the_minutes_are_the_bedside_pages_words(app, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    thawed = ward_bag(app)
    give_by = _give_by(app, thawed)
    for before, words in ((timedelta(seconds=30), "less than 1 minute left"), (timedelta(seconds=90), "1 minute left")):
        monkeypatch.setattr("mscbatch.custody.views.utcnow", lambda before=before: give_by - before)
        cell = _cell(client_as("nurse").get("/ward").get_data(as_text=True), thawed.bag_id)
        assert f'<span class="minutes-left">{words}</span>' in cell
