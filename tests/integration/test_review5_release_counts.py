"""Review 5 (labqa), release results through the pages a technician and QA use: the viable cell count typed in
x10^6 cells like every other count, set against the harvest of the manufacturing record; release refusals said
above the form, not under the password; no "correct" link on a released lot; decimal commas and "-0"."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.lots.models import Lot
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OosInvestigation, ReleaseResult
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.test_labelling import pdf_text
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen

COMMON = {"analyst": "Tom QC", "tested_on": site_today().isoformat()}


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    """The demo adipose lot in quarantine: harvest 132 x10^6 cells at 93.5 %, 123.42 x10^6 viable."""
    return seed_quarantine_lot(app, monkeypatch)


def _text(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def _one(client: Any, lot_id: int, test_id: str, value: str, unit: str) -> Any:
    return client.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": test_id, "result-value": value, "result-unit": unit,
        **{f"result-{k}": v for k, v in COMMON.items()}})


def _rows(app: Any, lot_id: int, test_id: str) -> list[str]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return list(session.scalars(select(ReleaseResult.value).where(ReleaseResult.lot_id == lot_id,
                                                                      ReleaseResult.test_id == test_id)))


def _panel_with_count(app: Any, lot_id: int, count: str, skip: tuple[str, ...] = ()) -> None:
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, {"viable_cell_count": (count, "cells")}, skip=skip)


def test_the_viable_cell_count_is_typed_in_millions_on_the_page_and_shown_in_millions(app, client_as, lot_id):
    client = client_as("technician")
    form = client.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert '<option value="x10^6 cells">x10^6 cells</option>' in form
    assert '<option value="cells">' not in form  # whole cells, "200" read as 200 cells, was the trap
    response = _one(client, lot_id, "viable_cell_count", "120", "x10^6 cells")
    assert response.status_code == 302, _text(response)[:600]
    assert _rows(app, lot_id, "viable_cell_count") == ["120000000"]  # kept in whole cells, as before
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(OosInvestigation.id)) is None  # 120 x10^6 >= 100 x10^6: no OOS
    page = _text(client.get(f"/release/lots/{lot_id}"))
    assert "120 x10^6 cells" in page and "120000000" not in page
    assert "Manufacturing record: 123.42 x10^6 viable cells at harvest" in page
    # corrected in millions too, and a count below one cell is refused naming the unit typed
    result_id = _result_id(app, lot_id, "viable_cell_count")
    correction = client.get(f"/release/results/{result_id}/correct").get_data(as_text=True)
    assert 'value="120"' in correction and 'value="x10^6 cells"' in correction
    assert "Correct the Viable cell count result" in _text(client.get(f"/release/results/{result_id}/correct"))
    refused = _one(client, lot_id, "viable_cell_count", "0.0000001", "x10^6 cells")
    assert refused.status_code == 422 and "0.0000001 x10^6 cells is impossible" in _text(refused)


def test_a_count_typed_as_whole_cells_through_the_api_reads_as_millions_beside_the_limit(app, client_as, lot_id):
    from tests.conftest import api_token_for

    token = api_token_for(app, "technician")
    response = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers={
        "Authorization": f"Bearer {token}"}, json={"test_id": "viable_cell_count", "value": "200", "unit": "cells",
                                                     **COMMON})
    assert response.status_code == 201, response.get_json()
    page = _text(client_as("qa").get(f"/release/lots/{lot_id}"))
    assert "0.0002 x10^6 cells < 100 x10^6 cells" in page  # not "200 cells < 100 x10^6 cells"


def _result_id(app: Any, lot_id: int, test_id: str) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return int(session.scalar(select(ReleaseResult.id).where(ReleaseResult.lot_id == lot_id,
                                                                  ReleaseResult.test_id == test_id)))


def test_a_viable_count_above_the_harvest_blocks_release_until_qa_justifies_it(app, client_as, lot_id):
    _panel_with_count(app, lot_id, "500000000")  # 500 x10^6 > 123.42 x10^6 viable at harvest
    qa = client_as("qa")
    page = _text(qa.get(f"/release/lots/{lot_id}"))
    assert ("Viable cell count 500 x10^6 cells is more than the 123.42 x10^6 viable cells of the lot's harvest "
            "(manufacturing record)") in page
    assert "Nothing blocks the release" not in page
    assert "The result is above it: to resolve before release" in page

    refused = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release", "release-password": PASSWORD})
    assert refused.status_code == 409
    body = refused.get_data(as_text=True)
    assert "Release refused: Viable cell count 500 x10^6 cells is more than" in _text(refused)
    assert 'id="release-password-error"' not in body  # a refusal is not a password problem
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).status == "quarantine"

    why = "Counted on the pooled cryo bags by a second method; the harvest count under-read (CAPA-12)"
    signed = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id),
        "action": "release", "release-password": PASSWORD, "release-count_justification": why})
    assert signed.status_code == 302, _text(signed)[:800]
    after = _text(qa.get(f"/release/lots/{lot_id}"))
    assert "The result is above it" not in after  # justified by the signed release
    coa = pdf_text(qa.get(f"/release/lots/{lot_id}/certificate.pdf").data)
    assert f"viable cell count above the harvest justified: {why}" in " ".join(coa.split())


def test_a_count_within_the_harvest_does_not_block(app, client_as, lot_id):
    _panel_with_count(app, lot_id, "120000000")
    page = _text(client_as("qa").get(f"/release/lots/{lot_id}"))
    assert "Nothing blocks the release" in page and "The result is above it" not in page


def test_a_release_refusal_is_said_above_the_form_not_under_the_password(app, client_as, lot_id):
    _panel_with_count(app, lot_id, "120000000", skip=("cd73", "cd90", "cd105", "cd45", "cd34", "cd14_or_cd11b",
                                                      "cd79a_or_cd19", "hla_dr"))
    _one(client_as("technician"), lot_id, "cd105", "94", "%")  # fails: an OOS opens, a reason to refuse
    refused = client_as("qa").post(f"/release/lots/{lot_id}/release",
                                   data={**seen(client_as("qa"), lot_id), "action": "release", "release-password": PASSWORD})
    assert refused.status_code == 409
    assert "Release refused:" in _text(refused) and "CD105 failed" in _text(refused)
    assert 'id="release-password-error"' not in refused.get_data(as_text=True)


def test_a_released_lot_offers_no_correct_link_and_a_forged_correction_says_corrected(app, client_as, lot_id):
    _panel_with_count(app, lot_id, "120000000")
    qa = client_as("qa")
    assert qa.post(f"/release/lots/{lot_id}/release",
                   data={**seen(qa, lot_id), "action": "release", "release-password": PASSWORD}).status_code == 302
    tech = client_as("technician")
    page = tech.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert "/correct" not in page
    result_id = _result_id(app, lot_id, "viability")
    shown = _text(tech.get(f"/release/results/{result_id}/correct"))
    assert "this result can no longer be corrected" in shown and "Save the correction" not in shown
    forged = tech.post(f"/release/results/{result_id}/correct",
                       data={"value": "93", "unit": "%", "reason": "re-read the counter"})
    assert forged.status_code == 409
    assert "results can no longer be entered or corrected" in _text(forged)


def test_a_decimal_comma_is_refused_and_minus_zero_is_kept_as_zero(app, client_as, lot_id):
    client = client_as("technician")
    comma = _one(client, lot_id, "viability", "9,5", "%")
    assert comma.status_code == 422
    assert "'9,5' is not a number: write the decimal point, as in 9.5" in _text(comma)
    assert _rows(app, lot_id, "viability") == []
    assert _one(client, lot_id, "cd45", "-0", "%").status_code == 302
    assert _rows(app, lot_id, "cd45") == ["0"]
    assert "-0 %" not in _text(client.get(f"/release/lots/{lot_id}"))
