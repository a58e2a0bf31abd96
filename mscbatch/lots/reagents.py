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
from mscbatch.core.culture import UseWindow, use_day_refusal
from mscbatch.core.text import first_invisible
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.models import REAGENT_TYPES, Lot, ProcessStep, ReagentLot, ReagentUse
from mscbatch.lots.queries import identity_key, same_supplier_lot
from mscbatch.lots.services import lock_lot, require_in_process, require_technician
from mscbatch.recall.models import Recall
from mscbatch.recall.queries import IN_FORCE, recall_words
from mscbatch.site import site_day, site_today

CRYO_STAGE = "harvest and cryopreservation"
REAGENT_EXPIRY_EARLIEST = date(2000, 1, 1)
"""No reagent lot in use today expired before 2000: an earlier expiry date is a typing slip (1900 for 2026)."""
REAGENT_EXPIRY_MAX_YEARS = 10
"""A reagent's shelf life is a few years (media and trypsin 1-2, DMSO and frozen serum up to 5): an expiry more
than this many years after today is a typing slip (2207 for 2027) that would silently switch off the
expired-reagent check for that lot (a correction, reagent_lot_corrections, is held to the same window)."""


def reagent_expiry_window(today: date) -> tuple[date, date]:
    """(earliest, latest) expiry date a reagent lot may be registered with, on `today`."""
    year = today.year + REAGENT_EXPIRY_MAX_YEARS
    latest = today.replace(year=year, day=28) if (today.month, today.day) == (2, 29) else today.replace(year=year)
    return REAGENT_EXPIRY_EARLIEST, latest


def checked_expiry(expiry_date: date | None) -> date:
    """The expiry date printed on the reagent: given, and within reagent_expiry_window."""
    if expiry_date is None:
        raise ValidationFailed("Give the expiry date printed on the reagent.", field="expiry_date")
    earliest, latest = reagent_expiry_window(site_today())
    if not earliest <= expiry_date <= latest:
        raise ValidationFailed(
            f"Expiry date: {expiry_date} is not a plausible expiry date for a reagent: it must be between {earliest} "
            f"and {latest} (at most {REAGENT_EXPIRY_MAX_YEARS} years from today). Check the year printed on the "
            "reagent.", field="expiry_date")
    return expiry_date


def registered_text(value: str | None, field: str, label: str, limit: int) -> str:
    text = " ".join((value or "").split())  # one space between words: the identity folds spaces (identity_key)
    if not text or len(text) > limit:
        raise ValidationFailed(f"Give the {label} (at most {limit} characters).", field=field)
    # a character that shows nothing (a zero-width space pasted with a lot number) would make a name no one sees,
    # or a second spelling of a supplier lot that reads exactly as the one a recall notice names
    hidden = first_invisible(text)
    if hidden is not None:
        raise ValidationFailed(f"The {label} holds an invisible character (U+{ord(hidden):04X}): type it again, with "
                               "the letters and digits printed on the reagent only.", field=field)
    return text


def register_reagent_lot(session: Session, actor: Any, *, reagent_type: str, name: str, supplier: str,
                         lot_number: str, expiry_date: date | None) -> ReagentLot:
    require_technician(actor)
    if reagent_type not in REAGENT_TYPES:
        raise ValidationFailed("Choose the reagent type.", field="reagent_type")
    expiry_date = checked_expiry(expiry_date)
    values = dict(reagent_type=reagent_type, name=registered_text(name, "name", "reagent name", 120),
                  supplier=registered_text(supplier, "supplier", "supplier", 120),
                  lot_number=registered_text(lot_number, "lot_number", "supplier's lot number", 60))
    with use_case(session, actor):
        existing = session.scalars(select(ReagentLot).where(
            identity_key(ReagentLot.supplier) == identity_key(values["supplier"]),
            identity_key(ReagentLot.lot_number) == identity_key(values["lot_number"])).order_by(ReagentLot.id)).first()
        if existing is not None:
            raise Conflict(f"{existing.supplier} lot {existing.lot_number} is already registered as reagent lot "
                           f"#{existing.id} ({REAGENT_TYPES[existing.reagent_type]}: {existing.name}, expires "
                           f"{existing.expiry_date}). Use that one: a supplier's lot is registered once, whatever "
                           "its type, so that a recall of it finds every cell lot that used it.", field="lot_number")
        row = ReagentLot(**values, expiry_date=expiry_date, registered_by_id=actor.id)
        session.add(row)
    return row


