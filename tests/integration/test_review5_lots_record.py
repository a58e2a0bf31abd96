"""Review 5 (lab QA) of the manufacturing record, through the lot page: days in culture that the dates cannot
hold, a harvest viability of "-0" or 0 %, no way to correct a typing error of a harvest or passage, and a page
that did not say who moved the lot, recorded the harvest, the freezing or a reagent lot."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.lots import services, steps
from mscbatch.lots.models import Lot, ProcessStep
from tests.integration.lot_factories import (
    TODAY,
    M,
    approved_adipose_donor,
    cryopreserved_lot,
    passages,
    start_lot,
)
from tests.integration.test_donors import db_session, user  # noqa: F401 (fixture)


def _passage(number: int, day: Any, days: str, seeded: str = "2", harvested: str = "16") -> dict[str, str]:
    return {"passage-passage_number": str(number), "passage-performed_on": day.isoformat(),
            "passage-seeded_cells": seeded, "passage-harvested_cells": harvested,
            "passage-viability_percent": "95", "passage-days_in_culture": days}


def _count(session: Any, lot_id: int) -> int:
    found = len(session.scalars(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id,
                                                                ProcessStep.kind == "passage")).all())
    session.rollback()
    return found


def test_days_in_culture_cannot_be_more_than_the_dates_allow(app, users, db_session, client_as):  # noqa: F811
    start = TODAY - timedelta(days=3)
    lot_id = start_lot(db_session, approved_adipose_donor(db_session, days_ago=3), days_ago=3)  # 09:00
    steps.record_isolation(db_session, user(db_session, "technician"), lot_id, performed_on=start)
    db_session.rollback()
    tech = client_as("technician")

    refused = tech.post(f"/lots/{lot_id}/passages", data=_passage(0, start, "7"))  # P0 on the collection day
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422, html
    assert "Days in culture: P0 has 7 days" in html, html
    # the collection's time with its zone and UTC, as every page says an instant (site.local_and_utc)
    collected = re.search(rf"from the collection \(({start:%Y-%m-%d} 09:00 [A-Z+\-0-9]+ \(\d\d:\d\d UTC\))\)", html)
    assert collected, html
    assert _count(db_session, lot_id) == 0

    # 4 -> 4.4 x10^6 in half a day (one doubling every 87 h): counts MSC can grow (culture.min_doubling_time)
    assert tech.post(f"/lots/{lot_id}/passages", data=_passage(0, start, "0.5", "4", "4.4")).status_code == 302
    assert tech.post(f"/lots/{lot_id}/passages", data=_passage(1, TODAY, "3", "4", "30")).status_code == 302
    # P0 0.5 + P1 3 + P2 1 = 4.5 days, but only 3.6 days from 09:00 three days ago to the end of TODAY
    added = tech.post(f"/lots/{lot_id}/passages", data=_passage(2, TODAY, "1", "5", "7"))
    html = added.get_data(as_text=True)
    assert added.status_code == 422 and "P0 to P2 add up to 4.5 days" in html and "only 3.6 days" in html, html
    assert _count(db_session, lot_id) == 2


def _lot_after_p1(session: Any) -> int:
    lot_id = start_lot(session, approved_adipose_donor(session))
    passages(session, lot_id, [(2 * M, 16 * M), (4 * M, 30 * M)])
    session.rollback()
    return lot_id


def _harvest(viability: str, total: str = "30", prefix: str = "harvest", **extra: str) -> dict[str, str]:
    return {f"{prefix}-harvested_at": f"{TODAY.isoformat()}T08:00", f"{prefix}-total_cells": total,
            f"{prefix}-viability_percent": viability, **{f"{prefix}-{k}": v for k, v in extra.items()}}


def _lot(session: Any, lot_id: int) -> Lot:
    lot = session.get(Lot, lot_id)
    session.refresh(lot)
    return lot


def test_a_harvest_viability_with_a_sign_or_of_0_percent_is_refused(app, users, db_session, client_as):  # noqa: F811
    lot_id = _lot_after_p1(db_session)
    tech = client_as("technician")
    for typed, words in (("-0", "without a sign"), ("-5", "without a sign"), ("0", "0 % means no living cell")):
        answer = tech.post(f"/lots/{lot_id}/harvest", data=_harvest(typed))
        assert answer.status_code == 422 and words in answer.get_data(as_text=True), typed
    assert _lot(db_session, lot_id).harvested_at is None
    db_session.rollback()


def test_a_harvest_typo_is_corrected_with_its_reason_while_in_process(app, users, db_session, client_as):  # noqa: F811
    lot_id = _lot_after_p1(db_session)
    tech = client_as("technician")
    assert tech.post(f"/lots/{lot_id}/harvest", data=_harvest("9.5")).status_code == 302  # 95 typed as 9.5
    again = tech.post(f"/lots/{lot_id}/harvest", data=_harvest("95"))
    assert again.status_code == 409 and "Correct the harvest" in again.get_data(as_text=True)

    no_reason = tech.post(f"/lots/{lot_id}/harvest/correction", data=_harvest("95", prefix="harvestfix"))
    assert no_reason.status_code == 422 and "reason for the correction" in no_reason.get_data(as_text=True)
    assert _lot(db_session, lot_id).harvest_viability_percent == 9.5
    db_session.rollback()

    fixed = tech.post(f"/lots/{lot_id}/harvest/correction",
                      data=_harvest("95", prefix="harvestfix", reason="95 typed as 9.5"))
    assert fixed.status_code == 302, fixed.get_data(as_text=True)
    lot = _lot(db_session, lot_id)
    assert (lot.harvest_viability_percent, lot.harvest_viable_cells) == (95, 28_500_000)
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.entity_type == "lot",
                                                       AuditEvent.field == "harvest_viability_percent")
                              .order_by(AuditEvent.seq.desc()))
    assert event.old_value == "9.50" and event.new_value in ("95", "95.00") and "95 typed as 9.5" in event.reason
    db_session.rollback()
    page = tech.get(f"/lots/{lot_id}").get_data(as_text=True)
    assert "Harvest corrected by Technician" in page and "viability % 9.50 → 95" in page

    # a passage entry too: P1 counted 33, typed 30; the PD is computed again
    p1 = db_session.scalar(select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 1))
    pd_before, p1_id, p1_day = p1.cumulative_pd, p1.id, p1.performed_on
    db_session.rollback()
    form = {f"fix{p1_id}-performed_on": p1_day.isoformat(), f"fix{p1_id}-seeded_cells": "4",
            f"fix{p1_id}-harvested_cells": "33", f"fix{p1_id}-viability_percent": "95",
            f"fix{p1_id}-days_in_culture": "4"}
    assert tech.post(f"/lots/{lot_id}/passages/{p1_id}/correction", data=form).status_code == 422  # no reason
    done = tech.post(f"/lots/{lot_id}/passages/{p1_id}/correction", data={**form, f"fix{p1_id}-reason": "33 read as 30"})
    assert done.status_code == 302, done.get_data(as_text=True)
    p1 = db_session.get(ProcessStep, p1_id)
    assert p1.harvested_cells == 33 * M and p1.cumulative_pd > pd_before
    db_session.rollback()
    assert "Passage P1 corrected by Technician" in tech.get(f"/lots/{lot_id}").get_data(as_text=True)


def _step_row(session: Any, step_id: int) -> tuple[Any, ...]:
    step = session.get(ProcessStep, step_id)
    session.refresh(step)
    row = (step.performed_on, step.seeded_cells, step.harvested_cells, step.viability_percent, step.days_in_culture,
           step.population_doublings, step.cumulative_pd)
    session.rollback()
    return row


def _harvest_row(session: Any, lot_id: int) -> tuple[Any, ...]:
    lot = _lot(session, lot_id)
    row = (lot.harvested_at, lot.harvest_total_cells, lot.harvest_viability_percent, lot.harvest_viable_cells)
    session.rollback()
    return row


def test_no_correction_once_the_lot_left_in_process_and_the_page_says_who(app, users, db_session, client_as):  # noqa: F811
    lot_id, _bags = cryopreserved_lot(db_session, approved_adipose_donor(db_session), count=2, with_reagents=True,
                                      placed=True)
    services.transition_lot(db_session, user(db_session, "technician"), lot_id, "quarantine", "ready for QC")
    p0 = db_session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 0))
    step_before, lot_before = _step_row(db_session, p0), _harvest_row(db_session, lot_id)
    tech = client_as("technician")
    refused = tech.post(f"/lots/{lot_id}/harvest/correction", data=_harvest("95", prefix="harvestfix",
                                                                            reason="typo"))
    assert refused.status_code == 409 and "quarantine" in refused.get_data(as_text=True)
    passage = tech.post(f"/lots/{lot_id}/passages/{p0}/correction", data={
        f"fix{p0}-performed_on": TODAY.isoformat(), f"fix{p0}-seeded_cells": "2", f"fix{p0}-harvested_cells": "17",
        f"fix{p0}-viability_percent": "95", f"fix{p0}-reason": "typo"})
    assert passage.status_code == 409
    assert _step_row(db_session, p0) == step_before and _harvest_row(db_session, lot_id) == lot_before

    page = tech.get(f"/lots/{lot_id}").get_data(as_text=True)
    assert "by Technician" in page.split('id="state-since"')[1].split("</p>")[0]
    assert "Reason: ready for QC" in page
    assert 'id="harvest-by">Technician' in page and 'id="frozen-by">recorded by Technician' in page
    assert "recorded by Technician" in page.split('class="reagent-uses"')[1].split("</ul>")[0]
    assert "Correct the harvest" not in page and "Correct P0" not in page
