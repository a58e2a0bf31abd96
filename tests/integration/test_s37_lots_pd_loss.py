"""Session 37, lots: lost cells do not undo doublings. A passage harvesting fewer cells than it seeded (accepted once a
deviation explains it) has a negative PD, which was summed into the cumulative PD checked against the product's
limit: P0 0.001 -> 1000 x10^6 (PD 19.93), P1 1000 -> 1 (PD -9.97, with a deviation), P2 1 -> 1000 showed 19.93
against a limit of 25 while the cells went through ~29.9 doublings. A negative PD now counts as 0 in the
cumulative PD (page, API and the limit alike); the passage's own PD is still shown as computed, and a small loss
never reads "PD -0.00". Through the lot page and the API, on SQLite and PostgreSQL."""
from __future__ import annotations

import html
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from mscbatch.lots import steps
from mscbatch.lots.models import ProcessStep
from tests.conftest import api_token_for
from tests.integration.lot_factories import TODAY, M, approved_adipose_donor, start_lot, user
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)

ISOLATED_DAYS_AGO = 27
#: the days after the isolation P0, P1, P2 are dated: 19.93 doublings at P0 take at least 12.5 days and 9.97 at P2
#: 6.2 days at the product's fastest (15 h each, config/products.toml culture.min_doubling_time)
PASSAGE_DAYS = (13, 17, 24)


def _passages_of(session: Any, lot_id: int) -> list[ProcessStep]:
    session.expire_all()
    return list(session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.kind == "passage")
                                .order_by(ProcessStep.passage_number)))


def _form(number: int, seeded: str, harvested: str) -> dict[str, str]:
    day = TODAY - timedelta(days=ISOLATED_DAYS_AGO - PASSAGE_DAYS[number])
    return {"passage-passage_number": str(number), "passage-performed_on": day.isoformat(),
            "passage-seeded_cells": seeded, "passage-harvested_cells": harvested, "passage-viability_percent": "95"}


def _isolated_lot(session: Any) -> int:
    lot_id = start_lot(session, approved_adipose_donor(session, days_ago=ISOLATED_DAYS_AGO),  # AT-MSC: cumulative
                       days_ago=ISOLATED_DAYS_AGO)  # PD limit 25, warning 20
    steps.record_isolation(session, user(session, "technician"), lot_id,
                           performed_on=TODAY - timedelta(days=ISOLATED_DAYS_AGO))
    session.commit()
    return lot_id


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_a_loss_does_not_lower_the_cumulative_pd_checked_against_the_limit(app, users, db_session,  # noqa: F811
                                                                           client_as):
    lot_id = _isolated_lot(db_session)
    tech = client_as("technician")
    assert tech.post(f"/lots/{lot_id}/passages", data=_form(0, "0.001", "1000")).status_code == 302
    refused = tech.post(f"/lots/{lot_id}/passages", data=_form(1, "1000", "1"))
    text = _text(refused)
    assert refused.status_code == 422, text
    # the refusal no longer says the cumulative PD would be lowered: it is not
    assert ("Cells harvested: 1 x10^6 is fewer than the 1000 x10^6 cells seeded at P1 (PD -9.97). Lost cells do "
            "not undo doublings: a negative PD counts as 0 in the cumulative PD.") in text, text
    assert "would lower" not in text
    p0_id = _passages_of(db_session, lot_id)[0].id
    db_session.rollback()
    assert tech.post(f"/lots/{lot_id}/deviations", data={
        "deviation-step_id": str(p0_id), "deviation-severity": "major",
        "deviation-description": "Flasks contaminated at P1: most cells discarded"}).status_code == 302
    assert tech.post(f"/lots/{lot_id}/passages", data=_form(1, "1000", "1")).status_code == 302
    p1 = _passages_of(db_session, lot_id)[1]
    assert p1.population_doublings == Decimal("-9.97")  # the passage's own PD as computed
    assert p1.cumulative_pd == Decimal("19.93")  # not 9.96: the loss counts as 0
    db_session.rollback()
    page = _text(tech.get(f"/lots/{lot_id}"))
    assert "<td data-label=\"PD\">-9.97</td>" in page and "<td data-label=\"Cumulative PD\">19.93" in page and "9.96" not in page

    # P2 1 -> 1000 x10^6: 19.93 + 0 + 9.97 = 29.90 doublings, beyond the limit of 25 (19.93 before the fix)
    refused = tech.post(f"/lots/{lot_id}/passages", data=_form(2, "1", "1000"))
    text = _text(refused)
    assert refused.status_code == 409, text
    assert "cumulative population doublings 29.90 exceed the product limit 25" in text, text
    assert len(_passages_of(db_session, lot_id)) == 2
    db_session.rollback()

    api = app.test_client().post(f"/api/v1/lots/{lot_id}/passages", headers={
        "Authorization": f"Bearer {api_token_for(app, 'technician')}"}, json={
        "passage_number": 2, "performed_on": _form(2, "", "")["passage-performed_on"], "seeded_cells": 1 * M,
        "harvested_cells": 1000 * M, "viability_percent": "95"})
    assert api.status_code == 409, api.get_json()
    assert "cumulative population doublings 29.90 exceed the product limit 25" in api.get_json()["detail"]
    assert len(_passages_of(db_session, lot_id)) == 2
    db_session.rollback()
    listed = app.test_client().get(f"/api/v1/lots/{lot_id}/steps", headers={
        "Authorization": f"Bearer {api_token_for(app, 'technician')}"}).get_json()
    assert [(s["population_doublings"], s["cumulative_pd"]) for s in listed if s["kind"] == "passage"] == [
        ("19.93", "19.93"), ("-9.97", "19.93")]


