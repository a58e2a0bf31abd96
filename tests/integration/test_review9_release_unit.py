"""Review 9, release page "Enter one result": the unit is chosen, never assumed (SQLite and PostgreSQL).

The unit select defaulted to "%" whatever the test, so an endotoxin result "< 0.05" was first refused with "unit '%'
is wrong". The unit stays (it catches a result read in another unit), but starts at "choose the unit": left so, the
result is refused naming the field and the test's own unit, nothing written. Each test's option carries its unit for
the page's script (static/js/result-unit.js); a page opened for one test ("enter the result") comes with the test and
its unit chosen by the server. The API, whose unit is required and "" a result word, is unchanged."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.release.demo import enter_panel
from mscbatch.release.models import ReleaseResult
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.test_release_support import seed_quarantine_lot, user

COMMON = {"result-analyst": "Tom QC", "result-tested_on": site_today().isoformat(), "result-instrument": "LAL-1"}


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    """The demo quarantined lot, every test entered but endotoxin and sterility."""
    lot = seed_quarantine_lot(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    try:
        enter_panel(session, user(session, "technician"), lot, skip=("endotoxin", "sterility"))
    finally:
        session.close()
    return lot


def _results(app: Any, lot_id: int, test_id: str) -> int:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return int(session.scalar(select(func.count()).select_from(ReleaseResult).where(
            ReleaseResult.lot_id == lot_id, ReleaseResult.test_id == test_id)))
    finally:
        session.close()


def _select(page: str, name: str) -> str:
    match = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert match is not None, name
    return match.group(0)


def _options(select_html: str) -> list[tuple[str, bool]]:
    """(value, selected) of each option, in order."""
    return [(m.group(2), "selected" in m.group(1) + m.group(3))
            for m in re.finditer(r'<option([^>]*?)value="([^"]*)"([^>]*)>', select_html)]


def test_the_unit_starts_unchosen_and_each_test_carries_its_own_unit(client_as, lot_id):
    page = client_as("technician").get(f"/release/lots/{lot_id}").get_data(as_text=True)
    unit = _options(_select(page, "result-unit"))
    assert unit[0] == ("", False) and not any(selected for _v, selected in unit)  # the browser shows the first
    assert "— choose the unit —" in _select(page, "result-unit")
    assert ("none", False) in unit  # a result word's "no unit" is a choice of its own, not the empty value
    tests = _select(page, "result-test_id")
    assert 'data-unit-select="result-unit"' in tests and _options(tests)[0] == ("", False)
    assert re.search(r'data-unit="EU/mL"[^>]*value="endotoxin"|value="endotoxin"[^>]*data-unit="EU/mL"', tests)
    assert re.search(r'data-unit="none"[^>]*value="sterility"|value="sterility"[^>]*data-unit="none"', tests)
    assert '<script src="/static/js/result-unit.js"></script>' in page


def test_a_page_opened_for_one_test_chooses_the_test_and_its_unit(client_as, lot_id):
    tech = client_as("technician")
    page = tech.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    link = f'href="/release/lots/{lot_id}?test=endotoxin#one-result"'
    assert link in page  # the endotoxin row, still without a result, offers it
    opened = tech.get(f"/release/lots/{lot_id}?test=endotoxin").get_data(as_text=True)
    assert ("endotoxin", True) in _options(_select(opened, "result-test_id"))
    assert [v for v, selected in _options(_select(opened, "result-unit")) if selected] == ["EU/mL"]
    word = tech.get(f"/release/lots/{lot_id}?test=sterility").get_data(as_text=True)
    assert [v for v, selected in _options(_select(word, "result-unit")) if selected] == ["none"]
    unknown = tech.get(f"/release/lots/{lot_id}?test=no-such-test").get_data(as_text=True)
    assert not any(selected for _v, selected in _options(_select(unknown, "result-unit")))
    assert link not in client_as("qa").get(f"/release/lots/{lot_id}").get_data(as_text=True)  # QA enters nothing


def test_a_result_with_no_unit_chosen_is_refused_naming_the_unit_and_nothing_is_written(app, client_as, lot_id):
    tech = client_as("technician")
    refused = tech.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": "endotoxin", "result-value": "< 0.05", "result-unit": "", **COMMON})
    assert refused.status_code == 422
    page = html.unescape(refused.get_data(as_text=True))
    words = "Unit: choose the unit of the result, as the report gives it. Endotoxin is reported in EU/mL."
    assert words in page[page.index('id="result-unit"'):]  # beside the unit field
    assert "unit '' is wrong" not in page
    assert ("endotoxin", True) in _options(_select(page, "result-test_id"))  # the test stays chosen
    assert _results(app, lot_id, "endotoxin") == 0


def test_with_its_unit_chosen_the_endotoxin_and_a_word_result_are_recorded(app, client_as, lot_id):
    tech = client_as("technician")
    endotoxin = tech.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": "endotoxin", "result-value": "< 0.05", "result-unit": "EU/mL", **COMMON})
    assert endotoxin.status_code == 302, html.unescape(endotoxin.get_data(as_text=True))[:3000]
    word = tech.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": "sterility", "result-value": "negative", "result-unit": "none", **COMMON})
    assert word.status_code == 302, html.unescape(word.get_data(as_text=True))[:3000]
    assert _results(app, lot_id, "endotoxin") == 1 and _results(app, lot_id, "sterility") == 1


def test_a_wrong_unit_is_still_caught(app, client_as, lot_id):
    refused = client_as("technician").post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": "endotoxin", "result-value": "0.12", "result-unit": "%", **COMMON})
    assert refused.status_code == 422
    assert "this test is reported in EU/mL" in html.unescape(refused.get_data(as_text=True))
    assert _results(app, lot_id, "endotoxin") == 0


def test_the_api_is_unchanged_an_empty_unit_is_a_result_word_there(app, lot_id):
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    word = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers=headers, json={
        "test_id": "sterility", "value": "negative", "unit": "", "analyst": "Tom QC",
        "tested_on": site_today().isoformat()})
    assert word.status_code == 201, word.get_json()
    endotoxin = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers=headers, json={
        "test_id": "endotoxin", "value": "< 0.05", "unit": "EU/mL", "analyst": "Tom QC",
        "tested_on": site_today().isoformat()})
    assert endotoxin.status_code == 201, endotoxin.get_json()


def test_neither_test_nor_unit_chosen_is_refused_naming_both(app, client_as, lot_id):
    refused = client_as("technician").post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": "", "result-value": "< 0.05", "result-unit": "", **COMMON})
    assert refused.status_code == 422
    page = html.unescape(refused.get_data(as_text=True))
    assert "Test: choose the test of this result." in page[page.index('id="result-test_id"'):]
    assert "Unit: choose the unit of the result" in page[page.index('id="result-unit"'):]
    assert _results(app, lot_id, "endotoxin") == 0
