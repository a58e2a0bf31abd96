"""Culture and cryopreservation arithmetic for a cell lot (DOMAIN.md section 4).

- Population doublings per passage PD = log2(harvested / seeded) and their cumulative sum over P0..Pn (a
  negative PD, cells lost, counts as 0 in the sum: lost cells do not undo doublings): the
  product specification limits passage number and cumulative PD because MSC senesce and may drift
  genetically with long culture; exceeding the limit refuses the step, approaching it warns.
- Harvest: viable cells = total cells x viability. The harvest counts the cells counted at the end of the last
  passage, after washing: it cannot be more than that count (plus counting error), since cells do not multiply
  outside culture and growth not recorded as a passage would escape the cumulative PD limit; far fewer is a loss
  a deviation must explain. Either way a typing error of a factor 10 or 1000 is caught before it sets the doses.
- Cryopreservation into bags (volume, cells/mL, DMSO %): the bags cannot hold more cells than were harvested.
- Expiry: a date and time computed from collection or freezing plus the product's shelf life.
- Reagent use: a reagent used for a step was used on a day of that step (use_day_refusal); its expiry is judged
  on that day, so a date of use outside the step would let an expired reagent through.

Counts are int (or Decimal), volumes and percentages Decimal, never float: a limit compared to a float can flip
on binary rounding. PD values are rounded to 2 decimal places (ROUND_HALF_EVEN) for display and for limit
checks: 0.01 PD is a 0.7 % change in cell number, well below the 5-10 % uncertainty of a cell count, so more
digits would only be noise. Cumulative PD is the sum of the unrounded per-passage values, rounded once, so that
rounding does not accumulate over many passages.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext

PD_QUANTUM = Decimal("0.01")
DMSO_DENSITY_G_PER_ML = Decimal("1.10")
"""DOMAIN.md section 6: DMSO density used to turn a DMSO volume into grams (for the 1 g/kg/day check)."""

Count = int | Decimal


class CultureError(ValueError):
    """A culture or cryopreservation record is impossible or breaks a product limit. The message names numbers."""


@dataclass(frozen=True)
class PassageCount:
    """One passage (P0 = primary culture): cells seeded and harvested, and optionally days in culture."""

    passage: int
    seeded_cells: Count
    harvested_cells: Count
    days_in_culture: Decimal | None = None


@dataclass(frozen=True)
class CultureLimits:
    """Product limits on culture length (config/products.toml). `warn_*` are optional early warnings."""

    max_passage: int
    max_cumulative_pd: Decimal
    warn_passage: int | None = None
    warn_cumulative_pd: Decimal | None = None
    #: the fastest doubling the product's cells can really do (hours, a site value): a passage whose counts and days
    #: give a shorter doubling time is a count typed wrong (a factor 1000), refused (check_doubling_time)
    min_doubling_time_hours: Decimal | None = None
    #: viable cells per mL a bag of the product may hold at cryopreservation (a site value): (min, max) in cells
    bag_cells_per_ml: tuple[int, int] | None = None


@dataclass(frozen=True)
class LimitCheck:
    """Outcome of a limit check: refusals block the step, warnings are shown and recorded."""

    warnings: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.refusals


@dataclass(frozen=True)
class BagPlan:
    """One cryopreservation bag as planned: volume, cell concentration and DMSO percentage (v/v)."""

    volume_ml: Decimal
    cells_per_ml: Count
    dmso_percent: Decimal


@dataclass(frozen=True)
class CryoPlan:
    """Per-bag cells and DMSO, the total in bags, and what is left of the harvest (QC samples, discard)."""

    bag_cells: tuple[Decimal, ...]
    bag_dmso_ml: tuple[Decimal, ...]
    bag_dmso_g: tuple[Decimal, ...]
    total_bag_cells: Decimal
    available_cells: Decimal
    remaining_cells: Decimal
    basis: str


SMALL_SIGNIFICANT_DIGITS = 2
"""A value smaller than 0.01 in size (cells below 0.01 x10^6, a PD between -0.01 and 0.01), which 2 decimals would
show as 0 or with a single figure, is shown with this many significant figures instead: a count of 4000 cells printed "0 x10^6", or a loss printed "PD -0.00", read
as nothing at all."""


def _two_decimals_or_significant(value: Decimal) -> Decimal:
    """`value` to 2 decimals, or below 0.01 (in size, not 0) to SMALL_SIGNIFICANT_DIGITS significant figures."""
    if value and abs(value) < PD_QUANTUM:
        quantum = Decimal(1).scaleb(value.adjusted() - SMALL_SIGNIFICANT_DIGITS + 1)
        return value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    return value.quantize(PD_QUANTUM, rounding=ROUND_HALF_EVEN)


def format_cells(cells: Count) -> str:
    """Cells as written in the lab record and on labels: "125 x10^6" (up to 2 decimals, trailing zeros cut); below
    0.01 x10^6 with 2 significant figures ("0.004 x10^6", "0.0012 x10^6"), never "0 x10^6" for a count that is
    not 0."""
    millions = _two_decimals_or_significant(Decimal(cells) / Decimal(10**6))
    text = f"{millions:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} x10^6"


def population_doublings(seeded_cells: Count, harvested_cells: Count) -> Decimal:
    """PD = log2(harvested / seeded) for one passage, rounded to 0.01 (as stored). May be negative if cells were
    lost; a PD that rounds to 0 is 0.00, never "-0.00" (format_pd shows its digits)."""
    rounded = _log2_ratio(seeded_cells, harvested_cells).quantize(PD_QUANTUM, rounding=ROUND_HALF_EVEN)
    return rounded if rounded else abs(rounded)


def format_pd(seeded_cells: Count, harvested_cells: Count) -> str:
    """A passage's PD as the record shows it: 2 decimals ("-3.32"); a PD that 2 decimals would round to 0 but is
    not 0 with 2 significant figures ("-0.0029" for 4.99 harvested of 5 seeded), so a loss never reads "-0.00"."""
    return f"{_two_decimals_or_significant(_log2_ratio(seeded_cells, harvested_cells)):f}"


def cumulative_population_doublings(passages: Sequence[PassageCount]) -> Decimal:
    """Cumulative PD over P0..Pn. Passages must be numbered 0, 1, 2 ... without gaps or repeats: a missing
    passage would silently lower the cumulative PD and let a lot slip under its limit.

    A passage that harvested fewer cells than it seeded (a negative PD, accepted with a deviation) counts as 0:
    lost cells do not undo the doublings the others went through (P0 0.001 -> 1000 x10^6, P1 1000 -> 1, P2
    1 -> 1000 is about 29.9 doublings, not 19.93). The passage's own PD (population_doublings) stays negative."""
    _check_passage_sequence(passages)
    with localcontext() as ctx:
        ctx.prec = 34
        total = sum((max(_log2_ratio(p.seeded_cells, p.harvested_cells), Decimal(0)) for p in passages),
                    Decimal(0))
    return total.quantize(PD_QUANTUM, rounding=ROUND_HALF_EVEN)


