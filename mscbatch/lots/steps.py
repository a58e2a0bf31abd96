"""The manufacturing record: isolation, passages P0..Pn, deviations and the harvest (DOMAIN.md section 4).

Population doublings are computed by the pure core (PD = log2(harvested / seeded), cumulative PD summed
unrounded over P0..Pn, a negative PD counting as 0) and compared to the product's limits (config/products.toml, culture): beyond the limit
the passage is refused (MSC senesce and may drift genetically in long culture, so the product specification
caps passages and doublings); at the warning level it is recorded with its warning shown and kept.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.bounds import FIRST_DAY, plausible_instant
from mscbatch.core.culture import (
    CultureError,
    PassageCount,
    check_culture_limits,
    check_doubling_time,
    check_harvest_count,
    check_viability_percent,
    cumulative_population_doublings,
    format_cells,
    format_pd,
    population_doublings,
    viable_cells,
)
from mscbatch.database import utcnow
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.models import DEVIATION_SEVERITIES, Deviation, Lot, ProcessStep
from mscbatch.lots.problems import Problems
from mscbatch.lots.queries import product_of
from mscbatch.lots.services import at_most_decimals, lock_lot, require_in_process, require_technician
from mscbatch.site import local_and_utc, site_config, site_day, site_today

MAX_CELLS = 10**13


def steps_of(session: Session, lot_id: int) -> list[ProcessStep]:
    """Isolation first, then P0, P1 ..."""
    rows = session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot_id))
    return sorted(rows, key=lambda s: (s.kind != "isolation", s.passage_number or 0))


def checked_cells(value: Any, field: str, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationFailed(f"{label}: a whole number of cells greater than 0.", field=field)
    if value >= MAX_CELLS:  # the rule broken is the size, not "greater than 0" (as the forms' millions() says)
        raise ValidationFailed(f"{label}: far too many: {format_cells(value)} cells; a count must be less than "
                               f"{format_cells(MAX_CELLS)} (10^13 cells). Check the unit: the forms take counts in "
                               "millions of cells (x10^6), such as 12.5.", field=field)
    return value


def checked_viability(value: Any, field: str = "viability_percent", *, harvest: bool = False) -> Decimal:
    """A harvest's or a passage's viability (%): no sign, 0 to 100, at most 2 decimals, and above 0 for either: 0 %
    is no living cell, to freeze or to seed the next passage with (a passage at 0 % was recorded without a word)."""
    text = str(value).strip()
    if text[:1] in ("+", "-"):
        raise ValidationFailed(f"Viability: {text} %? Give the percentage without a sign (0 to 100).", field=field)
    try:
        viability = check_viability_percent(Decimal(text))
    except (CultureError, ArithmeticError, ValueError):
        raise ValidationFailed("Viability: a percentage between 0 and 100.", field=field) from None
    # the columns keep 2 decimals: 95.555 % was rounded to 95.56 silently (and the viable cells computed from it)
    viability = at_most_decimals(viability, 2, field, "Viability:", "92.55 %")
    if not viability:
        use = "to freeze" if harvest else "to seed the next passage or harvest"
        raise ValidationFailed(f"Viability: 0 % means no living cell {use}. Check the count; if the cells really "
                               "died, record a deviation and ask QA to reject the lot.", field=field)
    return viability


def check_step_date(lot: Lot, performed_on: date | None, previous: list[ProcessStep]) -> date:
    if performed_on is None:
        raise ValidationFailed("Give the date.", field="performed_on")
    if performed_on > site_today():
        raise ValidationFailed("The date cannot be in the future.", field="performed_on")
    collected_on = site_day(lot.collection_at)
    if performed_on < collected_on:
        raise ValidationFailed(f"The date is before the collection ({collected_on:%Y-%m-%d}).", field="performed_on")
    if previous and performed_on < previous[-1].performed_on:
        raise ValidationFailed(f"The date is before the previous step {previous[-1].label} "
                               f"({previous[-1].performed_on}).", field="performed_on")
    return performed_on


def checked_days(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        days = Decimal(str(value))
    except ArithmeticError:
        raise ValidationFailed("Days in culture: a number.", field="days_in_culture") from None
    if not days.is_finite():
        raise ValidationFailed("Days in culture: a number.", field="days_in_culture")
    if not Decimal(0) < days <= Decimal(365):
        raise ValidationFailed("Days in culture: more than 0 and at most 365.", field="days_in_culture")
    # the column keeps 1 decimal: 6.25 days were rounded to 6.2 silently
    return at_most_decimals(days, 1, "days_in_culture", "Days in culture:", "6.5")


def checked_passage(details: PassageDetails) -> tuple[int, int, Decimal, Decimal | None]:
    """A passage's counts, viability and days in culture as typed, each checked: recording and correcting a passage
    read them alike."""
    problems = Problems()
    seeded = problems.check(lambda: checked_cells(details.seeded_cells, "seeded_cells", "Cells seeded"))
    harvested = problems.check(lambda: checked_cells(details.harvested_cells, "harvested_cells", "Cells harvested"))
    viability = problems.check(lambda: checked_viability(details.viability_percent))
    days = problems.check(lambda: checked_days(details.days_in_culture))
    problems.raise_any()
    assert seeded is not None and harvested is not None and viability is not None
    return seeded, harvested, viability, days


def check_seeding(earlier: ProcessStep | None, step_label: str, seeded: int) -> None:
    """A passage is seeded from the cells the previous passage harvested (the isolation gives no count): never
    more, with no tolerance, since cells do not multiply between that count and the seeding. Seeding more would
    make this passage's PD, and the cumulative PD checked against the product's limit, look smaller than the real
    growth (DOMAIN.md: PD = log2(harvested / seeded)): a lot past its limit would pass unseen."""
    if earlier is None or earlier.kind != "passage" or earlier.harvested_cells is None:
        return
    if seeded > earlier.harvested_cells:
        raise ValidationFailed(
            f"Cells seeded: {format_cells(seeded)} cannot be more than the {format_cells(earlier.harvested_cells)} "
            f"cells harvested at {earlier.label}: the cells seeded for {step_label} come from that harvest. Check "
            "both counts.", field="seeded_cells")


def check_growth(session: Session, explained_by: Sequence[ProcessStep], step_label: str, seeded: int,
                 harvested: int, then: str = "record") -> None:
    """A passage harvests at least the cells it seeded, unless a deviation says how cells were lost: fewer gives a
    negative PD, which counts as 0 in the cumulative PD (core.culture: lost cells do not undo doublings). A harvest
    of 1.2 x10^6 typed for 12 x10^6 is most often a typing error, and it would set what the next passage may seed
    (check_seeding) as a shortfall at the harvest would (check_against_last_passage), so it is refused until a
    deviation says the cells were really lost. `explained_by`: the steps a deviation explaining the loss may be
    recorded against (the step the cells were seeded from; for a correction, the passage itself too)."""
    if harvested >= seeded:
        return
    ids = [step.id for step in explained_by]
    if ids and session.scalar(select(Deviation.id).where(Deviation.step_id.in_(ids)).limit(1)) is not None:
        return
    source = explained_by[0] if explained_by else None
    where = "" if source is None else f"against {'the isolation' if source.kind == 'isolation' else source.label} "
    raise ValidationFailed(
        f"Cells harvested: {format_cells(harvested)} is fewer than the {format_cells(seeded)} cells seeded at "
        f"{step_label} (PD {format_pd(seeded, harvested)}). Lost cells do not undo doublings: a negative PD counts "
        "as 0 in the cumulative PD. Check for a typing error (a factor of 10 or 1000). If the cells were "
        f"really lost, record a deviation {where}saying how (lot page, Deviations), then {then} {step_label}.",
        field="harvested_cells")


def check_days_in_culture(lot: Lot, passages: list[ProcessStep], number: int, performed_on: date,
                           days: Decimal | None) -> None:
    """The passages of a lot follow one another: their days in culture, added up from P0, cannot be more than the
    time from the collection to the end of this passage's day (a typed 365 on a passage dated the collection day
    would otherwise sit in the batch record)."""
    if days is None:
        return
    tz = site_config().tz
    end_of_day = datetime.combine(performed_on + timedelta(days=1), time(), tz)
    elapsed = Decimal((end_of_day - lot.collection_at).total_seconds()) / 86400
    earlier = sum((s.days_in_culture for s in passages if s.days_in_culture is not None), Decimal(0))
    total = earlier + days
    if total <= elapsed:
        return
    span = f"P0 to P{number} add up to {total.normalize():f} days" if number else f"P0 has {days.normalize():f} days"
    raise ValidationFailed(
        f"Days in culture: {span}, but from the collection ({local_and_utc(lot.collection_at)}) to the end of P{number}'s "
        f"date ({performed_on:%Y-%m-%d}) only {elapsed.quantize(Decimal('0.1'))} days passed. Check the days "
        "in culture and the date.", field="days_in_culture")


def culture_hours(days: Decimal | None, started_on: date, performed_on: date) -> tuple[Decimal, str]:
    """The hours a passage's cells grew, and how the message says them: its days in culture when given, else the
    longest the dates allow (from the start of the day it was seeded, the previous step's date, to the end of its
    own): a blank "days" field never lets a count pass that its dates refuse."""
    if days is not None:
        return days * 24, f"{days.normalize():f} day{'' if days == 1 else 's'}"
    span = (performed_on - started_on).days + 1
    return Decimal(span * 24), f"at most {span} day{'' if span == 1 else 's'} (seeded {started_on}, harvested {performed_on})"


def check_doubling_rate(lot: Lot, step_label: str, seeded: int, harvested: int, days: Decimal | None,
                        started_on: date, performed_on: date) -> None:
    """A passage's doubling time (days x 24 / PD) cannot be shorter than the product's fastest
    (config/products.toml culture.min_doubling_time, a site value): cells that "doubled" every 1.6 h were counted
    wrong, a factor 1000 typed, and that count would go on to the harvest and the bags (the harvest is checked only
    against this count). Refused naming the counts and the days, the fields a slip is in."""
    limits = product_of(lot).culture_limits
    hours, said = culture_hours(days, started_on, performed_on)
    broken = check_doubling_time(seeded, harvested, hours, limits.min_doubling_time_hours)
    if broken is None:
        return
    minimum = (limits.min_doubling_time_hours or Decimal(0)).normalize()
    message = (f"Cells harvested: {format_cells(harvested)} from {format_cells(seeded)} seeded in {said} at "
               f"{step_label} is {broken}; {lot.product_name} ({lot.product_id}) double no faster than every "
               f"{minimum:f} h (the site's minimum doubling time): check the count for a typing error (a factor of "
               "10 or 1000), and the cells seeded and the days in culture.")
    raise ValidationFailed(message, field="harvested_cells")


def record_isolation(session: Session, actor: Any, lot_id: int, *, performed_on: date | None,
                     notes: str = "") -> ProcessStep:
    """The isolation of cells from the tissue (digestion / explant): once per lot, before P0."""
    require_technician(actor)
    with use_case(session, actor, "isolation recorded"):
        lot = lock_lot(session, lot_id)
        require_in_process(lot, "the isolation")
        previous = steps_of(session, lot.id)
        if previous:
            raise Conflict(f"The isolation of lot {lot.lot_number} is already recorded.")
        step = ProcessStep(lot_id=lot.id, kind="isolation", passage_number=None,
                           performed_on=check_step_date(lot, performed_on, previous), notes=(notes or "").strip(),
                           recorded_by_id=actor.id)
        session.add(step)
    return step


@dataclass(frozen=True)
class PassageDetails:
    passage_number: int | None  # None for a correction (lots.corrections): the corrected passage keeps its number
    performed_on: date | None
    seeded_cells: int
    harvested_cells: int
    viability_percent: Decimal | str
    days_in_culture: Decimal | str | None = None
    notes: str = ""


def record_passage(session: Session, actor: Any, lot_id: int, details: PassageDetails) -> ProcessStep:
    """Record passage Pn (the next one: P0 after the isolation, no gaps). Refused beyond the product's
    passage or cumulative PD limit; a warning is kept on the step (ProcessStep.warnings)."""
    require_technician(actor)
    if details.passage_number is None:
        raise ValidationFailed("Give the passage number (P0 is the first passage after the isolation).",
                               field="passage_number")
    seeded, harvested, viability, days = checked_passage(details)
    with use_case(session, actor, f"passage P{details.passage_number} recorded"):
        lot = lock_lot(session, lot_id)
        require_in_process(lot, "a passage")
        if lot.harvested_at is not None:
            raise Conflict(f"Lot {lot.lot_number} is harvested: no further passage can be recorded.")
        previous = steps_of(session, lot.id)
        if not previous:
            raise Conflict("Record the isolation before the first passage (P0).")
        passages = [s for s in previous if s.kind == "passage"]
        expected = len(passages)
        problems = Problems()  # the passage against the lot's record: every problem at once, on its field
        if details.passage_number != expected:
            problems.add(ValidationFailed(f"The next passage of lot {lot.lot_number} is P{expected}, not "
                                          f"P{details.passage_number} (passages are recorded in order, without "
                                          "gaps).", field="passage_number"))
        problems.check(lambda: check_seeding(passages[-1] if passages else None, f"P{expected}", seeded))
        problems.check(lambda: check_growth(session, previous[-1:], f"P{expected}", seeded, harvested))
        performed_on = problems.check(lambda: check_step_date(lot, details.performed_on, previous))
        if performed_on is not None:
            problems.check(lambda: check_days_in_culture(lot, passages, expected, performed_on, days))
            problems.check(lambda: check_doubling_rate(lot, f"P{expected}", seeded, harvested, days,
                                                       previous[-1].performed_on, performed_on))
        problems.raise_any()
        assert performed_on is not None
        counts = [PassageCount(s.passage_number or 0, s.seeded_cells or 1, s.harvested_cells or 1) for s in passages]
        counts.append(PassageCount(expected, seeded, harvested))
        cumulative = cumulative_population_doublings(counts)
        check = check_culture_limits(expected, cumulative, product_of(lot).culture_limits)
        if not check.allowed:
            raise Conflict(f"Passage refused for {lot.product_name}: " + "; ".join(check.refusals) + ".",
                           field="passage_number")
        step = ProcessStep(lot_id=lot.id, kind="passage", passage_number=expected,
                           performed_on=performed_on, seeded_cells=seeded,
                           harvested_cells=harvested, viability_percent=viability, days_in_culture=days,
                           population_doublings=population_doublings(seeded, harvested), cumulative_pd=cumulative,
                           warnings="; ".join(check.warnings), notes=(details.notes or "").strip(),
                           recorded_by_id=actor.id)
        session.add(step)
    return step


def record_deviation(session: Session, actor: Any, lot_id: int, step_id: int | None, *, severity: str,
                     description: str) -> Deviation:
    """A deviation against a step of this lot (GMP: every departure from the batch record is documented)."""
    require_technician(actor)
    if severity not in DEVIATION_SEVERITIES:
        raise ValidationFailed("Choose the severity: minor, major or critical.", field="severity")
    text = (description or "").strip()
    if not text or len(text) > 2000:
        raise ValidationFailed("Describe the deviation (at most 2000 characters).", field="description")
    with use_case(session, actor, "deviation recorded"):
        # locked as release_lot locks it: a deviation recorded while QA signs is either seen by that signature or
        # recorded after it (and then waits for QA's assessment), never stamped before a signature that missed it
        lot = lock_lot(session, lot_id)
        step = session.get(ProcessStep, step_id) if step_id else None
        if step is None or step.lot_id != lot.id:
            raise NotFound("Choose a step of this lot.", field="step_id")
        row = Deviation(lot_id=lot.id, step_id=step.id, severity=severity, description=text, recorded_by_id=actor.id)
        session.add(row)
    return row


def record_harvest(session: Session, actor: Any, lot_id: int, *, harvested_at: datetime | None, total_cells: int,
                   viability_percent: Decimal | str) -> Lot:
    """The final harvest: total cells, viability, and viable cells = total x viability (core, rounded down)."""
    require_technician(actor)
    total, viability = checked_harvest(harvested_at, total_cells, viability_percent)
    with use_case(session, actor, "harvest recorded"):
        lot = lock_lot(session, lot_id)
        require_in_process(lot, "the harvest")
        if lot.harvested_at is not None:
            raise Conflict(f"The harvest of lot {lot.lot_number} is already recorded. A typing error is corrected "
                           "with its reason (Correct the harvest, on the lot page).")
        passages = [s for s in steps_of(session, lot.id) if s.kind == "passage"]
        viable = harvest_checks(session, lot, harvested_at, total, viability, passages)
        lot.harvested_at = harvested_at
        lot.harvest_total_cells = total
        lot.harvest_viability_percent = viability
        lot.harvest_viable_cells = viable
    return lot


def checked_harvest(harvested_at: datetime | None, total_cells: Any, viability_percent: Any) -> tuple[int, Decimal]:
    """A harvest's time, total and viability as typed, every problem at once (recording and correcting a harvest
    read them alike); nothing is read from the database."""
    problems = Problems()
    total = problems.check(lambda: checked_cells(total_cells, "total_cells", "Total cells"))
    viability = problems.check(lambda: checked_viability(viability_percent, harvest=True))
    problems.check(lambda: _check_harvest_time(harvested_at))
    problems.raise_any()
    assert total is not None and viability is not None
    return total, viability


def _check_harvest_time(harvested_at: datetime | None) -> None:
    if harvested_at is None or harvested_at.tzinfo is None:
        raise ValidationFailed("Give the harvest date and time.", field="harvested_at")
    if harvested_at > utcnow():
        raise ValidationFailed("The harvest cannot be in the future.", field="harvested_at")
    if not plausible_instant(harvested_at):
        raise ValidationFailed(f"The harvest cannot be before {FIRST_DAY}.", field="harvested_at")


def harvest_checks(session: Session, lot: Lot, harvested_at: datetime | None, total: int, viability: Decimal,
                   passages: list[ProcessStep]) -> int:
    """The harvest against the collection and the passages (recorded or corrected alike); returns the viable
    cells."""
    _check_harvest_time(harvested_at)
    assert harvested_at is not None
    if harvested_at < lot.collection_at:
        # the passages carry a day, not a time: on the collection day only the collection's time orders them; the
        # freezing is never before the harvest (bags.cryopreserve), so this keeps it after the collection too
        raise ValidationFailed(f"The harvest cannot be before the collection ({local_and_utc(lot.collection_at)}). "
                               "Check the harvest date and time.", field="harvested_at")
    if not passages:
        raise Conflict("Record at least one passage (P0) before the harvest.")
    if harvested_at.astimezone(site_config().tz).date() < passages[-1].performed_on:
        raise ValidationFailed(f"The harvest is before the last passage P{passages[-1].passage_number}.",
                               field="harvested_at")
    check_against_last_passage(session, total, passages[-1])
    viable = viable_cells(total, viability)
    if not viable:
        raise ValidationFailed("Viability: at this viability not one cell of the total is viable. Check the count "
                               "and the viability.", field="viability_percent")
    return viable


def check_against_last_passage(session: Session, total: int, last: ProcessStep) -> None:
    """A harvest of more cells than the last passage counted is refused; far fewer needs a deviation against that
    passage first (core.culture.check_harvest_count): a typing error would otherwise set the number of doses."""
    label = f"P{last.passage_number}"
    check = check_harvest_count(total, last.harvested_cells or 1, last.passage_number or 0)
    if check.refusal:
        _refuse_total(f"Total cells: {check.refusal}. Check for a typing error (a factor of 10 or 1000). If the "
                      "cells were grown further, record that culture as the next passage before the harvest.")
    if check.shortfall and session.scalar(select(Deviation.id).where(Deviation.step_id == last.id).limit(1)) is None:
        _refuse_total(f"Total cells: {check.shortfall}. Check for a typing error (a factor of 10 or 1000). If the "
                      f"cells were really lost, record a deviation against passage {label} saying how (lot page, "
                      "Deviations), then record the harvest.")


def _refuse_total(message: str) -> NoReturn:
    # total_cells is the form's and the request's field; harvest_total_cells the lot record's, as the API shows it
    raise ValidationFailed(message, field="total_cells",
                           errors={"total_cells": [message], "harvest_total_cells": [message]})
