"""Reagent lots (medium, platelet lysate or FBS, trypsin, DMSO...) and their use by cell lots.

DOMAIN.md section 4: reagent lots are recorded because recalls happen by reagent lot too: every cell lot that
used a reagent lot must be found (queries.lots_using_reagent). An expired reagent may not be used: linking a
reagent whose expiry date is before the date of use is refused (GMP: materials used within their shelf life).
"""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.models import REAGENT_TYPES, ProcessStep, ReagentLot, ReagentUse
from mscbatch.lots.services import lock_lot, require_in_process, require_technician
from mscbatch.recall.queries import active_recall_of, recall_words
from mscbatch.site import site_today

CRYO_STAGE = "harvest and cryopreservation"


def _text(value: str | None, field: str, label: str, limit: int) -> str:
    text = (value or "").strip()
    if not text or len(text) > limit:
        raise ValidationFailed(f"Give the {label} (at most {limit} characters).", field=field)
    return text


def register_reagent_lot(session: Session, actor: Any, *, reagent_type: str, name: str, supplier: str,
                         lot_number: str, expiry_date: date | None) -> ReagentLot:
    require_technician(actor)
    if reagent_type not in REAGENT_TYPES:
        raise ValidationFailed("Choose the reagent type.", field="reagent_type")
    if expiry_date is None:
        raise ValidationFailed("Give the expiry date printed on the reagent.", field="expiry_date")
    values = dict(reagent_type=reagent_type, name=_text(name, "name", "reagent name", 120),
                  supplier=_text(supplier, "supplier", "supplier", 120),
                  lot_number=_text(lot_number, "lot_number", "supplier's lot number", 60))
    with use_case(session, actor):
        duplicate = session.scalar(select(ReagentLot.id).where(
            ReagentLot.reagent_type == reagent_type, ReagentLot.supplier == values["supplier"],
            ReagentLot.lot_number == values["lot_number"]))
        if duplicate:
            raise Conflict(f"{values['supplier']} lot {values['lot_number']} is already registered.",
                           field="lot_number")
        row = ReagentLot(**values, expiry_date=expiry_date, registered_by_id=actor.id)
        session.add(row)
    return row


def link_reagent(session: Session, actor: Any, lot_id: int, reagent_lot_id: int, *, used_on: date | None,
                 step_id: int | None = None) -> ReagentUse:
    """Record that a reagent lot was used for a cell lot at a step (or at harvest / cryopreservation when
    step_id is None). Refused if the reagent had expired on the day of use."""
    require_technician(actor)
    if used_on is None:
        raise ValidationFailed("Give the date of use.", field="used_on")
    if used_on > site_today():
        raise ValidationFailed("The date of use cannot be in the future.", field="used_on")
    with use_case(session, actor, "reagent lot linked"):
        lot = lock_lot(session, lot_id)
        require_in_process(lot, "a reagent")
        reagent = session.get(ReagentLot, reagent_lot_id)
        if reagent is None:
            raise NotFound("Choose a registered reagent lot.", field="reagent_lot_id")
        stage = CRYO_STAGE
        if step_id:
            step = session.get(ProcessStep, step_id)
            if step is None or step.lot_id != lot.id:
                raise NotFound("Choose a step of this lot.", field="step_id")
            stage = step.label
        if reagent.expiry_date < used_on:
            raise Conflict(f"Expired reagent refused: {REAGENT_TYPES[reagent.reagent_type]} {reagent.name}, "
                           f"{reagent.supplier} lot {reagent.lot_number}, expired on {reagent.expiry_date}, "
                           f"before its use on {used_on}. Use a lot within its expiry date.",
                           field="reagent_lot_id")
        recall = active_recall_of(session, "reagent_lot", reagent.id)
        if recall is not None:
            raise Conflict(f"Recalled reagent refused: {reagent.supplier} lot {reagent.lot_number} is under "
                           f"{recall_words(recall)}. It must not be used. If it was used already, record a deviation "
                           "and tell QA.", field="reagent_lot_id")
        existing = session.scalar(select(ReagentUse.id).where(ReagentUse.lot_id == lot.id,
                                                              ReagentUse.reagent_lot_id == reagent.id,
                                                              ReagentUse.stage == stage))
        if existing:
            raise Conflict(f"{reagent.supplier} lot {reagent.lot_number} is already recorded for {stage}.",
                           field="reagent_lot_id")
        use = ReagentUse(lot_id=lot.id, reagent_lot_id=reagent.id, step_id=step_id or None, stage=stage,
                         used_on=used_on, recorded_by_id=actor.id)
        session.add(use)
    return use
