"""Correcting a reagent use recorded in error (the wrong lot of trypsin picked, a date of use typed wrong) while the
lot is still in process (EU GMP ch. 4.9: a correction of a record is signed, dated, leaves the original readable and
gives its reason).

Recalls happen by reagent lot (queries.lots_using_reagent reads reagent_use): a wrong reagent lot on the record
would make a recall of it hit this cell lot and a recall of the lot really used miss it. The correction changes the
same row, under the rules of recording it (reagents.check_use_day, check_not_recorded); the audit hook keeps the
old and new value of each changed field with the reason, who and when, and the lot page lists it under Corrections
(record._history). It keeps the reagent type, so the record still names every type the product requires
(reagent_rules): another reagent is added, not corrected into. Once the lot has left "in process" the record is
QA's to judge and is locked, as for the harvest and passage corrections (lots.corrections).

A correction records what already happened: the lot really used is accepted even when it is under recall or had
expired by the day of use (a refusal would leave the record wrong and keep the recall from reaching the cell lot).
In the same transaction the lot's existing bags are held for the recalls that now cover it
(recall.queries.hold_for_recalls: a recall holds the bags existing when it starts), and the correction comes back
with a warning for the technician: record a deviation and tell QA. The other way round is QA's: a use whose
reagent lot is under a recall in force is not corrected to another reagent lot while the recall is in force, since
that would take the cell lot out of the recall (its date of use can still be corrected).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.corrections import correction_reason
from mscbatch.lots.models import REAGENT_TYPES, Bag, Lot, ProcessStep, ReagentLot, ReagentUse
from mscbatch.lots.queries import bags_of, same_supplier_lot
from mscbatch.lots.reagents import (
    check_not_recorded,
    check_use_day,
    checked_use_day,
    lock_reagent_lots,
    reagent_recall_in_force,
)
from mscbatch.lots.services import lock_lot, require_in_process, require_technician
from mscbatch.recall.models import BagHold, Recall
from mscbatch.recall.queries import hold_for_recalls


@dataclass(frozen=True)
class ReagentUseCorrected:
    use: ReagentUse
    warnings: str  # plain words for the technician when the lot really used was recalled or expired; "" otherwise


def correct_reagent_use(session: Session, actor: Any, lot_id: int, use_id: int, *, reagent_lot_id: int | None,
                        used_on: date | None, reason: str | None) -> ReagentUseCorrected:
    """Replace a reagent use's reagent lot (one of the same type) and date of use: within the step's use window
    and not recorded for the stage already, as when it was recorded (reagents.link_reagent). A recalled or expired
    reagent lot is accepted with a warning (and the lot's bags held for the recall); a use of a reagent lot under
    a recall in force keeps its reagent lot while the recall is in force."""
    require_technician(actor)
    why = correction_reason(reason)
    day = checked_use_day(used_on)
    with use_case(session, actor, f"reagent use corrected: {why}"):
        # the reagent lots recorded and corrected to, before the cell lot (the order a recall of either takes:
        # reagents.lock_reagent_lots), so that a recall being started sees the corrected use or refuses/covers it
        seen = session.get(ReagentUse, use_id)
        recorded_id = seen.reagent_lot_id if seen is not None else None
        lock_reagent_lots(session, [recorded_id, reagent_lot_id])
        lot = lock_lot(session, lot_id)
        require_in_process(lot, "a correction of a reagent use")
        use = session.get(ReagentUse, use_id, populate_existing=True)
        if use is None or use.lot_id != lot.id:
            raise NotFound(f"Reagent use #{use_id} is not recorded for lot {lot.lot_number}: choose one of its "
                           "reagent uses.", field="use_id")
        if use.reagent_lot_id != recorded_id:  # corrected by someone else between the first read and the lock
            raise Conflict(f"Reagent use #{use_id} of lot {lot.lot_number} was corrected by someone else a moment "
                           "ago: reload the lot and check it before correcting it again.", field="use_id")
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
        if (use.reagent_lot_id, use.used_on) == (reagent.id, day):
            raise ValidationFailed("Nothing changed: give the corrected reagent lot or date of use.",
                                   field="reagent_lot_id")
        moved = reagent.id != recorded.id
        if moved:
            _refuse_leaving_a_recall(session, lot, recorded, reagent)
        step = session.get(ProcessStep, use.step_id) if use.step_id else None
        check_use_day(session, lot, step, day)
        check_not_recorded(session, lot, reagent, use.stage, other_than=use.id)
        use.reagent_lot_id, use.used_on = reagent.id, day
        recall = reagent_recall_in_force(session, reagent) if moved else None  # a date-only one changes no recall
        if recall is not None:
            session.flush()  # the corrected use, read by recalls_covering
            hold_for_recalls(session, lot, bags_of(session, lot.id))
        warnings = _warnings(session, lot, reagent, day, recall)
    return ReagentUseCorrected(use, warnings)


def _refuse_leaving_a_recall(session: Session, lot: Lot, recorded: ReagentLot, reagent: ReagentLot) -> None:
    """A use of a reagent lot under a recall in force keeps it while the recall is in force (unless the new row is
    the same supplier lot, which the recall covers too): otherwise a technician alone would take the cell lot out
    of the recall (recalls_covering, the recall's report) while its bags stay held. QA judges that."""
    recall = reagent_recall_in_force(session, recorded)
    if recall is None or reagent.id in set(session.scalars(same_supplier_lot([recorded.id]))):
        return
    raise Conflict(f"{recorded.name} lot {recorded.lot_number} is under recall R-{recall.id}, which covers lot "
                   f"{lot.lot_number}: its record cannot be corrected away from it while the recall is in force. "
                   "Ask QA.", field="reagent_lot_id")


def _warnings(session: Session, lot: Lot, reagent: ReagentLot, day: date, recall: Recall | None) -> str:
    """What the technician must act on when the lot really used was recalled or had expired, in plain words."""
    found = []
    if recall is not None:
        held = session.scalar(select(func.count(func.distinct(BagHold.bag_id))).join(Bag, Bag.id == BagHold.bag_id)
                              .where(BagHold.recall_id == recall.id, BagHold.lifted_at.is_(None),
                                     Bag.lot_id == lot.id)) or 0
        if held:
            bags = f"its {held} bag{'s' if held != 1 else ''} {'are' if held != 1 else 'is'} on hold"
        elif bags_of(session, lot.id):
            bags = "none of its bags is left to hold (each was given or discarded)"
        else:
            bags = "the bags frozen from it will be held"
        found.append(f"is under recall R-{recall.id}: lot {lot.lot_number} is now covered by it and {bags}")
    if reagent.expiry_date < day:
        found.append(f"had expired on {reagent.expiry_date}, before its use on {day}")
    if not found:
        return ""
    return f"{reagent.name} lot {reagent.lot_number} " + "; it ".join(found) + ". Record a deviation and tell QA."
