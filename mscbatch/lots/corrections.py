"""Correcting a harvest or a passage entry while the lot is still in process, and a bag's content (volume, cells
per mL, DMSO) until the lot is released (EU GMP ch. 4.9: a correction of a record is signed, dated, leaves the
original readable and gives its reason).

Without it a typing slip (a viability of 0 %, a count a factor 10 off) stranded the lot for good: recording the
harvest again is refused as "already recorded". The correction changes the same rows; the audit hook keeps the old
and new value of each changed field with the reason, who and when. Once the lot has left "in process" the record
is QA's to judge and is locked (the same sequence check as recording, lots.services.require_in_process).

A bag's content is what the dose is calculated from (patients.inventory reads the bag's cells): a cells per mL
typed wrong at cryopreservation is a wrong dose at the bedside. It may be corrected in process and in quarantine
(QA's release review reads it then), never after a release signature, and only for a bag still in stock.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.core.culture import (
    BagPlan,
    CultureError,
    PassageCount,
    check_culture_limits,
    cumulative_population_doublings,
    format_cells,
    plan_cryopreservation,
    population_doublings,
)
from mscbatch.core.identifiers import din_shown
from mscbatch.database import locked_row
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.bags import check_bag_content, check_bag_plan
from mscbatch.lots.models import Bag, ProcessStep
from mscbatch.lots.problems import Problems
from mscbatch.lots.queries import bags_of, product_of
from mscbatch.lots.reagents import uses_outside_their_window
from mscbatch.lots.services import lock_lot, missing_reagents_of, require_in_process, require_technician
from mscbatch.lots.steps import (
    PassageDetails,
    check_against_last_passage,
    check_days_in_culture,
    check_doubling_rate,
    check_growth,
    check_seeding,
    check_step_date,
    checked_harvest,
    checked_passage,
    harvest_checks,
    steps_of,
)
from mscbatch.site import local_and_utc, site_config

MAX_REASON = 500


def correction_reason(text: str | None) -> str:
    reason = (text or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise ValidationFailed(f"Reason for the correction: say what was wrong (at most {MAX_REASON} characters); "
                               "it is kept in the audit trail with the old and new values.", field="reason")
    return reason


def correct_harvest(session: Session, actor: Any, lot_id: int, *, harvested_at: datetime | None, total_cells: int,
                    viability_percent: Decimal | str, reason: str | None) -> Any:
    """Replace the recorded harvest's time, total and viability (viable cells recomputed). Once frozen, the bags
    must still fit in the corrected harvest."""
    require_technician(actor)
    problems = Problems()  # every problem of what was typed at once
    why = problems.check(lambda: correction_reason(reason))
    checked = problems.check(lambda: checked_harvest(harvested_at, total_cells, viability_percent))
    problems.raise_any()
    assert checked is not None
    total, viability = checked
    with use_case(session, actor, f"harvest corrected: {why}"):
        lot = lock_lot(session, lot_id)
        require_in_process(lot, "a correction of the harvest")
        if lot.harvested_at is None:
            raise Conflict(f"No harvest of lot {lot.lot_number} is recorded yet: record it, there is nothing to "
                           "correct.")
        passages = [s for s in steps_of(session, lot.id) if s.kind == "passage"]
        viable = harvest_checks(session, lot, harvested_at, total, viability, passages)
        bags = bags_of(session, lot.id)
        if bags:
            if lot.frozen_at is not None and harvested_at is not None and lot.frozen_at < harvested_at:
                raise ValidationFailed("The harvest cannot be after the freezing "
                                       f"({local_and_utc(lot.frozen_at)}).", field="harvested_at")
            basis = lot.cell_basis or "viable"
            in_bags, available = sum(b.total_cells for b in bags), viable if basis == "viable" else total
            if in_bags > available:
                raise ValidationFailed(f"Total cells: the {len(bags)} bags already frozen hold {format_cells(in_bags)} "
                                       f"{basis} cells, more than the {format_cells(available)} of this corrected "
                                       "harvest.", field="total_cells")
        if (lot.harvested_at, lot.harvest_total_cells, lot.harvest_viability_percent) == (
                harvested_at, total, viability):
            raise ValidationFailed("Nothing changed: give the corrected values.", field="total_cells")
        lot.harvested_at, lot.harvest_total_cells = harvested_at, total
        lot.harvest_viability_percent, lot.harvest_viable_cells = viability, viable
        _refuse_moved_reagent_uses(session, lot, {None}, "harvested_at")
    return lot


def _refuse_moved_reagent_uses(session: Session, lot: Any, step_ids: set[int | None], field: str) -> None:
    """A corrected date moves the days its reagents can have been used (reagents.link_reagent's rule): a reagent
    use recorded against it must still fit, else the record would say a reagent was used when it could not be."""
    outside = uses_outside_their_window(session, lot, step_ids)
    if outside:
        raise Conflict("Correction refused: " + "; ".join(outside) + ". Check the corrected date; if it is right, "
                       "a reagent's date of use is wrong: record a deviation and tell QA. Nothing was changed.",
                       field=field)


def correct_passage(session: Session, actor: Any, lot_id: int, step_id: int, details: PassageDetails,
                    reason: str | None) -> ProcessStep:
    """Replace a passage's date, counts, viability and days; its PD and the cumulative PD of it and every later
    passage are computed again and checked against the product's limits, as when they were recorded."""
    require_technician(actor)
    problems = Problems()  # every problem of what was typed at once
    why = problems.check(lambda: correction_reason(reason))
    checked = problems.check(lambda: checked_passage(details))
    problems.raise_any()
    assert checked is not None
    seeded, harvested, viability, days = checked
    with use_case(session, actor, f"passage corrected: {why}"):
        lot = lock_lot(session, lot_id)
        require_in_process(lot, "a correction of a passage")
        steps = steps_of(session, lot.id)
        step = next((s for s in steps if s.id == step_id and s.kind == "passage"), None)
        if step is None:
            raise NotFound("Choose a passage of this lot.", field="step_id")
        before, after = steps[:steps.index(step)], steps[steps.index(step) + 1:]
        performed_on = details.performed_on
        if performed_on is None:
            raise ValidationFailed("Give the date.", field="performed_on")
        check_step_date(lot, performed_on, before)
        if after and performed_on > after[0].performed_on:
            raise ValidationFailed(f"The date is after the next step {after[0].label} ({after[0].performed_on}).",
                                   field="performed_on")
        if (lot.harvested_at is not None and not after
                and performed_on > lot.harvested_at.astimezone(site_config().tz).date()):
            raise ValidationFailed("The date is after the harvest.", field="performed_on")
        check_seeding(before[-1] if before else None, step.label, seeded)
        if (seeded, harvested) != (step.seeded_cells, step.harvested_cells):  # counts kept as recorded (a date
            # corrected) are not judged again: a passage recorded before this rule stays correctable
            check_growth(session, [*before[-1:], step], step.label, seeded, harvested, "correct")
        if before and (seeded, harvested, days) != (step.seeded_cells, step.harvested_cells, step.days_in_culture):
            # a corrected count or time is held to the doubling time a new passage is (a slip typed again)
            check_doubling_rate(lot, step.label, seeded, harvested, days, before[-1].performed_on, performed_on)
        if after and after[0].seeded_cells is not None and harvested < after[0].seeded_cells:
            raise ValidationFailed(
                f"Cells harvested: {format_cells(harvested)} cannot be less than the "
                f"{format_cells(after[0].seeded_cells)} cells seeded at {after[0].label}, which come from this "
                f"harvest of {step.label}. Check both counts; if {after[0].label}'s seeding is the one typed wrong, "
                f"correct {after[0].label} first.", field="harvested_cells")
        old = (step.performed_on, step.seeded_cells, step.harvested_cells, step.viability_percent,
               step.days_in_culture)
        if old == (performed_on, seeded, harvested, viability, days):
            raise ValidationFailed("Nothing changed: give the corrected values.", field="seeded_cells")
        step.performed_on, step.seeded_cells, step.harvested_cells = performed_on, seeded, harvested
        step.viability_percent, step.days_in_culture = viability, days
        step.population_doublings = population_doublings(seeded, harvested)
        passages = [s for s in steps if s.kind == "passage"]
        limits = product_of(lot).culture_limits
        for index, later in enumerate(passages):
            check_days_in_culture(lot, passages[:index], later.passage_number or 0, later.performed_on,
                                   later.days_in_culture)
            counts = [PassageCount(s.passage_number or 0, s.seeded_cells or 1, s.harvested_cells or 1)
                      for s in passages[:index + 1]]
            later.cumulative_pd = cumulative_population_doublings(counts)
            check = check_culture_limits(later.passage_number or 0, later.cumulative_pd, limits)
            if not check.allowed:
                raise Conflict(f"Correction refused for {lot.product_name}: " + "; ".join(check.refusals) + ".",
                               field="harvested_cells")
            later.warnings = "; ".join(check.warnings)
        if lot.harvest_total_cells is not None and step is passages[-1]:
            check_against_last_passage(session, lot.harvest_total_cells, step)
        _refuse_moved_reagent_uses(session, lot, {step.id} | ({after[0].id} if after else set()), "performed_on")
    return step


#: the lot states in which a bag's content may be corrected: before any release signature. After it the record
#: is signed and locked; a released lot's bags are dealt with by QA (deviation, OOS, recall), not typed over.
BAG_CORRECTABLE_LOT_STATES = ("in_process", "quarantine")
#: what a correction of a bag's content changes (lots.bags.cryopreserve wrote them)
BAG_CONTENT_FIELDS = ("volume_ml", "cells_per_ml", "total_cells", "dmso_percent")
BAG_CONTENT_CORRECTED = "bag content corrected"


def _require_bag_correctable(lot: Any) -> None:
    if lot.status in BAG_CORRECTABLE_LOT_STATES:
        return
    state = lot.status.replace("_", " ")
    if lot.status in ("released", "conditional_release"):
        raise Conflict(f"Lot {lot.lot_number} is {state}: its record was signed at release and is locked, so a "
                       "bag's content can no longer be corrected here. Tell QA: a released lot's bags are dealt "
                       "with by a deviation, an OOS investigation or a recall. Nothing was changed.", field="bag_id")
    raise Conflict(f"Lot {lot.lot_number} is {state}: its record is closed and a bag's content can no longer be "
                   "corrected. Nothing was changed.", field="bag_id")


def correct_bag_content(session: Session, actor: Any, lot_id: int, bag_id: int, *, volume_ml: Decimal | None,
                        cells_per_ml: int | None, dmso_percent: Decimal | None, reason: str | None) -> Bag:
    """Replace a bag's volume, cells per mL and DMSO % recorded at cryopreservation; its total cells follow
    (volume x cells per mL, as cryopreserve computes them). A value given as None is kept as recorded
    (bag_content_kept); "Nothing changed" when every value is kept or equal. The rules of the cryopreservation
    apply again: each value's range and decimals, the product's cells per mL range and DMSO rule
    (check_bag_correction), and all the lot's bags together no more cells than the harvest on the lot's basis.
    In quarantine, a bag now holding DMSO still needs the DMSO lot recorded (the quarantine rule)."""
    require_technician(actor)
    why = correction_reason(reason)
    with use_case(session, actor, f"{BAG_CONTENT_CORRECTED}: {why}"):
        lot = lock_lot(session, lot_id)
        _require_bag_correctable(lot)
        bag = session.get(Bag, bag_id)
        if bag is None or bag.lot_id != lot.id:
            raise NotFound(f"Choose a bag of lot {lot.lot_number}.", field="bag_id")
        bag = locked_row(session, Bag, bag_id, "bag")  # custody (allocation, a hold) moves the bag, not the lot
        if bag.status != "stored":
            raise Conflict(f"Bag {bag.bag_number} of {bag.bag_count} ({din_shown(bag)}) is "
                           f"{bag.status.replace('_', ' ')}: its content is corrected only while it is in stock "
                           "(stored) and allocated to no one. Nothing was changed.", field="bag_id")
        problems = Problems()  # every problem of what was typed at once, each on its field
        plan = check_bag_correction(session, lot, bag, bag_content_kept(bag, volume_ml, cells_per_ml, dmso_percent),
                                    problems)
        problems.raise_any()
        assert plan is not None
        if (bag.volume_ml, bag.cells_per_ml, bag.dmso_percent) == (plan.volume_ml, plan.cells_per_ml,
                                                                   plan.dmso_percent):
            raise ValidationFailed(NOTHING_CHANGED, field="volume_ml")
        bags = bags_of(session, lot.id)
        plans = [plan if other.id == bag.id else BagPlan(other.volume_ml, other.cells_per_ml, other.dmso_percent)
                 for other in bags]
        try:  # the split's own rule (core.culture): the bags together cannot hold more cells than the harvest
            split = plan_cryopreservation(lot.harvest_total_cells or 0, lot.harvest_viable_cells or 0, plans,
                                          basis=lot.cell_basis or "viable")
        except CultureError as error:
            raise _bag_split_refused(bag, plan, error) from None
        bag.volume_ml, bag.cells_per_ml, bag.dmso_percent = plan.volume_ml, int(plan.cells_per_ml), plan.dmso_percent
        bag.total_cells = int(split.bag_cells[[other.id for other in bags].index(bag.id)])  # as cryopreserve stores
        missing = missing_reagents_of(session, lot, bags) if lot.status == "quarantine" else []
        if missing:  # in process, sending the lot to quarantine asks the same; in quarantine it is too late
            raise Conflict(f"Correction refused: lot {lot.lot_number} is in quarantine and its record names no "
                           f"{', no '.join(missing)}; a bag holding DMSO needs the DMSO lot used recorded. Check "
                           "the DMSO %; if it is right, record a deviation and tell QA. Nothing was changed.",
                           field="dmso_percent")
    return bag


NOTHING_CHANGED = ("Nothing changed: give the corrected values. A value left blank keeps the one recorded, so type "
                   "at least the one that is wrong.")


def bag_content_kept(bag: Bag, volume_ml: Decimal | None, cells_per_ml: int | None,
                     dmso_percent: Decimal | None) -> BagPlan:
    """A bag's corrected content, each value given as None kept as the bag records it: the volume alone is
    corrected without retyping the cells per mL and the DMSO %."""
    return BagPlan(volume_ml=bag.volume_ml if volume_ml is None else volume_ml,
                   cells_per_ml=bag.cells_per_ml if cells_per_ml is None else cells_per_ml,
                   dmso_percent=bag.dmso_percent if dmso_percent is None else dmso_percent)


def check_bag_correction(session: Session, lot: Any, bag: Bag, typed: BagPlan, problems: Problems) -> BagPlan | None:
    """A bag's corrected content under the rules of the cryopreservation, its refusals added to `problems` (the page
    reads them before the use case, so that every problem is said at once): each value's range and decimals
    (lots.bags.check_bag_plan), and the product's rules (lots.bags.check_bag_content: cells per mL within the
    product's range, no 0 % DMSO for a product frozen with DMSO or a lot with a DMSO lot recorded). Without the
    product's rules a bag was "corrected" to 400 x10^6 cells per mL or to 0 % DMSO, which its freezing refused.
    As for a passage's counts (correct_passage), a value kept as recorded is not judged again: a bag frozen before
    a rule stays correctable for its other values. Returns the checked content, or None when refused."""
    plan = problems.check(lambda: check_bag_plan(typed, bag.bag_number))
    changed = {name for name, recorded, corrected in (("cells_per_ml", bag.cells_per_ml, typed.cells_per_ml),
                                                      ("dmso_percent", bag.dmso_percent, typed.dmso_percent))
               if corrected != recorded and name not in problems.refused}
    if changed:
        check_bag_content(session, lot, [typed], numbers=[bag.bag_number], judged=changed, problems=problems)
    return plan


def _bag_split_refused(bag: Bag, plan: BagPlan, error: CultureError) -> ValidationFailed:
    """The bags would hold more cells than the harvest: the refusal names the value the correction changed (the
    volume, the cells per mL, or both and the cells they give), on that field."""
    volume_changed = plan.volume_ml != bag.volume_ml
    cells_changed = plan.cells_per_ml != bag.cells_per_ml
    in_bag = (f"{plan.volume_ml.normalize():f} mL x {format_cells(plan.cells_per_ml)}/mL = "
              f"{format_cells(plan.volume_ml * plan.cells_per_ml)} cells in the bag")
    if volume_changed and not cells_changed:
        what, fields = f"volume refused: {in_bag}", ("volume_ml",)
    elif volume_changed:
        what, fields = f"volume and cells per mL refused: {in_bag}", ("volume_ml", "cells_per_ml")
    else:
        what, fields = "cells per mL refused", ("cells_per_ml",)
    message = f"Bag {bag.bag_number}: {what}: {error}. Nothing was changed."
    return ValidationFailed(message, field=fields[0], errors={name: [message] for name in fields})


@dataclass(frozen=True)
class TrailCorrection:
    """One correction of a row read off the audit trail: which row, who, when, why and each field's stored value
    old -> new (None: empty), as the audit hook kept them; the caller puts them in its own words."""

    entity_id: int
    by: str
    at: Any
    reason: str
    changes: list[tuple[str, str | None, str | None]]


def trail_corrections(session: Session, entity_type: str, entity_ids: list[int], fields: Iterable[str],
                      reason_prefix: str) -> list[TrailCorrection]:
    """Every correction of these rows of `entity_type` (a table name), oldest first: the audited updates of the
    fields, under a use case's reason "<reason_prefix>: <reason given>". The fields changed by one correction (the
    same row, reason and moment) are one entry, in the order the trail holds them; the reason is the one given, the
    author by the printed name (the trail keeps the user name the actor had)."""
    from mscbatch.auth.models import User

    if not entity_ids:
        return []
    events = list(session.scalars(select(AuditEvent).where(
        AuditEvent.entity_type == entity_type, AuditEvent.entity_id.in_([str(i) for i in entity_ids]),
        AuditEvent.action == "update", AuditEvent.field.in_(list(fields)),
        AuditEvent.reason.like(f"{reason_prefix}: %")).order_by(AuditEvent.seq)))
    actors = {e.actor_id for e in events if e.actor_id is not None}
    names = {i: n for i, n in session.execute(select(User.id, User.full_name).where(User.id.in_(actors)))}
    grouped: dict[tuple[str | None, str | None, str], TrailCorrection] = {}
    for event in events:
        key = (event.entity_id, event.reason, event.occurred_at.isoformat())
        entry = grouped.setdefault(key, TrailCorrection(
            int(event.entity_id or 0), names.get(event.actor_id, event.actor_name), event.occurred_at,
            (event.reason or "").split(": ", 1)[-1], []))
        entry.changes.append((event.field or "", event.old_value, event.new_value))
    return list(grouped.values())


@dataclass(frozen=True)
class BagCorrection:
    """A corrected bag content: which bag, who, when, why and each value old -> new (from the audit trail)."""

    bag_id: int
    by: str
    at: Any
    reason: str
    changes: list[tuple[str, str, str]]


#: a bag's content fields in the batch record's words
BAG_FIELD_WORDS = {"volume_ml": "volume (mL)", "cells_per_ml": "cells per mL", "total_cells": "cells in the bag",
                   "dmso_percent": "DMSO %"}


def _bag_value(field: str, value: str | None) -> str:
    """A bag's audited value as the lot page shows it: a count as 120 x10^6, nothing as a dash."""
    if not value:
        return "—"
    return format_cells(int(value)) if field in ("cells_per_ml", "total_cells") and value.isdigit() else value


def bag_corrections(session: Session, bag_ids: list[int]) -> list[BagCorrection]:
    """Every correction of the bags' content, oldest first, read off the audit trail (the old and new values, the
    reason, who and when): listed on the lot page next to the bags."""
    return [BagCorrection(fix.entity_id, fix.by, fix.at, fix.reason,
                          [(BAG_FIELD_WORDS[field], _bag_value(field, old), _bag_value(field, new))
                           for field, old, new in fix.changes])
            for fix in trail_corrections(session, Bag.__tablename__, bag_ids, BAG_CONTENT_FIELDS,
                                         BAG_CONTENT_CORRECTED)]