def doubling_time_hours(passage: PassageCount) -> Decimal | None:
    """Population doubling time (hours) = days x 24 / PD; None when days are unknown or the cells did not grow."""
    if passage.days_in_culture is None:
        return None
    doublings = _log2_ratio(passage.seeded_cells, passage.harvested_cells)
    if doublings <= 0:
        return None
    return (Decimal(passage.days_in_culture) * 24 / doublings).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)


def hours_per_doubling(seeded_cells: Count, harvested_cells: Count, hours: Decimal) -> Decimal | None:
    """Hours per doubling (unrounded) for a culture of `hours`; None when the cells did not grow."""
    doublings = _log2_ratio(seeded_cells, harvested_cells)
    if doublings <= 0:
        return None
    with localcontext() as ctx:
        ctx.prec = 34
        return Decimal(hours) / doublings


def check_doubling_time(seeded_cells: Count, harvested_cells: Count, hours: Decimal,
                        minimum_hours: Decimal | None) -> str | None:
    """None when the passage's growth is possible in `hours` of culture, else the rule broken in words ("20000 x10^6
    from 0.5 x10^6 in 1 day is 15.29 doublings, one every 1.6 h"): cells that doubled faster than the product's
    `minimum_hours` were counted wrong (a factor 10 or 1000 typed), not grown."""
    if minimum_hours is None:
        return None
    per_doubling = hours_per_doubling(seeded_cells, harvested_cells, hours)
    if per_doubling is None or per_doubling >= minimum_hours:
        return None
    doublings = population_doublings(seeded_cells, harvested_cells)
    shown = per_doubling.quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
    if shown >= minimum_hours:  # never "one every 15.0 h" refused under a 15 h rule
        shown = per_doubling.quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    return f"{doublings} doublings, one every {shown} h"


