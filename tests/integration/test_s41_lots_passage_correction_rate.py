"""A passage correction is held to the product's minimum doubling time, as a new passage is: the 1000x slip a
reviewer carried into a lot cannot come back through the correction form (counts or days changed), and a correction
that leaves the counts and days as recorded is not judged again."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.lots.models import ProcessStep
from tests.integration.lot_factories import M, approved_adipose_donor, passages, start_lot
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)


def _p0(session, lot_id):
    return session.scalar(select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 0))


def test_a_thousandfold_count_typed_in_a_correction_is_refused(app, users, db_session, client_as):  # noqa: F811
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(2 * M, 16 * M)])  # 3 PD in 4 days: one every 32 h
    p0 = _p0(db_session, lot_id)
    p0_id, day = p0.id, p0.performed_on.isoformat()
    db_session.rollback()
    tech = client_as("technician")
    form = {f"fix{p0_id}-performed_on": day, f"fix{p0_id}-seeded_cells": "2", f"fix{p0_id}-harvested_cells": "16000",
            f"fix{p0_id}-viability_percent": "95", f"fix{p0_id}-days_in_culture": "4",
            f"fix{p0_id}-reason": "count read again"}
    refused = tech.post(f"/lots/{lot_id}/passages/{p0_id}/correction", data=form)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422, html
    assert "one every 7.4 h" in html and "double no faster than every 15 h" in html, html
    assert _p0(db_session, lot_id).harvested_cells == 16 * M  # nothing changed
    db_session.rollback()

    # the days typed shorter with the counts kept: judged too (0.5 day for 3 doublings: one every 4 h)
    shorter = tech.post(f"/lots/{lot_id}/passages/{p0_id}/correction",
                        data={**form, f"fix{p0_id}-harvested_cells": "16", f"fix{p0_id}-days_in_culture": "0.5"})
    assert shorter.status_code == 422 and "one every 4.0 h" in shorter.get_data(as_text=True)
    db_session.rollback()

    # a real correction (viability read again, counts and days as recorded) goes through
    done = tech.post(f"/lots/{lot_id}/passages/{p0_id}/correction",
                     data={**form, f"fix{p0_id}-harvested_cells": "16", f"fix{p0_id}-viability_percent": "93"})
    assert done.status_code == 302, done.get_data(as_text=True)
    assert float(_p0(db_session, lot_id).viability_percent) == 93
    db_session.rollback()
