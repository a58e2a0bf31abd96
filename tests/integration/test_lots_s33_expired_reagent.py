"""A new use of an expired reagent lot is refused, but a correction records the lot really used even when it had
expired by its day of use, and warned the technician once: the lot then went to quarantine (and on to QA's release)
with the expired reagent unexplained, shown on its page like any other. The lot page now flags such a use, and the
lot goes to quarantine only once a deviation against the step of the use says why (the harvest and
cryopreservation's: against the last passage)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from mscbatch.lots import reagent_corrections, reagents
from mscbatch.lots.models import Lot, ProcessStep, ReagentLot, ReagentUse
from tests.integration.lot_factories import TODAY, approved_adipose_donor, cryopreserved_lot, user
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)


def _lot_with_an_expired_dmso_used(session: Any) -> tuple[int, int]:
    """A frozen lot whose DMSO use was corrected to the lot really used, which had expired the day before."""
    lot_id, _bags = cryopreserved_lot(session, approved_adipose_donor(session), count=2, with_reagents=True,
                                      placed=True)
    tech = user(session, "technician")
    expired = reagents.register_reagent_lot(session, tech, reagent_type="dmso", name="CryoSure DMSO",
                                            supplier="WAK", lot_number="D-OLD-7",
                                            expiry_date=TODAY - timedelta(days=1)).id
    use = session.scalar(select(ReagentUse).join(ReagentLot, ReagentLot.id == ReagentUse.reagent_lot_id)
                         .where(ReagentUse.lot_id == lot_id, ReagentLot.reagent_type == "dmso"))
    corrected = reagent_corrections.correct_reagent_use(session, tech, lot_id, use.id, reagent_lot_id=expired,
                                                        used_on=use.used_on, reason="the old DMSO bottle was used")
    assert "had expired" in corrected.warnings  # the one warning the technician saw
    p1 = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 1))
    session.rollback()
    return lot_id, p1


def _status(session: Any, lot_id: int) -> str:
    status = session.scalar(select(Lot.status).where(Lot.id == lot_id))
    session.rollback()
    return status


def test_an_expired_reagent_in_the_record_needs_a_deviation_before_quarantine(app, users, db_session,  # noqa: F811
                                                                              client_as):
    lot_id, p1 = _lot_with_an_expired_dmso_used(db_session)
    tech = client_as("technician")
    page = tech.get(f"/lots/{lot_id}").get_data(as_text=True)
    assert "EXPIRED when used: a deviation must say why" in page

    refused = tech.post(f"/lots/{lot_id}/transition", data={"transition-target": "quarantine",
                                                            "transition-reason": "ready for QC"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409, text
    assert (f"CryoSure DMSO, WAK lot D-OLD-7, had expired on {TODAY - timedelta(days=1)}, before its use for "
            "harvest and cryopreservation on") in text
    assert "record a deviation against P1 saying why" in text
    assert _status(db_session, lot_id) == "in_process"

    assert tech.post(f"/lots/{lot_id}/deviations", data={
        "deviation-step_id": str(p1), "deviation-severity": "major",
        "deviation-description": "DMSO lot D-OLD-7 used one day past its expiry; QA to assess"}).status_code == 302
    accepted = tech.post(f"/lots/{lot_id}/transition", data={"transition-target": "quarantine",
                                                             "transition-reason": "ready for QC"})
    assert accepted.status_code == 302, accepted.get_data(as_text=True)
    assert _status(db_session, lot_id) == "quarantine"