def test_a_correction_to_a_loss_recomputes_the_cumulative_pd_with_the_loss_as_zero(app, users, db_session,  # noqa: F811
                                                                                   client_as):
    lot_id = _isolated_lot(db_session)
    tech = client_as("technician")
    for number, seeded, harvested in ((0, "1", "16"), (1, "10", "80")):  # PD 4, then 3: cumulative 4, 7
        assert tech.post(f"/lots/{lot_id}/passages", data=_form(number, seeded, harvested)).status_code == 302
    p1 = _passages_of(db_session, lot_id)[1]
    p1_id, p1_day = p1.id, p1.performed_on.isoformat()
    db_session.rollback()
    assert tech.post(f"/lots/{lot_id}/deviations", data={
        "deviation-step_id": str(p1_id), "deviation-severity": "minor",
        "deviation-description": "P1 count was of a partly detached layer"}).status_code == 302
    fixed = tech.post(f"/lots/{lot_id}/passages/{p1_id}/correction", data={
        f"fix{p1_id}-performed_on": p1_day, f"fix{p1_id}-seeded_cells": "10",
        f"fix{p1_id}-harvested_cells": "5", f"fix{p1_id}-viability_percent": "95",
        f"fix{p1_id}-reason": "harvest count copied from the wrong flask"})
    assert fixed.status_code == 302, _text(fixed)
    p1 = _passages_of(db_session, lot_id)[1]
    assert (p1.population_doublings, p1.cumulative_pd) == (Decimal("-1.00"), Decimal("4.00"))  # not 3.00
    db_session.rollback()


def test_a_small_loss_never_reads_pd_minus_zero(app, users, db_session, client_as):  # noqa: F811
    lot_id = _isolated_lot(db_session)
    tech = client_as("technician")
    assert tech.post(f"/lots/{lot_id}/passages", data=_form(0, "1", "10")).status_code == 302
    refused = _text(tech.post(f"/lots/{lot_id}/passages", data=_form(1, "5", "4.99")))
    assert "Cells harvested: 4.99 x10^6 is fewer than the 5 x10^6 cells seeded at P1 (PD -0.0029)" in refused, refused
    assert "-0.00)" not in refused
    p0_id = _passages_of(db_session, lot_id)[0].id
    db_session.rollback()
    assert tech.post(f"/lots/{lot_id}/deviations", data={
        "deviation-step_id": str(p0_id), "deviation-severity": "minor",
        "deviation-description": "a few cells lost at the wash"}).status_code == 302
    recorded = tech.post(f"/lots/{lot_id}/passages", data=_form(1, "5", "4.99"), follow_redirects=True)
    text = _text(recorded)
    assert "Passage P1 recorded: PD -0.0029, cumulative PD 3.32." in text, text
    assert "<td data-label=\"PD\">-0.0029</td>" in text and "-0.00<" not in text
