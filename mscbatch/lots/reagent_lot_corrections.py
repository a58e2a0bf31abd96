"""Correcting a registered reagent lot typed wrong (its name, supplier, supplier's lot number, expiry date), with a
reason (EU GMP ch. 4.9: a correction of a record is signed, dated, leaves the original readable and gives its reason).

A reagent lot is found by a recall through its supplier and lot number (queries.same_supplier_lot), and its expiry
date decides whether a use was allowed (reagents._refuse_expired): a lot number typed wrong hides the cell lots that
used it from a recall of the real lot, and could not be put right. The correction changes the same row under the
rules of registering it (reagents.checked_expiry, registered_text, one registration per supplier lot); the audit hook
keeps the old and new value of each changed field with the reason, who and when, and the reagent lot's page lists it.

It is refused, nothing changed, when the record it would change is QA's: a cell lot that used it is released or
otherwise closed (its record signed; only lots in process or quarantine, BAG_CORRECTABLE_LOT_STATES, are still
open), or a recall of the reagent lot is in force (the recall names it as it is). A corrected expiry date may not
put a recorded use after the expiry: that use would have been refused.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.corrections import BAG_CORRECTABLE_LOT_STATES, correction_reason, trail_corrections
from mscbatch.lots.models import REAGENT_TYPES, Lot, ReagentLot, ReagentUse
from mscbatch.lots.problems import Problems
from mscbatch.lots.queries import identity_key
from mscbatch.lots.reagents import checked_expiry, lock_reagent_lots, reagent_recall_in_force, registered_text
from mscbatch.lots.services import lock_lot, require_technician
from mscbatch.recall.queries import recall_words

REAGENT_LOT_CORRECTED = "reagent lot corrected"
#: what a correction may change, in the words of the register (the type is not corrected: register the right one)
REAGENT_LOT_FIELDS = {"name": "reagent name", "supplier": "supplier", "lot_number": "supplier's lot number",
                      "expiry_date": "expiry date"}
_TEXT_LIMITS = {"name": 120, "supplier": 120, "lot_number": 60}


def shown_fingerprint(reagent: ReagentLot) -> str:
    """What a correction form showed of the reagent lot, carried by the form (lots.forms.ReagentLotCorrectionForm
    .shown): a page opened before a colleague's correction would send the old values back with its own change, and
    silently undo theirs (a wrong lot number back, hiding its cell lots from a recall of the real one)."""
    shown = "\x1f".join((reagent.name, reagent.supplier, reagent.lot_number, reagent.expiry_date.isoformat()))
    return hashlib.sha256(shown.encode()).hexdigest()[:32]


def _checked(typed: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """The values given (None: kept as recorded), each under its registration rule."""
    checked: dict[str, Any] = {}
    for field, value in typed.items():
        if value is None:
            continue
        if field == "expiry_date":
            checked[field] = problems.check(lambda v=value: checked_expiry(v))
        else:
            checked[field] = problems.check(lambda f=field, v=value: registered_text(
                v, f, REAGENT_LOT_FIELDS[f], _TEXT_LIMITS[f]))
    return checked


def correct_reagent_lot(session: Session, actor: Any, reagent_lot_id: int, *, reason: str | None,
                        name: str | None = None, supplier: str | None = None, lot_number: str | None = None,
                        expiry_date: date | None = None, shown: str | None = None) -> ReagentLot:
    """Replace a reagent lot's name, supplier, lot number and/or expiry date (None: kept as recorded). `shown`: the
    page's shown_fingerprint, refused (409, field "shown") when the reagent lot changed since the page was opened."""
    require_technician(actor)
    problems = Problems()  # every problem of what was typed at once, each on its field
    why = problems.check(lambda: correction_reason(reason))
    new = _checked({"name": name, "supplier": supplier, "lot_number": lot_number, "expiry_date": expiry_date},
                   problems)
    problems.raise_any()
    with use_case(session, actor, f"{REAGENT_LOT_CORRECTED}: {why}"):
        lock_reagent_lots(session, [reagent_lot_id])  # the order a recall of it takes, then its cell lots
        reagent = session.get(ReagentLot, reagent_lot_id)
        if reagent is None:
            raise NotFound(f"No reagent lot with id {reagent_lot_id}: choose a registered reagent lot.")
        if shown is not None and shown != shown_fingerprint(reagent):
            raise Conflict(f"Correction refused: {reagent.supplier} lot {reagent.lot_number} was changed since you "
                           "opened this page (another correction). Look at it again as it is now, then correct what "
                           "is still wrong. Nothing was changed.", field="shown")
        changed = {field: value for field, value in new.items() if value != getattr(reagent, field)}
        if not changed:
            raise ValidationFailed("Nothing changed: give the corrected name, supplier, lot number or expiry date.",
                                   field="name")
        named = f"{reagent.supplier} lot {reagent.lot_number}"
        recall = reagent_recall_in_force(session, reagent)
        if recall is not None:
            raise Conflict(f"Correction refused: {named} is under {recall_words(recall)}, which names it as it is "
                           "recorded. Ask QA: a recalled reagent lot is corrected through the recall. Nothing was "
                           "changed.")
        uses = _uses_locked(session, reagent)
        _refuse_closed_lots(named, uses)
        if "expiry_date" in changed:
            _refuse_uses_after(named, changed["expiry_date"], uses)
            _refuse_clearing_expired_uses(named, reagent.expiry_date, changed["expiry_date"], uses)
        if {"supplier", "lot_number"} & changed.keys():
            _refuse_registered_twice(session, reagent, new.get("supplier", reagent.supplier),
                                     new.get("lot_number", reagent.lot_number))
        for field, value in changed.items():
            setattr(reagent, field, value)
        try:
            session.flush()
        except IntegrityError:  # the same supplier lot registered at this moment by someone else
            raise _twice(f"{new.get('supplier', reagent.supplier)} lot {new.get('lot_number', reagent.lot_number)}",
                         "") from None
    return reagent