def check_culture_limits(passage: int, cumulative_pd: Decimal, limits: CultureLimits) -> LimitCheck:
    """Compare a passage number and cumulative PD to the product's limits (refuse above max, warn at warn_*)."""
    warnings: list[str] = []
    refusals: list[str] = []
    if passage > limits.max_passage:
        refusals.append(f"passage P{passage} is beyond the product limit of P{limits.max_passage}")
    elif limits.warn_passage is not None and passage >= limits.warn_passage:
        warnings.append(f"passage P{passage} is at or past the warning level P{limits.warn_passage} "
                        f"(limit P{limits.max_passage})")
    if cumulative_pd > limits.max_cumulative_pd:
        refusals.append(f"cumulative population doublings {cumulative_pd} exceed the product limit "
                        f"{limits.max_cumulative_pd}")
    elif limits.warn_cumulative_pd is not None and cumulative_pd >= limits.warn_cumulative_pd:
        warnings.append(f"cumulative population doublings {cumulative_pd} are at or past the warning level "
                        f"{limits.warn_cumulative_pd} (limit {limits.max_cumulative_pd})")
    return LimitCheck(warnings=tuple(warnings), refusals=tuple(refusals))


def check_viability_percent(viability_percent: Decimal) -> Decimal:
    """Viability is a percentage 0..100 (as Decimal, e.g. Decimal("92.5"))."""
    _refuse_float(viability_percent, "viability_percent")
    value = Decimal(viability_percent)
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(100):
        raise CultureError(f"viability must be between 0 and 100 %, got {value} %")
    if value.is_signed():  # "-0": a sign on a percentage is a typing slip, not a count
        raise CultureError("viability is a percentage without a sign")
    return value


def viable_cells(total_cells: Count, viability_percent: Decimal) -> int:
    """Viable cells = total x viability, rounded down: a record must never claim a cell that was not counted."""
    total = _positive_count(total_cells, "total_cells")
    viability = check_viability_percent(viability_percent)
    return int((total * viability / 100).to_integral_value(rounding=ROUND_FLOOR))


HARVEST_COUNT_TOLERANCE = Decimal("0.10")
"""Two counts of the same cells differ by the 5-10 % uncertainty of a cell count: the harvest may be this much
above the last passage's count. A factor 10 typing error is 900 % above."""
HARVEST_UNEXPLAINED_LOSS = Decimal("0.50")
"""A harvest below this fraction of the last passage's count (washing loses some cells, not half of them) is a
loss that only a recorded deviation may explain. A factor 10 typing error is 10 %."""


@dataclass(frozen=True)
class HarvestCountCheck:
    """The harvest total against the last passage's count: `refusal` when it claims cells never counted,
    `shortfall` when most of the cells are gone (accepted only with a deviation that says why)."""

    refusal: str | None = None
    shortfall: str | None = None


def harvest_bounds(counted: Count) -> tuple[Decimal, Decimal]:
    """(floor, ceiling): the harvest total cells that the last passage's count `counted` allows without a deviation
    (HARVEST_UNEXPLAINED_LOSS of it) and at most (HARVEST_COUNT_TOLERANCE above it)."""
    return counted * HARVEST_UNEXPLAINED_LOSS, counted * (1 + HARVEST_COUNT_TOLERANCE)


def check_harvest_count(total_cells: Count, last_passage_cells: Count, last_passage: int) -> HarvestCountCheck:
    """Compare the harvest's total cells with the cells harvested at the end of the last passage Pn."""
    total = _positive_count(total_cells, "total_cells")
    counted = _positive_count(last_passage_cells, "last_passage_cells")
    floor, ceiling = harvest_bounds(counted)
    if total > ceiling:
        return HarvestCountCheck(refusal=(
            f"{format_cells(total)} total cells is more than the {format_cells(counted)} cells counted at the end "
            f"of the last passage P{last_passage} (at most {format_cells(ceiling)}, allowing "
            f"{HARVEST_COUNT_TOLERANCE * 100:.0f} % counting error). Cells do not multiply after that count"))
    if total < floor:
        return HarvestCountCheck(shortfall=(
            f"{format_cells(total)} total cells is less than {HARVEST_UNEXPLAINED_LOSS * 100:.0f} % of the "
            f"{format_cells(counted)} cells counted at the end of the last passage P{last_passage} "
            f"(at least {format_cells(floor)} without a deviation)"))
    return HarvestCountCheck()


