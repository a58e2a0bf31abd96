"""Review 5 (mendB): a correction of a passage's or the harvest's date moves the days its reagents can have been
used (lots.reagents.link_reagent's rule). A reagent use recorded against the corrected step, the next step (seeded
on this step's date) or, for the harvest, harvest and cryopreservation must still fit: else the correction is
refused naming the reagent, and nothing changes. Through the lot page."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from mscbatch.lots import reagents
from mscbatch.lots.models import Lot, ProcessStep
from tests.integration.lot_factories import TODAY, M, approved_adipose_donor, passages, start_lot
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)

COLLECTED = TODAY - timedelta(days=20)  # passages(): isolation that day, P0 4 days later, P1 8 days later


def _reagent(session: Any, lot_number: str, reagent_type: str, name: str) -> int:
    row = reagents.register_reagent_lot(session, user(session, "technician"), reagent_type=reagent_type, name=name,
                                        supplier="Acme", lot_number=lot_number,
                                        expiry_date=TODAY + timedelta(days=100))
    session.rollback()
    return row.id


def _link(session: Any, lot_id: int, reagent_id: int, step_id: int | None, day: date) -> None:
    reagents.link_reagent(session, user(session, "technician"), lot_id, reagent_id, used_on=day, step_id=step_id)
    session.rollback()


def _fix(step_id: int, day: date, days: str, reason: str = "date typed wrong") -> dict[str, str]:
    return {f"fix{step_id}-performed_on": day.isoformat(), f"fix{step_id}-seeded_cells": "2",
            f"fix{step_id}-harvested_cells": "16", f"fix{step_id}-viability_percent": "95",
            f"fix{step_id}-days_in_culture": days, f"fix{step_id}-reason": reason}


def _day_of(session: Any, step_id: int) -> date:
    day = session.get(ProcessStep, step_id).performed_on
    session.rollback()
    return day


def test_a_passage_date_correction_is_refused_when_a_reagent_use_no_longer_fits(app, users, db_session,  # noqa: F811
                                                                                 client_as):
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(2 * M, 16 * M), (4 * M, 30 * M)])
    ids = {s.passage_number: s.id for s in db_session.scalars(
        select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.kind == "passage"))}
    db_session.rollback()
    fbs, trypsin = _reagent(db_session, "F-1", "fbs", "FBS"), _reagent(db_session, "T-1", "trypsin", "TrypLE")
    _link(db_session, lot_id, fbs, ids[0], COLLECTED + timedelta(days=4))  # P0's harvest day
    _link(db_session, lot_id, trypsin, ids[1], COLLECTED + timedelta(days=5))  # P1, seeded on P0's day
    tech = client_as("technician")

    earlier = tech.post(f"/lots/{lot_id}/passages/{ids[0]}/correction",
                        data=_fix(ids[0], COLLECTED + timedelta(days=3), "2"))
    text = earlier.get_data(as_text=True)
    assert earlier.status_code == 409, text
    assert "Correction refused: Fetal bovine serum FBS, Acme lot F-1, is recorded as used for P0 on " in text, text
    assert _day_of(db_session, ids[0]) == COLLECTED + timedelta(days=4)

    later = tech.post(f"/lots/{lot_id}/passages/{ids[0]}/correction",
                      data=_fix(ids[0], COLLECTED + timedelta(days=6), "2"))
    text = later.get_data(as_text=True)
    assert later.status_code == 409, text
    assert "Acme lot T-1, is recorded as used for P1 on " in text, text
    assert _day_of(db_session, ids[0]) == COLLECTED + timedelta(days=4)

    fine = tech.post(f"/lots/{lot_id}/passages/{ids[0]}/correction", data=_fix(ids[0], COLLECTED + timedelta(days=4),
                                                                                 "2"))
    assert fine.status_code == 302, fine.get_data(as_text=True)


def test_a_harvest_date_correction_is_refused_when_a_cryopreservation_reagent_no_longer_fits(  # noqa: F811
        app, users, db_session, client_as):  # noqa: F811
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))
    passages(db_session, lot_id, [(2 * M, 16 * M), (4 * M, 30 * M)])
    db_session.rollback()
    tech = client_as("technician")
    two_days_ago = TODAY - timedelta(days=2)
    assert tech.post(f"/lots/{lot_id}/harvest", data={
        "harvest-harvested_at": f"{two_days_ago.isoformat()}T08:00", "harvest-total_cells": "30",
        "harvest-viability_percent": "95"}).status_code == 302
    dmso = _reagent(db_session, "D-1", "dmso", "CryoStor")
    _link(db_session, lot_id, dmso, None, two_days_ago)

    moved = tech.post(f"/lots/{lot_id}/harvest/correction", data={
        "harvestfix-harvested_at": f"{(TODAY - timedelta(days=1)).isoformat()}T08:00", "harvestfix-total_cells": "30",
        "harvestfix-viability_percent": "95", "harvestfix-reason": "harvest day typed wrong"})
    text = moved.get_data(as_text=True)
    assert moved.status_code == 409, text
    assert ("CryoStor, Acme lot D-1, is recorded as used for harvest and cryopreservation on "
            f"{two_days_ago}") in text, text
    lot = db_session.get(Lot, lot_id)
    assert lot.harvested_at.date() == two_days_ago
    db_session.rollback()