def _uses_locked(session: Session, reagent: ReagentLot) -> list[tuple[ReagentUse, Lot]]:
    """The recorded uses of this reagent lot row and their cell lots, each cell lot locked (id order, after the
    reagent rows: a release or a new use at the same moment runs before or after, never in between)."""
    lot_ids = sorted(set(session.scalars(select(ReagentUse.lot_id).where(ReagentUse.reagent_lot_id == reagent.id))))
    lots = {lot_id: lock_lot(session, lot_id) for lot_id in lot_ids}
    uses = session.scalars(select(ReagentUse).where(ReagentUse.reagent_lot_id == reagent.id)
                           .order_by(ReagentUse.lot_id, ReagentUse.used_on, ReagentUse.id))
    return [(use, lots[use.lot_id]) for use in uses]


def _refuse_closed_lots(shown: str, uses: list[tuple[ReagentUse, Lot]]) -> None:
    closed = {lot.lot_number: lot.status for _use, lot in uses
              if lot.status not in BAG_CORRECTABLE_LOT_STATES or lot.locked_at is not None}
    if closed:
        listed = ", ".join(f"{number} ({status.replace('_', ' ')})" for number, status in closed.items())
        several = len(closed) > 1
        raise Conflict(f"Correction refused: {shown} is recorded in the signed, locked record of cell lot"
                       f"{'s' if several else ''} {listed}. {'Their' if several else 'Its'} record can no longer be "
                       "changed here: raise a deviation with QA for the wrong reagent lot details. Nothing was "
                       "changed.")


def _refuse_uses_after(shown: str, expiry: date, uses: list[tuple[ReagentUse, Lot]]) -> None:
    late = [f"lot {lot.lot_number} on {use.used_on} ({use.stage})" for use, lot in uses if use.used_on > expiry]
    if late:
        raise Conflict(f"Expiry date: {expiry} would put recorded uses of {shown} after its expiry: "
                       f"{'; '.join(late)}. Check the expiry date printed on the reagent; if it is right, the reagent "
                       "was used expired: raise a deviation with QA. Nothing was changed.", field="expiry_date")


def _refuse_clearing_expired_uses(shown: str, recorded: date, expiry: date,
                                  uses: list[tuple[ReagentUse, Lot]]) -> None:
    """A use recorded after the recorded expiry is marked "EXPIRED when used" on the lot page and keeps its cell lot
    out of quarantine until a deviation is recorded (lots.services): a later expiry typed here would clear both
    without QA. Such a use is QA's to weigh, not a correction's."""
    cleared = [f"lot {lot.lot_number} on {use.used_on} ({use.stage})" for use, lot in uses
               if recorded < use.used_on <= expiry]
    if cleared:
        raise Conflict(f"Expiry date: {shown} is recorded as expired on {recorded}, and these uses are marked "
                       f"EXPIRED when used: {'; '.join(cleared)}. A later expiry would clear that mark without QA. "
                       "If the recorded expiry was typed wrong, record a deviation against the step of each use and "
                       "ask QA. Nothing was changed.", field="expiry_date")


def _refuse_registered_twice(session: Session, reagent: ReagentLot, supplier: str, lot_number: str) -> None:
    """The corrected supplier lot is not registered already under another row (register_reagent_lot's rule:
    capitals and spaces do not count, whatever the type)."""
    existing = session.scalars(select(ReagentLot).where(
        ReagentLot.id != reagent.id, identity_key(ReagentLot.supplier) == identity_key(supplier),
        identity_key(ReagentLot.lot_number) == identity_key(lot_number)).order_by(ReagentLot.id)).first()
    if existing is not None:
        raise _twice(f"{existing.supplier} lot {existing.lot_number}",
                     f" as reagent lot #{existing.id} ({REAGENT_TYPES[existing.reagent_type]}: {existing.name}, "
                     f"expires {existing.expiry_date})")


def _twice(shown: str, which: str) -> Conflict:
    return Conflict(f"Supplier's lot number: {shown} is already registered{which}. A supplier's lot is registered "
                    "once, so that a recall of it finds every cell lot that used it: check the supplier and lot "
                    "number printed on the reagent. Nothing was changed.", field="lot_number")


@dataclass(frozen=True)
class ReagentLotCorrection:
    """A correction of a reagent lot: who, when, why and each value old -> new (from the audit trail)."""

    by: str
    at: Any
    reason: str
    changes: list[tuple[str, str, str]]


def reagent_lot_corrections(session: Session, reagent_lot_id: int) -> list[ReagentLotCorrection]:
    """Every correction of the reagent lot, oldest first, read off the audit trail (lots.corrections.
    trail_corrections): listed on the reagent lot's page and among the corrections of every cell lot that used it
    (lots.record_corrections)."""
    return reagent_lots_corrections(session, [reagent_lot_id]).get(reagent_lot_id, [])


def reagent_lots_corrections(session: Session, reagent_lot_ids: list[int]) -> dict[int, list[ReagentLotCorrection]]:
    """The corrections of several reagent lots (the ones a cell lot used), in one read, by reagent lot id."""
    found: dict[int, list[ReagentLotCorrection]] = {}
    for fix in trail_corrections(session, ReagentLot.__tablename__, reagent_lot_ids, REAGENT_LOT_FIELDS,
                                 REAGENT_LOT_CORRECTED):
        found.setdefault(fix.entity_id, []).append(ReagentLotCorrection(
            fix.by, fix.at, fix.reason,
            [(REAGENT_LOT_FIELDS[field], old or "—", new or "—") for field, old, new in fix.changes]))
    return found