def plan_cryopreservation(total_cells: Count, viable_cell_count: Count, bags: Sequence[BagPlan],
                          basis: str = "viable") -> CryoPlan:
    """Check a cryopreservation split and compute cells and DMSO per bag.

    `basis` says what cells_per_ml counts: "viable" (default, as doses are in viable cells) or "total". The
    sum of bag cells is refused when it exceeds the harvest on that basis: the cells would not exist.
    """
    total = _positive_count(total_cells, "total_cells")
    viable = _count(viable_cell_count, "viable_cells")
    if viable > total:
        raise CultureError(f"viable cells ({format_cells(viable)}) cannot exceed total cells ({format_cells(total)})")
    if basis not in ("viable", "total"):
        raise CultureError(f"cell basis must be 'viable' or 'total', got {basis!r}")
    if not bags:
        raise CultureError("a cryopreservation needs at least one bag")
    cells: list[Decimal] = []
    dmso_ml: list[Decimal] = []
    for number, bag in enumerate(bags, start=1):
        volume_ml = _positive_count(bag.volume_ml, f"bag {number} volume_ml")
        cells_per_ml = _positive_count(bag.cells_per_ml, f"bag {number} cells_per_ml")
        _refuse_float(bag.dmso_percent, f"bag {number} dmso_percent")
        dmso_percent = Decimal(bag.dmso_percent)
        if not dmso_percent.is_finite() or not Decimal(0) <= dmso_percent <= Decimal(100):
            raise CultureError(f"bag {number}: DMSO must be between 0 and 100 %, got {dmso_percent} %")
        cells.append(volume_ml * cells_per_ml)
        dmso_ml.append(volume_ml * dmso_percent / 100)
    in_bags = sum(cells, Decimal(0))
    available = viable if basis == "viable" else total
    if in_bags > available:
        raise CultureError(
            f"the {len(bags)} bags would hold {format_cells(in_bags)} {basis} cells but the harvest has only "
            f"{format_cells(available)} {basis} cells ({format_cells(in_bags - available)} too many)")
    return CryoPlan(
        bag_cells=tuple(cells), bag_dmso_ml=tuple(dmso_ml),
        bag_dmso_g=tuple(ml * DMSO_DENSITY_G_PER_ML for ml in dmso_ml),
        total_bag_cells=in_bags, available_cells=available, remaining_cells=available - in_bags, basis=basis)


def expiry_at(start: datetime, shelf_life: timedelta) -> datetime:
    """Expiry = collection or freezing time + shelf life, as an aware datetime in the start's time zone.

    The addition is done in UTC, so a shelf life is elapsed time: across a daylight-saving change the local
    clock time of expiry moves by an hour rather than the product living an hour more or less. Naive datetimes
    are refused: an expiry printed on a label must say which zone it is in (DOMAIN.md section 7).
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise CultureError(f"expiry needs a time-zone-aware start time, got naive {start.isoformat()}")
    if shelf_life <= timedelta(0):
        raise CultureError(f"shelf life must be positive, got {shelf_life}")
    return (start.astimezone(UTC) + shelf_life).astimezone(start.tzinfo)


@dataclass(frozen=True)
class UseWindow:
    """The days on which a reagent can have been used for one stage of a lot, with words for each end:
    the isolation its own day; a passage from the day its cells were seeded (the previous step's date) to its
    harvest date; harvest and cryopreservation from the harvest day to the freezing day (to today while the lot is
    not frozen yet)."""

    stage: str
    first: date
    last: date
    first_words: str
    last_words: str


def use_day_refusal(used_on: date, window: UseWindow) -> str | None:
    """None when the day of use lies in the window, else the sentence that says why it cannot be."""
    if window.first <= used_on <= window.last:
        return None
    if window.first == window.last:
        return (f"The date of use {used_on} is not the day of {window.stage}: it was done on {window.first}. "
                "Give the day the reagent was really used.")
    return (f"The date of use {used_on} is outside {window.stage}: a reagent used for it was used between "
            f"{window.first} ({window.first_words}) and {window.last} ({window.last_words}). Give the day the "
            "reagent was really used.")


def _log2_ratio(seeded_cells: Count, harvested_cells: Count) -> Decimal:
    seeded = _positive_count(seeded_cells, "seeded_cells")
    harvested = _positive_count(harvested_cells, "harvested_cells")
    with localcontext() as ctx:
        ctx.prec = 34
        return (harvested / seeded).ln() / Decimal(2).ln()


def _check_passage_sequence(passages: Sequence[PassageCount]) -> None:
    numbers = [p.passage for p in passages]
    if numbers != list(range(len(numbers))):
        raise CultureError(f"passages must be P0, P1, P2 ... in order without gaps; got "
                           f"{', '.join(f'P{n}' for n in numbers) or 'none'}")


def _refuse_float(value: object, name: str) -> None:
    if isinstance(value, float | bool):
        raise CultureError(f"{name} must be an int or Decimal, not {type(value).__name__} ({value!r})")


def _number(value: Count, name: str) -> Decimal:
    _refuse_float(value, name)
    if not isinstance(value, int | Decimal) or not Decimal(value).is_finite():
        raise CultureError(f"{name} must be a finite int or Decimal, got {value!r}")
    return Decimal(value)


def _count(value: Count, name: str) -> Decimal:
    number = _number(value, name)
    if number < 0:
        raise CultureError(f"{name} must be zero or more, got {value}")
    return number


def _positive_count(value: Count, name: str) -> Decimal:
    number = _number(value, name)
    if number <= 0:
        raise CultureError(f"{name} must be greater than 0, got {value}")
    return number
