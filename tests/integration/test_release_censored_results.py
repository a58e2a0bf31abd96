"""A result below the method's detection limit is entered as the lab reports it, on SQLite and PostgreSQL (ALCOA+:
original, accurate; DOMAIN.md sections 5 and 9). Before, an endotoxin (LAL) result "< 0.05 EU/mL" was refused as
"not a number", so the technician had to type a number that is not the raw data. Now it is kept exactly as typed,
judged honestly against the specification (core.release_spec.Censored), shown as typed on the release review, in
the API and on the certificate of analysis, and the dose's K/M check counts it as its limit, the most it can be."""
from __future__ import annotations

import html
import io
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OosInvestigation, ReleaseResult
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen

COMMON = {"result-analyst": "Tom QC", "result-tested_on": site_today().isoformat(), "result-instrument": "LAL-1"}


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    """The demo quarantined lot, every test entered and passing but endotoxin."""
    lot = seed_quarantine_lot(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    try:
        enter_panel(session, user(session, "technician"), lot, skip=("endotoxin",))
    finally:
        session.close()
    return lot


def _enter_endotoxin(client: Any, lot_id: int, value: str) -> Any:
    return client.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": "endotoxin", "result-value": value, "result-unit": "EU/mL", **COMMON})


def _endotoxin_rows(app: Any, lot_id: int) -> list[tuple[str, str]]:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return [(r.value, r.first_value) for r in session.scalars(select(ReleaseResult).where(
            ReleaseResult.lot_id == lot_id, ReleaseResult.test_id == "endotoxin"))]
    finally:
        session.close()


def _open_oos(app: Any, lot_id: int) -> int:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return int(session.scalar(select(func.count()).select_from(OosInvestigation).where(
            OosInvestigation.lot_id == lot_id)))
    finally:
        session.close()


def _endotoxin_row_of(page: str) -> str:
    start = page.rindex("<tr", 0, page.index('data-test="endotoxin"'))
    return page[start:page.index("</tr>", start)]


@pytest.mark.parametrize("typed", ["< 0.05", "<0.05"])
def test_below_the_detection_limit_is_entered_as_typed_passes_and_is_shown_and_certified_as_typed(
        app, client_as, lot_id, typed):
    from pypdf import PdfReader

    tech = client_as("technician")
    entered = _enter_endotoxin(tech, lot_id, typed)
    assert entered.status_code == 302, html.unescape(entered.get_data(as_text=True))[:3000]
    assert _endotoxin_rows(app, lot_id) == [(typed, typed)]  # the raw data, not a number made up for it
    assert _open_oos(app, lot_id) == 0

    qa = client_as("qa")
    row = html.unescape(_endotoxin_row_of(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)))
    assert f"{typed} EU/mL" in row and "verdict-pass" in row
    assert f"Endotoxin passed ({typed} EU/mL, so < 0.5 EU/mL)" in row
    state = app.test_client().get(f"/api/v1/release/lots/{lot_id}", headers={
        "Authorization": f"Bearer {api_token_for(app, 'qa')}"}).get_json()
    endotoxin = next(v for v in state["verdicts"] if v["test_id"] == "endotoxin")
    assert endotoxin["value_text"] == f"{typed} EU/mL" and endotoxin["status"] == "pass"
    assert state["overall"] == "ready"

    assert qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release",
                                                             "release-password": PASSWORD}).status_code == 302
    pdf = qa.get(f"/release/lots/{lot_id}/certificate.pdf")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    lines = text.splitlines()
    at = lines.index("Endotoxin")  # the table's row: its cells follow, one a line
    row = " ".join(lines[at:at + 8])
    assert f"< 0.5 EU/mL {typed} EU/mL" in row and "PASS" in row, row


def test_a_detection_limit_above_the_specification_fails_honestly_and_opens_its_oos(app, client_as, lot_id):
    """"< 1 EU/mL" may be 0.9: it does not show the endotoxin is under 0.5 EU/mL."""
    assert _enter_endotoxin(client_as("technician"), lot_id, "< 1").status_code == 302
    assert _endotoxin_rows(app, lot_id) == [("< 1", "< 1")]
    assert _open_oos(app, lot_id) == 1
    row = html.unescape(_endotoxin_row_of(client_as("qa").get(f"/release/lots/{lot_id}").get_data(as_text=True)))
    assert "verdict-fail" in row
    assert "< 1 EU/mL: how far below 1 EU/mL is unknown, so it is not shown to be < 0.5 EU/mL" in row


@pytest.mark.parametrize(("typed", "words"), [
    ("> 5", "'> 5' is above the range of the test, and it cannot show the upper limit (< 0.5 EU/mL) is met"),
    ("<= 0.05", "not <= or >="),
    ("< 0", "is impossible"),
])
def test_what_is_not_a_result_is_refused_naming_the_value_and_nothing_is_written(app, client_as, lot_id, typed, words):
    refused = _enter_endotoxin(client_as("technician"), lot_id, typed)
    assert refused.status_code == 422
    page = html.unescape(refused.get_data(as_text=True))
    assert words in page[page.index('id="result-value"'):]  # beside the value field
    assert _endotoxin_rows(app, lot_id) == [] and _open_oos(app, lot_id) == 0


def test_the_api_takes_it_as_typed(app, users, lot_id):
    answer = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers={
        "Authorization": f"Bearer {api_token_for(app, 'technician')}"}, json={
        "test_id": "endotoxin", "value": "< 0.05", "unit": "EU/mL", "analyst": "Tom QC",
        "tested_on": site_today().isoformat()})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["value"] == "< 0.05"


def test_the_dose_counts_the_detection_limit_as_the_most_the_endotoxin_can_be(app, users, db_session):
    """An OOS batch released as an exception, its endotoxin "< 20 EU/mL": the K/M check of the dose reads 20 EU/mL,
    and refuses the dose as for a measured 20 (tests/integration/test_review4_release_endotoxin.py); read as 0 or
    skipped, the dose would have been offered."""
    from mscbatch.lots.models import Lot
    from mscbatch.patients import inventory
    from mscbatch.release.queries import endotoxin_eu_per_ml
    from tests.integration.test_review4_release_endotoxin import _exceptional_lot_with_endotoxin

    lot_id, named = _exceptional_lot_with_endotoxin(db_session, "SLE-UC-961")
    result = db_session.scalar(select(ReleaseResult).where(ReleaseResult.lot_id == lot_id,
                                                           ReleaseResult.test_id == "endotoxin"))
    from mscbatch.audit.context import use_case

    with use_case(db_session, user(db_session, "technician"), "the test factory's value as a censored one"):
        result.value = result.first_value = "< 20"
    assert endotoxin_eu_per_ml(db_session, [db_session.get(Lot, lot_id)]) == {lot_id: Decimal(20)}
    refused = inventory.calculate(db_session, named.id)
    assert refused.allocation is None and refused.refusal.code == "endotoxin_limit", refused.refusal
