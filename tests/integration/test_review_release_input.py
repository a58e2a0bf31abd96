"""Safety review of QA release (DOMAIN.md section 5): odd but plausible release-test input, through the JSON API and
the pages the lab uses, is refused naming the field, never a server error with nothing said."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.release.models import ReleaseResult
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.test_release_support import seed_quarantine_lot

COMMON = {"analyst": "Tom QC", "tested_on": site_today().isoformat()}


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _results(app: Any) -> int:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return int(session.scalar(select(func.count()).select_from(ReleaseResult)) or 0)
    finally:
        session.close()


@pytest.mark.parametrize(("test_id", "value", "unit"), [
    ("viability", "92." + "0" * 70 + "1", "%"),  # 74 characters: a value column holds 60 (PostgreSQL: a 500)
    ("viable_cell_count", "1" + "0" * 80, "cells"),  # 81 digits (written "1e80", it is not a plain number: s39)
    ("endotoxin", "0." + "0" * 69 + "1", "EU/mL"),
])
def test_a_value_with_more_digits_than_a_result_keeps_is_refused_by_the_api_naming_the_field(
        app, lot_id, test_id, value, unit):
    token = api_token_for(app, "technician")
    response = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results",
                                      headers={"Authorization": f"Bearer {token}"},
                                      json={"test_id": test_id, "value": value, "unit": unit, **COMMON})
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert "the value has more digits than a result can keep" in body["detail"]
    assert "value" in body["errors"]
    assert _results(app) == 0


def test_the_flow_panel_and_a_correction_refuse_a_value_too_long_to_keep(app, client_as, lot_id):
    client = client_as("technician")
    panel = {"cd73": "99", "cd90": "98.5", "cd105": "97", "cd45": "0.5", "cd34": "0.2", "cd14": "0.3",
             "cd79a": "0.1", "hla_dr": "0." + "0" * 65 + "4"}
    response = client.post(f"/release/lots/{lot_id}/panel",
                           data={f"panel-{k}": v for k, v in {**panel, **COMMON}.items()})
    assert response.status_code == 422
    assert "HLA-DR: the value has more digits than a result can keep" in response.get_data(as_text=True)
    assert _results(app) == 0

    response = client.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": "viability", "result-value": "92", "result-unit": "%", "result-analyst": "Tom QC",
        "result-tested_on": COMMON["tested_on"]})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    session = app.extensions["mscbatch.db"].new_session()
    result_id = session.scalar(select(ReleaseResult.id))
    session.close()
    response = client.post(f"/release/results/{result_id}/correct",
                           data={"value": "92." + "0" * 70 + "1", "unit": "%", "reason": "typo"})
    assert response.status_code == 422
    assert "Viability: the value has more digits than a result can keep" in response.get_data(as_text=True)


def test_a_result_dated_before_the_lot_was_collected_is_refused_naming_the_test_date(app, client_as, lot_id):
    """A test of this lot cannot predate its collection: such a date is another lot's report or a mistyped year, and
    was accepted (a QA person could release on it)."""
    from datetime import timedelta

    from mscbatch.lots.models import Lot
    from mscbatch.site import site_config

    session = app.extensions["mscbatch.db"].new_session()
    collected = session.get(Lot, lot_id).collection_at.astimezone(site_config().tz).date()
    session.close()
    token = api_token_for(app, "technician")
    before = (collected - timedelta(days=1)).isoformat()
    response = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results",
                                      headers={"Authorization": f"Bearer {token}"},
                                      json={"test_id": "sterility", "value": "negative", "unit": "",
                                            "analyst": "Tom QC", "tested_on": before})
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert f"Test date: {before} is before lot" in response.get_json()["detail"]
    assert "tested_on" in response.get_json()["errors"]
    response = client_as("technician").post(f"/release/lots/{lot_id}/panel", data={
        **{f"panel-{k}": "99" if k.startswith("cd") and k not in ("cd45", "cd34", "cd14", "cd79a") else "0.5"
           for k in ("cd73", "cd90", "cd105", "cd45", "cd34", "cd14", "cd79a", "hla_dr")},
        "panel-analyst": "Tom QC", "panel-tested_on": before})
    assert response.status_code == 422 and "is before lot" in response.get_data(as_text=True)
    assert _results(app) == 0
    response = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results",
                                      headers={"Authorization": f"Bearer {token}"},
                                      json={"test_id": "sterility", "value": "negative", "unit": "",
                                            "analyst": "Tom QC", "tested_on": collected.isoformat()})
    assert response.status_code == 201  # the collection day itself is fine