def link_reagent(session: Session, actor: Any, lot_id: int, reagent_lot_id: int, *, used_on: date | None,
                 step_id: int | None = None) -> ReagentUse:
    """Record that a reagent lot was used for a cell lot at a step (or at harvest / cryopreservation when
    step_id is None). Refused if the reagent had expired on the day of use."""
    require_technician(actor)
    used_on = checked_use_day(used_on)
    with use_case(session, actor, "reagent lot linked"):
        lock_reagent_lots(session, [reagent_lot_id])  # before the cell lot: the order a recall of it takes
        lot = lock_lot(session, lot_id)
        require_in_process(lot, "a reagent")
        reagent = session.get(ReagentLot, reagent_lot_id)
        if reagent is None:
            raise NotFound("Choose a registered reagent lot.", field="reagent_lot_id")
        step = None
        if step_id:
            step = session.get(ProcessStep, step_id)
            if step is None or step.lot_id != lot.id:
                raise NotFound("Choose a step of this lot.", field="step_id")
        stage = step.label if step is not None else CRYO_STAGE
        # a new use: refused when recalled (first, whatever the date) or expired that day; a correction records what
        # happened and only warns of those (reagent_corrections), the window and the duplicate are checked alike
        _refuse_recalled(session, reagent)
        check_use_day(session, lot, step, used_on)
        _refuse_expired(reagent, used_on)
        check_not_recorded(session, lot, reagent, stage)
        use = ReagentUse(lot_id=lot.id, reagent_lot_id=reagent.id, step_id=step_id or None, stage=stage,
                         used_on=used_on, recorded_by_id=actor.id)
        session.add(use)
    return use


def lock_reagent_lots(session: Session, reagent_lot_ids: list[int | None]) -> None:
    """Lock every reagent_lot row of the same supplier lot as these (same_supplier_lot: a recall of one row covers
    them all), in id order, read afresh; ids of no row lock nothing (the caller says what is missing).

    A recall of a reagent lot takes these locks before it lists the cell lots that used it
    (recall.services.lock_target), and a new or corrected use takes them before it locks its cell lot and asks
    whether a recall is active. On PostgreSQL (READ COMMITTED) a use recorded while the recall was being signed
    otherwise saw no recall and the recall did not see the use: the cell lot escaped it. The same order (reagent
    rows in id order, then cell lots) everywhere, so no deadlock. SQLite's BEGIN IMMEDIATE serialises writers
    already."""
    wanted = [row_id for row_id in reagent_lot_ids if row_id]
    if wanted:
        session.scalars(select(ReagentLot).where(ReagentLot.id.in_(same_supplier_lot(wanted)))
                        .order_by(ReagentLot.id).with_for_update(of=ReagentLot)
                        .execution_options(populate_existing=True)).all()


def checked_use_day(used_on: date | None) -> date:
    """The date of use typed: given and not in the future (link_reagent, reagent_corrections)."""
    if used_on is None:
        raise ValidationFailed("Give the date of use.", field="used_on")
    if used_on > site_today():
        raise ValidationFailed("The date of use cannot be in the future.", field="used_on")
    return used_on


def _refuse_recalled(session: Session, reagent: ReagentLot) -> None:
    """A new use of a recalled reagent lot is refused, whatever its date (checked first)."""
    recall = reagent_recall_in_force(session, reagent)
    if recall is not None:
        raise Conflict(f"Recalled reagent refused: {reagent.supplier} lot {reagent.lot_number} is under "
                       f"{recall_words(recall)}. It must not be used. If it was used already, record a deviation "
                       "and tell QA.", field="reagent_lot_id")


