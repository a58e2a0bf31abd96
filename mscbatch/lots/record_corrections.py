"""Every correction of a lot's manufacturing record after first entry, for the printouts and the release review
(EU GMP Annex 11 8.2: printouts of a released batch show whether data changed after first entry).

A pure read of the audit trail, through the same readers the lot page lists its corrections with: the harvest,
passage and reagent-use corrections (lots.record._history), the bag-content corrections (lots.corrections.
bag_corrections), and the corrections of each reagent lot the lot uses (lots.reagent_lot_corrections, listed on the
reagent lot's page too): its name, lot number or expiry date is part of this record, so a correction of it changes
what this record says was used. Each is what was corrected, each value old -> new, who, when (UTC, shown as local
time with UTC) and the reason given. The release review page (QA, before signing; its signature fingerprint includes
them), the certificate of analysis and the lot's trace PDF print the same list.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.identifiers import din_shown
from mscbatch.lots.corrections import bag_corrections
from mscbatch.lots.models import Bag, Lot, ReagentLot, ReagentUse
from mscbatch.lots.reagent_lot_corrections import reagent_lots_corrections
from mscbatch.lots.record import _history
from mscbatch.lots.steps import steps_of


@dataclass(frozen=True)
class RecordCorrection:
    """One correction of the manufacturing record: what, who, when, why and each value old -> new."""

    #: "Harvest", "Passage P0", "Reagent use at P1", "Bag 2 of 4 (DIN ...)",
    #: "Reagent lot DemoBio lot TR-7781 (TrypLE Select, used at P0)"
    what: str
    by: str
    at: datetime
    reason: str
    changes: tuple[tuple[str, str, str], ...]  # (field in words, old, new)

    def change_words(self, arrow: str = "→") -> str:
        """"cells harvested 15 x10^6 cells → 14 x10^6 cells; viability % 95 → 94" (a PDF passes "->": its font
        has no arrow)."""
        return "; ".join(f"{name} {old} {arrow} {new}" for name, old, new in self.changes)

    def fingerprinted(self) -> tuple[object, ...]:
        """What a release signature resting on the review page vouches for (release.release.page_fingerprint)."""
        return (self.what, self.at.isoformat(), self.by, self.reason, self.changes)


def record_corrections(session: Session, lot: Lot) -> list[RecordCorrection]:
    """Every correction of the lot's manufacturing record (harvest, passages, reagent uses, bags' content, the
    reagent lots it used), oldest first. Reads only."""
    steps = steps_of(session, lot.id)
    uses = list(session.scalars(select(ReagentUse).where(ReagentUse.lot_id == lot.id).order_by(ReagentUse.id)))
    _latest, corrected = _history(session, lot, steps, uses)
    found = [RecordCorrection(c.what, c.by, c.at, c.reason, tuple(c.changes)) for c in corrected]
    # every bag of the lot, whatever its status since (a bag corrected in quarantine may have been given since)
    bags = {b.id: b for b in session.scalars(select(Bag).where(Bag.lot_id == lot.id))}
    for fix in bag_corrections(session, list(bags)):
        bag = bags.get(fix.bag_id)
        what = f"Bag {bag.bag_number} of {bag.bag_count} ({din_shown(bag)})" if bag is not None else "Bag"
        found.append(RecordCorrection(what, fix.by, fix.at, fix.reason, tuple(fix.changes)))
    found += reagent_lot_record_corrections(session, uses)
    return sorted(found, key=lambda c: c.at)


def reagent_lot_record_corrections(session: Session, uses: list[ReagentUse]) -> list[RecordCorrection]:
    """The corrections of each reagent lot the lot uses (a use corrected to another reagent lot: the one it names
    now), named as it is registered now and with the steps it was used at, so that QA reads which reagent of this
    record changed: "Reagent lot Gibco lot 2301A (FBS qualified, used at P0, P1)"."""
    return [fix for _reagent_lot_id, fix in reagent_lot_record_corrections_by_lot(session, uses)]


def reagent_lot_record_corrections_by_lot(session: Session,
                                          uses: list[ReagentUse]) -> list[tuple[int, RecordCorrection]]:
    """The same, each with the id of the reagent lot it corrects (the lot page links to it); one read of the trail
    for all of them."""
    stages: dict[int, list[str]] = {}
    for use in sorted(uses, key=lambda u: (u.used_on, u.id)):
        if use.stage not in stages.setdefault(use.reagent_lot_id, []):
            stages[use.reagent_lot_id].append(use.stage)
    corrections = reagent_lots_corrections(session, list(stages))
    found = []
    for reagent in session.scalars(select(ReagentLot).where(ReagentLot.id.in_(list(stages))).order_by(ReagentLot.id)):
        what = (f"Reagent lot {reagent.supplier} lot {reagent.lot_number} ({reagent.name}, used at "
                f"{', '.join(stages[reagent.id])})")
        found += [(reagent.id, RecordCorrection(what, fix.by, fix.at, fix.reason, tuple(fix.changes)))
                  for fix in corrections.get(reagent.id, [])]
    return found
