"""A release result written other than plainly is refused, as the lot record, the patient and the ward refuse it
(s39 lab review: "1e2" was stored as 100 % viability, and "1e30" as a cell count, while the lot forms refused
exponents). Through the API and the page: 422 naming the value, nothing recorded; "<0.05" and "92.5" still pass."""
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
    ("viability", "1e2", "%"),
    ("viability", "9_2", "%"),
    ("viable_cell_count", "1e30", "cells"),
    ("endotoxin", "1e-70", "EU/mL"),
    ("endotoxin", "< 5e-2", "EU/mL"),
    ("endotoxin", "1e999999", "EU/mL"),  # a million digits once written out: refused before it is read
    ("viability", "\uff19\uff12", "%"),  # full-width 92
])
def test_the_api_refuses_a_result_not_written_plainly(app, lot_id, test_id, value, unit):
    token = api_token_for(app, "technician")
    response = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results",
                                      headers={"Authorization": f"Bearer {token}"},
                                      json={"test_id": test_id, "value": value, "unit": unit, **COMMON})
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert "is not a plain number" in body["detail"] and "value" in body["errors"]
    assert _results(app) == 0


def test_the_page_refuses_1e2_percent_and_takes_plain_values(app, client_as, lot_id):
    client = client_as("technician")
    form = {"result-test_id": "viability", "result-unit": "%", "result-analyst": "Tom QC",
            "result-tested_on": COMMON["tested_on"]}
    refused = client.post(f"/release/lots/{lot_id}/results", data={**form, "result-value": "1e2"})
    assert refused.status_code == 422
    assert "Viability: &#39;1e2&#39; is not a plain number" in refused.get_data(as_text=True)
    assert _results(app) == 0
    assert client.post(f"/release/lots/{lot_id}/results", data={**form, "result-value": "92.5"}).status_code == 302
    token = api_token_for(app, "technician")
    censored = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results",
                                      headers={"Authorization": f"Bearer {token}"},
                                      json={"test_id": "endotoxin", "value": "< 0.05", "unit": "EU/mL", **COMMON})
    assert censored.status_code == 201, censored.get_data(as_text=True)[:300]
    assert _results(app) == 2