def _type_and_name(reagent: ReagentLot) -> str:
    """The reagent's type then its name, the type said once: a lot named after its type ("Fetal bovine serum")
    is not called "Fetal bovine serum Fetal bovine serum"."""
    kind = REAGENT_TYPES[reagent.reagent_type]
    return reagent.name if kind.casefold() in reagent.name.casefold() else f"{kind} {reagent.name}"


def _refuse_expired(reagent: ReagentLot, used_on: date) -> None:
    if reagent.expiry_date < used_on:
        raise Conflict(f"Expired reagent refused: {_type_and_name(reagent)}, "
                       f"{reagent.supplier} lot {reagent.lot_number}, expired on {reagent.expiry_date}, "
                       f"before its use on {used_on}. Use a lot within its expiry date.",
                       field="reagent_lot_id")


def check_use_day(session: Session, lot: Lot, step: ProcessStep | None, used_on: date) -> None:
    """The day of use lies in the step's window (None: harvest and cryopreservation), for a new use or a
    correction alike."""
    refusal = use_day_refusal(used_on, _use_window(session, lot, step))
    if refusal:
        raise ValidationFailed(refusal, field="used_on")


def check_not_recorded(session: Session, lot: Lot, reagent: ReagentLot, stage: str, *,
                       other_than: int | None = None) -> None:
    """The reagent lot is not recorded for the stage already (`other_than`: the use being corrected)."""
    existing = session.scalar(select(ReagentUse.id).where(ReagentUse.lot_id == lot.id,
                                                          ReagentUse.reagent_lot_id == reagent.id,
                                                          ReagentUse.stage == stage,
                                                          ReagentUse.id != (other_than or 0)))
    if existing:
        raise Conflict(f"{reagent.supplier} lot {reagent.lot_number} is already recorded for {stage}.",
                       field="reagent_lot_id")


def uses_outside_their_window(session: Session, lot: Lot, step_ids: set[int | None]) -> list[str]:
    """The recorded reagent uses of the steps `step_ids` (None: harvest and cryopreservation) whose day no longer
    lies in the step's window (_use_window, the rule link_reagent applies), in plain words. A correction of a
    step's or the harvest's date moves these windows: the uses recorded against them are checked again."""
    session.flush()  # the corrected dates, read by _use_window's query of the previous step
    steps = {s.id: s for s in session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot.id))}
    found = []
    for use, reagent in session.execute(select(ReagentUse, ReagentLot).join(
            ReagentLot, ReagentLot.id == ReagentUse.reagent_lot_id).where(ReagentUse.lot_id == lot.id)
            .order_by(ReagentUse.id)).all():
        if use.step_id not in step_ids:
            continue
        window = _use_window(session, lot, steps.get(use.step_id) if use.step_id else None)
        if use_day_refusal(use.used_on, window) is None:
            continue
        span = (f"on {window.first}" if window.first == window.last
                else f"between {window.first} ({window.first_words}) and {window.last} ({window.last_words})")
        found.append(f"{REAGENT_TYPES[reagent.reagent_type]} {reagent.name}, {reagent.supplier} lot "
                     f"{reagent.lot_number}, is recorded as used for {use.stage} on {use.used_on}; with this "
                     f"correction {use.stage} would have used its reagents {span}")
    return found


def reagent_recall_in_force(session: Session, reagent: ReagentLot) -> Recall | None:
    """A recall in force of this supplier lot (active, or completed: recall.queries.IN_FORCE), under any row
    registered for it. A completed recall still bars its reagent lot: a use recorded after it would be a lot that
    can never be released (recalls_covering), so it is refused when it is entered."""
    return session.scalars(select(Recall).where(Recall.scope == "reagent_lot", Recall.status.in_(IN_FORCE),
                                                Recall.reagent_lot_id.in_(same_supplier_lot([reagent.id])))
                           .order_by(Recall.id)).first()


