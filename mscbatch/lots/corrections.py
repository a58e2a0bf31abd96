"""Correcting a harvest or a passage entry while the lot is still in process (EU GMP ch. 4.9: a correction of a
record is signed, dated, leaves the original readable and gives its reason).

Without it a typing slip (a viability of 0 %, a count a factor 10 off) stranded the lot for good: recording the
harvest again is refused as "already recorded". The correction changes the same rows; the audit hook keeps the old
and new value of each changed field with the reason, who and when. Once the lot has left "in process" the record
is QA's to judge and is locked (the same sequence check as recording, lots.services.require_in_process).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.culture import (
    PassageCount,
    check_culture_limits,
    cumulative_population_doublings,
    format_cells,
    population_doublings,
)
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.models import ProcessStep
from mscbatch.lots.queries import bags_of, product_of
from mscbatch.lots.reagents import uses_outside_their_window
from mscbatch.lots.services import lock_lot, require_in_process, require_technician
from mscbatch.lots.steps import (
    PassageDetails,
    check_against_last_passage,
    check_days_in_culture,
    check_seeding,
    check_step_date,
    checked_cells,
    checked_passage,
    checked_viability,
    harvest_checks,
    steps_of,
)
from mscbatch.site import site_config

MAX_REASON = 500


def _reason(text: str | None) -> str:
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
    why = _reason(reason)
    total = checked_cells(total_cells, "total_cells", "Total cells")
    viability = checked_viability(viability_percent, harvest=True)
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
                                       f"({lot.frozen_at:%Y-%m-%d %H:%M} UTC).", field="harvested_at")
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
    why = _reason(reason)
    seeded, harvested, viability, days = checked_passage(details)
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
