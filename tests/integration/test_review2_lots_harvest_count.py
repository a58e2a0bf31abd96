"""Review 2 of lots: the harvest's total cells were never compared with the last passage's count, so a typing
error of a factor 10 or 1000 went into the record and set the number of doses. The harvest counts the cells of
the last passage: more than that count (plus 10 % counting error) is refused; less than half needs a deviation
against that passage first (core.culture.check_harvest_count). Through the lot page and the API."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mscbatch.lots.models import Lot, ProcessStep
from tests.conftest import api_token_for
from tests.integration.lot_factories import TODAY, M, approved_adipose_donor, passages, start_lot
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)


def _lot_after_p1(session: Any) -> int:
    """An adipose lot whose last passage P1 counted 30 x10^6 cells at its end."""
    lot_id = start_lot(session, approved_adipose_donor(session))
    passages(session, lot_id, [(2 * M, 16 * M), (4 * M, 30 * M)])
    session.rollback()
    return lot_id


def _harvest_form(total_millions: str) -> dict[str, str]:
    return {"harvest-harvested_at": f"{TODAY.isoformat()}T08:00", "harvest-total_cells": total_millions,
            "harvest-viability_percent": "95"}


def _harvested(session: Any, lot_id: int) -> int | None:
    total = session.scalar(select(Lot.harvest_total_cells).where(Lot.id == lot_id))
    session.rollback()
    return total


def test_a_harvest_ten_times_the_last_passage_count_is_refused_on_the_lot_page(app, users, db_session, client_as):  # noqa: F811
    lot_id = _lot_after_p1(db_session)
    tech = client_as("technician")
    page = tech.get(f"/lots/{lot_id}").get_data(as_text=True)
    assert "Passage P1 counted 30 x10^6 at its end: the harvest total is between 15 x10^6 and 33 x10^6" in page

    refused = tech.post(f"/lots/{lot_id}/harvest", data=_harvest_form("300"))  # 30 typed as 300
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert ("300 x10^6 total cells is more than the 30 x10^6 cells counted at the end of the last passage P1 "
            "(at most 33 x10^6, allowing 10 % counting error)") in text
    assert "typing error" in text and _harvested(db_session, lot_id) is None

    assert tech.post(f"/lots/{lot_id}/harvest", data=_harvest_form("32")).status_code == 302  # within 10 %
    assert _harvested(db_session, lot_id) == 32 * M


def test_the_api_refuses_a_harvest_above_the_count_naming_harvest_total_cells(app, users, db_session):  # noqa: F811
    lot_id = _lot_after_p1(db_session)
    answer = app.test_client().post(
        f"/api/v1/lots/{lot_id}/harvest", headers={"Authorization": f"Bearer {api_token_for(app, 'technician')}"},
        json={"harvested_at": f"{TODAY.isoformat()}T08:00:00+00:00", "total_cells": 30_000 * M,
              "viability_percent": "95"})  # 30 x10^6 typed in thousands
    assert answer.status_code == 422
    problem = answer.get_json()
    assert "30000 x10^6 total cells is more than the 30 x10^6 cells counted" in problem["detail"]
    assert problem["errors"]["harvest_total_cells"] == [problem["detail"]]
    assert _harvested(db_session, lot_id) is None


def test_a_harvest_below_half_the_count_needs_a_deviation_against_the_last_passage(app, users, db_session, client_as):  # noqa: F811
    lot_id = _lot_after_p1(db_session)
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    body = {"harvested_at": f"{TODAY.isoformat()}T08:00:00+00:00", "total_cells": 3 * M, "viability_percent": "95"}
    low = app.test_client().post(f"/api/v1/lots/{lot_id}/harvest", headers=headers, json=body)  # 30 typed as 3
    assert low.status_code == 422
    assert ("3 x10^6 total cells is less than 50 % of the 30 x10^6 cells counted at the end of the last passage P1"
            in low.get_json()["detail"])
    assert "record a deviation against passage P1" in low.get_json()["detail"]

    p1 = db_session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id,
                                                        ProcessStep.passage_number == 1))
    db_session.rollback()
    recorded = client_as("technician").post(f"/lots/{lot_id}/deviations", data={
        "deviation-step_id": str(p1), "deviation-severity": "major",
        "deviation-description": "Flask dropped during the P1 harvest: most cells lost"})
    assert recorded.status_code == 302
    accepted = app.test_client().post(f"/api/v1/lots/{lot_id}/harvest", headers=headers, json=body)
    assert accepted.status_code == 200, accepted.get_json()
    assert accepted.get_json()["harvest_total_cells"] == 3 * M