def reagent_recalls_in_force(session: Session, reagent_lot_ids: list[int]) -> dict[int, Recall]:
    """reagent_recall_in_force for many reagent lot rows at once (the lot page's drop-downs): {row id: the first
    recall in force of its supplier lot}, rows under none left out. One query per reagent recall in force."""
    wanted, found = set(reagent_lot_ids), {}
    recalls = session.scalars(select(Recall).where(Recall.scope == "reagent_lot", Recall.status.in_(IN_FORCE))
                              .order_by(Recall.id))
    for recall in recalls.all():
        for row_id in session.scalars(same_supplier_lot([recall.reagent_lot_id])):
            if row_id in wanted:
                found.setdefault(row_id, recall)
    return found


def reagent_choice(reagent: ReagentLot, recall: Recall | None, *, new_use: bool, with_type: bool = True) -> Any:
    """A reagent lot as an option of the lot page's drop-downs, marked as the services judge it: "EXPIRED <date>"
    once its expiry is past (still chosen: a use dated on or before its expiry is recorded, a later one refused by
    _refuse_expired; a correction records the lot really used, with a warning) and "UNDER RECALL R-n" (a new use is
    refused whatever its date, _refuse_recalled, so it is not offered; a correction is recorded with a warning)."""
    kind = f"{REAGENT_TYPES[reagent.reagent_type]}: " if with_type else ""
    expired = reagent.expiry_date < site_today()
    words = (f"{kind}{reagent.name}, {reagent.supplier} lot {reagent.lot_number} "
             f"({'EXPIRED' if expired else 'exp.'} {reagent.expiry_date})")
    if recall is None:
        return reagent.id, words
    if not new_use:
        return reagent.id, f"{words}, UNDER RECALL R-{recall.id}"
    return reagent.id, f"{words}, UNDER RECALL R-{recall.id}: not to be used", {"disabled": True}


def _use_window(session: Session, lot: Lot, step: ProcessStep | None) -> UseWindow:
    """The days a reagent can have been used for the step (None: harvest and cryopreservation): the isolation its
    own day; a passage from the day its cells were seeded to its own date; harvest and cryopreservation from the
    harvest day to the day the bags were frozen (Lot.frozen_at), or to today while the lot is not frozen yet. A
    DMSO dated after the freezing cannot have gone into the bags (and a recall of it would wrongly reach them)."""
    if step is None:
        if lot.harvested_at is None:
            # the step chosen is what is wrong, not the date: said on "Used at" (its field: step_id)
            raise ValidationFailed(f"Used at: lot {lot.lot_number} is not harvested yet: record the harvest first, "
                                   f"then the reagents used for {CRYO_STAGE}. A reagent used before the harvest is "
                                   "recorded at its step (the isolation or a passage).", field="step_id")
        if lot.frozen_at is not None:
            return UseWindow(CRYO_STAGE, site_day(lot.harvested_at), site_day(lot.frozen_at), "the harvest",
                             "the freezing")
        return UseWindow(CRYO_STAGE, site_day(lot.harvested_at), site_today(), "the harvest", "today")
    if step.kind == "isolation":
        return UseWindow("the isolation", step.performed_on, step.performed_on, "the isolation", "the isolation")
    previous = session.scalar(select(ProcessStep).where(
        ProcessStep.lot_id == lot.id,
        ProcessStep.kind == "isolation" if step.passage_number == 0 else
        ProcessStep.passage_number == step.passage_number - 1))
    if previous is None:  # a passage is recorded after its previous step (steps.record_passage): never expected
        return UseWindow(step.label, site_day(lot.collection_at), step.performed_on, "the collection",
                         f"the harvest of {step.label}")
    seeded_at = "the isolation" if previous.kind == "isolation" else previous.label
    return UseWindow(step.label, previous.performed_on, step.performed_on,
                     f"{seeded_at}, when {step.label} was seeded", f"the harvest of {step.label}")
