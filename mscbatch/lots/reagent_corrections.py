"""Correcting a reagent use recorded in error (the wrong lot of trypsin picked, a date of use typed wrong) while the
lot is still in process (EU GMP ch. 4.9: a correction of a record is signed, dated, leaves the original readable and
gives its reason).

Recalls happen by reagent lot (queries.lots_using_reagent reads reagent_use): a wrong reagent lot on the record
would make a recall of it hit this cell lot and a recall of the lot really used miss it. The correction changes the
same row, under the rules of recording it (reagents.check_use); the audit hook keeps the old and new value of each
changed field with the reason, who and when, and the lot page lists it under Corrections (record._history). It keeps
the reagent type, so the record still names every type the product requires (reagent_rules): another reagent is
added, not corrected into. Once the lot has left "in process" the record is QA's to judge and is locked, as for
the harvest and passage corrections (lots.corrections).
"""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.errors import NotFound, ValidationFailed
from mscbatch.lots.corrections import _reason
from mscbatch.lots.models import REAGENT_TYPES, ProcessStep, ReagentLot, ReagentUse
from mscbatch.lots.reagents import check_use, checked_use_day
from mscbatch.lots.services import lock_lot, require_in_process, require_technician


def correct_reagent_use(session: Session, actor: Any, lot_id: int, use_id: int, *, reagent_lot_id: int | None,
                        used_on: date | None, reason: str | None) -> ReagentUse:
    """Replace a reagent use's reagent lot (one of the same type) and date of use, checked as when it was recorded
    (reagents.link_reagent): not recalled, within the step's use window, not expired that day, not recorded for
    the stage already."""
    require_technician(actor)
    why = _reason(reason)
    day = checked_use_day(used_on)
    with use_case(session, actor, f"reagent use corrected: {why}"):
        lot = lock_lot(session, lot_id)
        require_in_process(lot, "a correction of a reagent use")
        use = session.get(ReagentUse, use_id)
        if use is None or use.lot_id != lot.id:
            raise NotFound(f"Reagent use #{use_id} is not recorded for lot {lot.lot_number}: choose one of its "
                           "reagent uses.", field="use_id")
        reagent = session.get(ReagentLot, reagent_lot_id) if reagent_lot_id else None
        if reagent is None:
            raise NotFound("Choose a registered reagent lot.", field="reagent_lot_id")
        recorded = session.get(ReagentLot, use.reagent_lot_id)
        assert recorded is not None  # a foreign key
        if reagent.reagent_type != recorded.reagent_type:
            raise ValidationFailed(f"A correction keeps the reagent type: {REAGENT_TYPES[recorded.reagent_type]} "
                                   f"was recorded ({recorded.name}, {recorded.supplier} lot {recorded.lot_number}), "
                                   f"not {REAGENT_TYPES[reagent.reagent_type]}; to record another reagent, add it.",
                                   field="reagent_lot_id")
        step = session.get(ProcessStep, use.step_id) if use.step_id else None
        check_use(session, lot, reagent, step, use.stage, day, other_than=use.id)
        if (use.reagent_lot_id, use.used_on) == (reagent.id, day):
            raise ValidationFailed("Nothing changed: give the corrected reagent lot or date of use.",
                                   field="reagent_lot_id")
        use.reagent_lot_id, use.used_on = reagent.id, day
    return use
