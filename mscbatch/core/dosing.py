"""Per-patient dose: which bags to thaw, how much to draw from the last one, and the safety arithmetic.

Rules (DOMAIN.md section 6 unless said otherwise):
- target cells = dose level (cells/kg) x weight (kg), counted as viable or total cells per the protocol;
  the weight must be recorded and measured within the protocol's validity period (e.g. 7 days).
- only bags of an allowed product, released, not on hold, not allocated, not expired at the planned
  infusion time are offered; a bag labelled for an intended recipient is offered to that recipient only,
  and for a directed protocol (SSc-BM familial donor) only that patient's bags / familial donor's bags are
  offered (DOMAIN.md sections 2 and 8).
- choice, in this order: (1) delivered cells inside the tolerance band (hard limit; outside it, no
  allocation); (2) fewest bags thawed; (3) closest to the target: a partial volume drawn from one bag
  makes the target exact whenever the chosen bags hold enough cells; (4) least waste (cells thawed and not
  infused); (5) among bags with equal cell counts, earliest expiry first (FEFO), then bag id. The partial
  bag is the chosen bag with the latest expiry that can supply the remainder. The partial volume is rounded
  to the protocol's draw resolution (syringe graduation), assuming a homogeneous suspension.
- DMSO g = volume x DMSO % x 1.10 g/mL; the limit (1 g/kg/day, HSC practice) is held over any 24 hours, not the
  calendar day: the DMSO the patient already received in the 24 hours before the planned infusion (a stopped
  course's bags, DmsoGiven) is added to the course's, and the sum must stay below the limit.
- endotoxin: K/M (DOMAIN.md section 5): the endotoxin infused must not exceed K x weight x infusion hours; the
  hours are the protocol's infusion_duration_h, an assumption shown wherever the limit is (endotoxin_limit_words).

The search is exact: the fewest bags k is the smallest k whose k largest bags reach the band's lower
limit; among k-bag sets, the one with the smallest total reaching the target is found by a depth-first
search over bags sorted largest first, pruned by bounds and by skipping interchangeable (equal-count)
bags, so inventories of ~20 distinct bags take milliseconds. A node budget keeps pathological inventories
fast; the answer is then still inside the band and `exhaustive_search` is False.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from mscbatch.core.protocols import Protocol, format_cells_per_kg

SEARCH_NODE_BUDGET = 200_000
_HUNDRED = Decimal(100)


class DoseRefused(Exception):
    """No dose can be allocated; `reason` is a plain sentence for the clinician, `code` a stable key, `later` the
    advice to plan the infusion later when that alone would allow it (DMSO already given in the 24 hours before)."""

    def __init__(self, code: str, reason: str, later: str | None = None):
        self.code = code
        self.reason = reason
        self.later = later
        super().__init__(reason)


@dataclass(frozen=True)
class CandidateBag:
    """A bag in stock as the dosing core sees it (plain values, copied from the database by the service)."""

    bag_id: str
    din: str
    viable_cells: Decimal
    total_cells: Decimal
    volume_ml: Decimal
    dmso_percent: Decimal
    expires_at: datetime
    released: bool
    allocated: bool
    on_hold: bool
    product_id: str
    donor_id: str | None = None
    intended_recipient_id: str | None = None
    endotoxin_eu_per_ml: Decimal | None = None
    exceptional_for: str | None = None  # an OOS batch released as an exception for this one patient only


#: The DMSO limit "per kg per day" is held over the 24 hours before the moment judged, not the calendar day (HSC
#: practice, the conservative reading): a bag given at 23:50 and another at 00:10 are 20 minutes apart, not two days.
DMSO_WINDOW = timedelta(hours=24)
LAST_24_HOURS = "in the last 24 hours"


@dataclass(frozen=True)
class DmsoGiven:
    """The DMSO a patient already received in the 24 hours before the moment judged (`until`: the planned
    infusion, or now at the bedside), from infusions started in (until - 24 h, until]: `grams` (volume given x DMSO
    % x density; an infusion not ended counts the volume its prescription draws from the bag, or the whole bag when
    none does), `times` when those infusions started as the site's clock reads them today ("09:12", "yesterday
    23:50", "2026-12-03 23:50"), `dated` the same starts always with their day (for a record read later), and
    `window` the 24 hours in words ("in the last 24 hours", "in the 24 hours before 2026-12-06 23:59")."""

    grams: Decimal = Decimal(0)
    times: tuple[str, ...] = ()
    dated: tuple[str, ...] = ()
    until: datetime | None = None
    window: str = LAST_24_HOURS
    last_start: datetime | None = None  # the latest start counted (site's clock): 24 hours on, none of it counts

    @property
    def later_words(self) -> str | None:
        """The advice when the course alone is below the limit: plan it once none of this DMSO counts."""
        if self.last_start is None or self.grams <= 0:
            return None
        return (f"Plan this course later: DMSO counts for 24 hours from the start of its infusion, so from "
                f"{minute_after(window_end_after(self.last_start)):%Y-%m-%d %H:%M} none of the {self.grams:.2f} g already "
                "given counts")


def window_end_after(start: datetime) -> datetime:
    """24 hours of elapsed time after `start` (counted in UTC, so a change to or from summer time is still 24 hours),
    on `start`'s clock."""
    return (start.astimezone(UTC) + DMSO_WINDOW).astimezone(start.tzinfo)


def minute_after(moment: datetime) -> datetime:
    """`moment` raised to the next whole minute unless it is one (counted in UTC, on `moment`'s clock). The advice to
    plan later is said to the minute: cut to its minute, the end of the 24 hours of a bag started at 09:12:30 read
    "09:12", a time at which that bag's DMSO still counts (a planned 09:12 was refused again, a day chosen from a
    window ending at 23:59:30 as well)."""
    utc = moment.astimezone(UTC)
    if utc.second or utc.microsecond:
        utc = utc.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return utc.astimezone(moment.tzinfo)


def window_start_before(until: datetime) -> datetime:
    """The instant 24 hours of elapsed time before `until` (UTC): the window is (that, until]."""
    return until.astimezone(UTC) - DMSO_WINDOW


def start_words(started: datetime, today: date) -> str:
    """When an infusion started, on the site's clock (`started` already in the site's time zone, `today` the site's
    day of the reader): "09:12" today, "yesterday 23:50", else with its day "2026-12-03 23:50"."""
    if started.date() == today:
        return f"{started:%H:%M}"
    if started.date() == today - timedelta(days=1):
        return f"yesterday {started:%H:%M}"
    return f"{started:%Y-%m-%d %H:%M}"


def dmso_grams(volume_ml: Decimal, dmso_percent: Decimal, density_g_per_ml: Decimal) -> Decimal:
    """DMSO in a volume of product: 25 mL at 10 % x 1.10 g/mL = 2.75 g (DOMAIN.md section 6)."""
    return volume_ml * dmso_percent / _HUNDRED * density_g_per_ml


def _times_words(times: Sequence[str]) -> str:
    if not times:
        return ""
    listed = times[0] if len(times) == 1 else ", ".join(times[:-1]) + " and " + times[-1]
    return f" (started {listed})"


def dmso_window_refusal(course_g: Decimal, given: DmsoGiven, weight_kg: Decimal, limit_g_per_kg: Decimal,
                        part: str = "in this course") -> str | None:
    """Why the course's DMSO, added to what the patient already received in the 24 hours before it, is not below the
    limit of `limit_g_per_kg` per kg per day (DOMAIN.md 6: keep BELOW it; a day is any 24 hours), in plain words;
    None when it is below. `part` names what `course_g` is ("in this bag" for a check of one bag at the bedside)."""
    total = given.grams + course_g
    if total / weight_kg < limit_g_per_kg:
        return None
    per_kg = _per_kg_words(total / weight_kg, ROUND_CEILING)  # never written below the limit it reaches
    limit = f"{limit_g_per_kg.normalize():f}"
    if given.grams == 0:
        return f"DMSO would be {course_g:.2f} g, {per_kg} g/kg, not below the limit of {limit} g/kg/day"
    return (f"DMSO would be {total:.2f} g in 24 hours: {given.grams:.2f} g already given {given.window}"
            f"{_times_words(given.times)} + {course_g:.2f} g {part} = {per_kg} g/kg, not below the limit of "
            f"{limit} g/kg/day")


def dmso_per_kg_shown(dmso_g: Decimal, weight_kg: Decimal, limit_g_per_kg: Decimal) -> Decimal:
    """The DMSO per kg a dose shows (and stores), to 0.0001 g/kg: rounded UP, as the endotoxin load is, so that the
    exposure is never understated (5.5 g / 51.5 kg = 0.106796... reads 0.1068, not 0.1067), except onto the limit:
    an allowed dose is strictly below it, and 0.99996 g/kg must not read "1.0000" (at the limit), so that one value
    is rounded down. For the eye only: every limit decision uses the exact grams and weight (dmso_window_refusal,
    dose_at_new_weight, the bedside's DMSO in 24 hours), never this figure."""
    return _up_below_limit(dmso_g / weight_kg, limit_g_per_kg, Decimal("0.0001"))


def _up_below_limit(value: Decimal, limit: Decimal, step: Decimal) -> Decimal:
    """`value` to `step`, rounded up, unless that would write a value below `limit` at it: then rounded down."""
    up = value.quantize(step, ROUND_CEILING)
    return value.quantize(step, ROUND_FLOOR) if value < limit <= up else up


def _per_kg_words(value: Decimal, rounding: str) -> str:
    """g/kg to 0.001, rounded as `rounding` says (up in a refusal: never written below the limit it reaches)."""
    return f"{value.quantize(Decimal('0.001'), rounding):f}"


def dmso_window_words(course_g: Decimal, given_g: Decimal, weight_kg: Decimal, limit_g_per_kg: Decimal,
                      times: Sequence[str] = (), window: str = LAST_24_HOURS) -> str | None:
    """The DMSO line of a dose when some DMSO was already given in the 24 hours before it, else None (the line then
    shows the course alone): "2.75 g + 1.10 g already given in the last 24 hours (started 09:12) = 0.061 g/kg (limit
    1 g/kg/day)". `window`: "in the last 24 hours" on the dose page, "in the 24 hours before 2026-03-02 23:59" on a
    sheet read later."""
    if given_g <= 0:
        return None
    total = (course_g + given_g) / weight_kg
    per_kg = f"{_up_below_limit(total, limit_g_per_kg, Decimal('0.001')):f}"  # as dmso_per_kg_shown, to 0.001
    return (f"{course_g:.2f} g + {given_g:.2f} g already given {window}{_times_words(times)} = "
            f"{per_kg} g/kg (limit {limit_g_per_kg.normalize():f} g/kg/day)")


def _window_end_words(value: Any) -> str | None:
    try:
        return f"{datetime.fromisoformat(str(value)):%Y-%m-%d %H:%M}"  # stored with the site's offset: its clock
    except ValueError:
        return None


def stored_dmso_window_words(calculation: Mapping[str, Any]) -> str | None:
    """dmso_window_words of a prescription's stored calculation, with the window's end and each start with its day
    (the sheet is read later): None when nothing was given in the window, or a calculation stored before the DMSO
    already given was."""
    common = (Decimal(calculation["dmso_g"]), Decimal(calculation["weight_kg"]),
              Decimal(calculation["max_dmso_g_per_kg"]))
    if "dmso_given_g" not in calculation:
        return None
    end = _window_end_words(calculation.get("dmso_window_end"))
    return dmso_window_words(common[0], Decimal(calculation["dmso_given_g"] or 0), *common[1:],
                             tuple(calculation.get("dmso_given_dated") or ()),
                             f"in the 24 hours before {end}" if end else "in the 24 hours before it")


@dataclass(frozen=True)
class ExcludedBag:
    bag_id: str
    reason: str


@dataclass(frozen=True)
class BagDraw:
    bag_id: str
    din: str
    volume_ml: Decimal
    bag_volume_ml: Decimal
    cells: Decimal
    partial: bool
    dmso_g: Decimal
    endotoxin_eu: Decimal | None


@dataclass(frozen=True)
class DoseAllocation:
    protocol_id: str
    protocol_version: str
    protocol_sha256: str
    patient_id: str
    dose_level_cells_per_kg: Decimal
    dose_basis: str
    weight_kg: Decimal
    weight_measured_on: date
    target_cells: Decimal
    low_cells: Decimal
    high_cells: Decimal
    tolerance_percent: Decimal
    delivered_cells: Decimal
    delivered_cells_per_kg: Decimal
    deviation_percent: Decimal
    draws: tuple[BagDraw, ...]
    total_volume_ml: Decimal
    waste_cells: Decimal
    dmso_g: Decimal
    dmso_g_per_kg: Decimal
    max_dmso_g_per_kg: Decimal
    endotoxin_eu: Decimal | None  # None when a chosen bag has no endotoxin result
    endotoxin_limit_eu: Decimal
    infused_volume_ml: Decimal
    infusion_duration_h: Decimal
    endotoxin_limit_eu_per_ml: Decimal
    excluded: tuple[ExcludedBag, ...]
    exhaustive_search: bool
    endotoxin_k_eu_per_kg_per_h: Decimal  # K: stored so that the limit is shown with its arithmetic
    #: DMSO the patient already received in the 24 hours before the infusion (DmsoGiven): the grams, when those
    #: infusions started (as the site's clock read them when calculated, and with their days for a sheet read
    #: later), the window's end (the moment judged, on the site's clock) and the window in words
    dmso_given_g: Decimal = Decimal(0)
    dmso_given_at: tuple[str, ...] = ()
    dmso_given_dated: tuple[str, ...] = ()
    dmso_window_end: datetime | None = None
    dmso_window: str = LAST_24_HOURS

    @property
    def bag_count(self) -> int:
        return len(self.draws)

    @property
    def dmso_window_words(self) -> str | None:
        """The course's DMSO with what was already given in the 24 hours before it, per kg; None when nothing was."""
        return dmso_window_words(self.dmso_g, self.dmso_given_g, self.weight_kg, self.max_dmso_g_per_kg,
                                 self.dmso_given_at, self.dmso_window)

    @property
    def endotoxin_limit_words(self) -> tuple[str, str]:
        return endotoxin_limit_words(self.endotoxin_k_eu_per_kg_per_h, self.weight_kg, self.infusion_duration_h,
                                     self.endotoxin_limit_eu)


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"


def endotoxin_limit_words(k_eu_per_kg_per_h: Decimal | None, weight_kg: Decimal, duration_h: Decimal,
                          limit_eu: Decimal) -> tuple[str, str]:
    """The endotoxin limit with the arithmetic and the infusion duration it assumes, and the caution that goes with
    it: "limit 312.5 EU = K x weight x 1 h infusion = 5 EU/kg/h x 62.5 kg x 1 h". K/M is a dose per kg per HOUR
    (DOMAIN.md section 5): the protocol's infusion_duration_h is an assumption, and a clinician infusing faster
    than it gives the same endotoxin in less time, which the limit no longer covers. `k_eu_per_kg_per_h` None
    (a calculation signed before K was stored): K is taken back from the stored limit, K x weight x time."""
    k = k_eu_per_kg_per_h if k_eu_per_kg_per_h is not None else limit_eu / (weight_kg * duration_h)
    hours = _plain(duration_h)
    return (f"limit {_plain(limit_eu)} EU = K x weight x {hours} h infusion = {_plain(k)} EU/kg/h x "
            f"{_plain(weight_kg)} kg x {hours} h",
            f"The endotoxin limit assumes a {hours} h infusion: infused faster, the limit is lower in proportion.")


def endotoxin_words(endotoxin_eu: Decimal, limit_eu: Decimal) -> str:
    """The endotoxin a dose carries, with as many decimals as its limit is written with (at least one): "7.5" beside
    "limit 312.5 EU", not "7.5000". Rounded up, so that the figure shown is never below the load itself."""
    decimals = max(1, -_plain_exponent(limit_eu))
    return f"{endotoxin_eu.quantize(Decimal(1).scaleb(-decimals), ROUND_CEILING):f}"


def _plain_exponent(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


def stored_endotoxin_limit_words(calculation: Mapping[str, Any]) -> tuple[str, str]:
    """endotoxin_limit_words of a prescription's stored calculation (allocation_data: decimals as text)."""
    k = calculation.get("endotoxin_k_eu_per_kg_per_h")
    return endotoxin_limit_words(None if k is None else Decimal(k), Decimal(calculation["weight_kg"]),
                                 Decimal(calculation["infusion_duration_h"]), Decimal(calculation["endotoxin_limit_eu"]))


def endotoxin_limit_eu_per_ml(k_eu_per_kg_per_h: Decimal, weight_kg: Decimal, volume_ml: Decimal,
                              duration_h: Decimal) -> Decimal:
    """K/M with M = volume per kg per hour (Ph. Eur. 5.1.10): 70 kg, 100 mL over 1 h, K = 5 -> 3.5 EU/mL."""
    return k_eu_per_kg_per_h * weight_kg * duration_h / volume_ml


def offered_bags(protocol: Protocol, bags: Sequence[CandidateBag], *, product_id: str, patient_id: str,
                 familial_donor_id: str | None, planned_at: datetime) -> tuple[list[CandidateBag], list[ExcludedBag]]:
    """Split the inventory into bags that may be offered to this patient and the others, each with why."""
    offered: list[CandidateBag] = []
    excluded: list[ExcludedBag] = []
    for bag in bags:
        reason = None
        if bag.intended_recipient_id is not None and bag.intended_recipient_id != patient_id:
            reason = "for use by another intended recipient only"
        elif protocol.directed and familial_donor_id is not None and bag.donor_id not in (None, familial_donor_id):
            reason = "from another recipient's familial donor"
        elif protocol.directed and bag.intended_recipient_id != patient_id and (
                familial_donor_id is None or bag.donor_id != familial_donor_id):
            reason = "directed product not labelled for this patient nor from this patient's familial donor"
        elif bag.product_id != product_id:
            reason = f"product {bag.product_id}, not {product_id}"
        elif not bag.released:
            reason = "not released"
        elif bag.exceptional_for is not None and bag.exceptional_for != patient_id:
            reason = f"an out-of-specification batch released as an exception for patient {bag.exceptional_for} only"
        elif bag.on_hold:
            reason = "on hold"
        elif bag.allocated:
            reason = "already allocated"
        elif bag.expires_at <= planned_at:
            reason = f"expires {bag.expires_at.isoformat()}, not after the planned infusion"
        elif bag.volume_ml <= 0 or bag.viable_cells <= 0 or bag.total_cells <= 0:
            reason = "no cells or volume recorded"
        if reason is None:
            offered.append(bag)
        else:
            excluded.append(ExcludedBag(bag.bag_id, reason))
    return offered, excluded


def _search(cells: list[int], target: int, low: Decimal) -> tuple[list[int], bool] | None:
    """Indices (into `cells`, sorted largest first, ties FEFO) of the fewest bags reaching `low`, then the
    smallest total >= target among them (if the largest such set stays under target, it is the closest).
    None when even all bags together stay under `low`."""
    n = len(cells)
    prefix = [0]
    for c in cells:
        prefix.append(prefix[-1] + c)
    k = next((k for k in range(1, n + 1) if prefix[k] >= low), None)
    if k is None:
        return None
    if prefix[k] <= target:
        return list(range(k)), True
    best_sum, best = prefix[k], list(range(k))
    stack: list[tuple[int, int, int, tuple[int, ...]]] = [(0, k, 0, ())]
    nodes = 0
    while stack and best_sum > target:  # a set summing to the target exactly cannot be beaten
        nodes += 1
        if nodes > SEARCH_NODE_BUDGET:
            return best, False
        i, r, s, chosen = stack.pop()
        if r == 0:
            if target <= s < best_sum:
                best_sum, best = s, list(chosen)
            continue
        if n - i < r or s + prefix[i + r] - prefix[i] < target:
            continue  # cannot reach the target from here
        low_sum = s + prefix[n] - prefix[n - r]  # the r smallest remaining bags
        if low_sum >= best_sum:
            continue  # cannot beat the best found (ties keep the first, FEFO-earlier find)
        if low_sum >= target:  # the r smallest already reach it: best of this subtree, equal counts FEFO
            tail = list(range(n - r, n))
            edge = cells[n - r]
            group = [x for x in range(i, n) if cells[x] == edge]
            best_sum = low_sum
            best = list(chosen) + [x for x in tail if cells[x] != edge] + group[:sum(cells[x] == edge for x in tail)]
            continue
        j = i + 1
        while j < n and cells[j] == cells[i]:
            j += 1  # leaving bag i out: its equal-count, later-expiring twins are left out too
        stack.append((j, r, s, chosen))
        stack.append((i + 1, r - 1, s + cells[i], chosen + (i,)))
    return best, True


def _refuse_weight(weight_kg: Decimal | None, measured_on: date | None, today: date, valid_days: int,
                   infusion_on: date | None = None) -> None:
    """The weight must be recent at the infusion, not only today: a prescription planned weeks ahead needs a
    weight measured within the protocol's days of that day."""
    if weight_kg is None or measured_on is None:
        raise DoseRefused("weight_missing", "no weight is recorded for this patient")
    if not isinstance(weight_kg, Decimal) or not weight_kg.is_finite() or weight_kg <= 0:
        raise DoseRefused("weight_invalid", f"the recorded weight {weight_kg!r} is not a positive number of kg")
    if measured_on > today:
        raise DoseRefused("weight_invalid", f"the weight is dated {measured_on}, after today ({today})")
    if (today - measured_on).days > valid_days:
        raise DoseRefused("weight_stale", f"the weight was measured on {measured_on}, {(today - measured_on).days} days "
                                          f"ago; the protocol needs one measured within {valid_days} days")
    if infusion_on is not None and (infusion_on - measured_on).days > valid_days:
        raise DoseRefused("weight_stale", f"the weight was measured on {measured_on}, {(infusion_on - measured_on).days} "
                                          f"days before the planned infusion on {infusion_on}; the protocol needs one "
                                          f"measured within {valid_days} days of it")


def _in_id_order(bag_id: str) -> tuple[int, str]:
    """A bag id's place among equal bags: the ids are the database's numbers as text, and as text "10" came before
    "9", so bag 10 was taken and bag 9, frozen first, left behind."""
    return len(bag_id), bag_id


def calculate_dose(protocol: Protocol, *, patient_id: str, enrolled: bool, dose_level_cells_per_kg: Decimal,
                   weight_kg: Decimal | None, weight_measured_on: date | None, today: date, planned_at: datetime,
                   infusion_on: date, bags: Sequence[CandidateBag], product_id: str | None = None,
                   familial_donor_id: str | None = None, infusion_duration_h: Decimal | None = None,
                   dmso_given: DmsoGiven | None = None) -> DoseAllocation:
    """Allocate bags for one infusion or raise DoseRefused with a plain reason (see the module docstring).

    `today` and `infusion_on` (the day of `planned_at`) are the site's calendar days, which the caller knows.
    `dmso_given`: the DMSO the patient already received in the 24 hours before the infusion (none when omitted):
    the limit per day is held over any 24 hours."""
    settings = protocol.dosing
    if not enrolled:
        raise DoseRefused("not_enrolled", f"the patient is not enrolled in {protocol.short_name}")
    if dose_level_cells_per_kg not in settings.dose_levels_cells_per_kg:
        levels = ", ".join(format_cells_per_kg(level) for level in settings.dose_levels_cells_per_kg)
        raise DoseRefused("unknown_level", f"{format_cells_per_kg(dose_level_cells_per_kg)} is not a dose level of "
                                           f"{protocol.short_name} ({levels})")
    product_id = product_id or protocol.products[0]
    if product_id not in protocol.products:
        raise DoseRefused("product_not_allowed", f"{product_id} is not a product of {protocol.short_name}")
    _refuse_weight(weight_kg, weight_measured_on, today, settings.weight_valid_days, infusion_on)
    assert weight_kg is not None and weight_measured_on is not None
    duration_h = infusion_duration_h if infusion_duration_h is not None else settings.infusion_duration_h

    target = (dose_level_cells_per_kg * weight_kg).to_integral_value(ROUND_HALF_UP)
    low = target * (_HUNDRED - settings.tolerance_percent) / _HUNDRED
    high = target * (_HUNDRED + settings.tolerance_percent) / _HUNDRED
    offered, excluded = offered_bags(protocol, bags, product_id=product_id, patient_id=patient_id,
                                     familial_donor_id=familial_donor_id, planned_at=planned_at)
    if not offered:
        why = "; ".join(f"{e.bag_id}: {e.reason}" for e in excluded) or "no bag in stock"
        raise DoseRefused("no_bags", f"no usable bag of {product_id} for this patient ({why})")

    def count(bag: CandidateBag) -> int:
        return int(bag.viable_cells if settings.dose_basis == "viable" else bag.total_cells)

    offered.sort(key=lambda b: (-count(b), b.expires_at, _in_id_order(b.bag_id)))
    cells = [count(b) for b in offered]
    found = _search(cells, int(target), low)
    if found is None:
        raise DoseRefused("not_enough_cells", (
            f"not enough cells: the {len(offered)} usable bag(s) hold {sum(cells):,} {settings.dose_basis} cells, "
            f"the target is {int(target):,} and the band allows no less than {int(low.to_integral_value(ROUND_HALF_UP)):,} "
            f"(-{settings.tolerance_percent} %)"))
    indices, exhaustive = found
    chosen = [offered[i] for i in indices]
    waste = sum(count(b) for b in chosen) - target
    partial = None
    if waste > 0:  # the latest-expiring bag able to supply the remainder is drawn partially
        partial = max((b for b in chosen if count(b) > waste), key=lambda b: (b.expires_at, _in_id_order(b.bag_id)))

    draws: list[BagDraw] = []
    for bag in sorted(chosen, key=lambda b: (b is partial, b.expires_at, _in_id_order(b.bag_id))):
        volume_ml, bag_cells = bag.volume_ml, Decimal(count(bag))
        if bag is partial:
            exact_ml = (bag_cells - waste) * bag.volume_ml / bag_cells
            steps = (exact_ml / settings.draw_resolution_ml).to_integral_value(ROUND_HALF_EVEN)
            volume_ml = min(max(steps, Decimal(1)) * settings.draw_resolution_ml, bag.volume_ml)
            bag_cells = (bag_cells * volume_ml / bag.volume_ml).to_integral_value(ROUND_FLOOR)
        dmso_g = dmso_grams(volume_ml, bag.dmso_percent, settings.dmso_density_g_per_ml)
        eu = None if bag.endotoxin_eu_per_ml is None else volume_ml * bag.endotoxin_eu_per_ml
        draws.append(BagDraw(bag.bag_id, bag.din, volume_ml, bag.volume_ml, bag_cells, volume_ml < bag.volume_ml, dmso_g, eu))

    delivered = sum((d.cells for d in draws), Decimal(0))
    if not low <= delivered <= high:
        raise DoseRefused("outside_tolerance", (
            f"the best allocation delivers {delivered:,} cells, outside the band {low:,}-{high:,} "
            f"(target {target:,} +/- {settings.tolerance_percent} %): the partial draw cannot be measured finely enough"))
    total_ml = sum((d.volume_ml for d in draws), Decimal(0))
    dmso_g = sum((d.dmso_g for d in draws), Decimal(0))
    given = dmso_given or DmsoGiven()
    if not given.grams.is_finite() or given.grams < 0:
        raise DoseRefused("dmso_given_invalid", f"the DMSO already given {given.window} ({given.grams} g) cannot be "
                                                "read")
    dmso_refusal = dmso_window_refusal(dmso_g, given, weight_kg, settings.max_dmso_g_per_kg_per_day)
    if dmso_refusal is not None:  # DOMAIN.md 6: keep BELOW the limit, per kg in any 24 hours
        alone_below = dmso_g / weight_kg < settings.max_dmso_g_per_kg_per_day  # later, the course alone is judged
        raise DoseRefused("dmso_limit", dmso_refusal, given.later_words if alone_below else None)
    limit_eu = settings.endotoxin_k_eu_per_kg_per_h * weight_kg * duration_h
    # a bag without an endotoxin result leaves the load unknown ("no result"), but the bags that have one already
    # carry at least their sum: above the limit the dose is refused (one bag without a result skipped the check)
    known = sum((d.endotoxin_eu for d in draws if d.endotoxin_eu is not None), Decimal(0))
    unknown = sum(d.endotoxin_eu is None for d in draws)
    endotoxin = None if unknown else known
    if known > limit_eu:
        at_least = f"at least {known} EU ({unknown} bag(s) without an endotoxin result not counted)" if unknown else (
            f"{known} EU")
        raise DoseRefused("endotoxin_limit", (
            f"endotoxin would be {at_least} over {duration_h} h, above K x weight x time = {limit_eu} EU "
            f"(K = {settings.endotoxin_k_eu_per_kg_per_h} EU/kg/h)"))
    infused_ml = max(total_ml, settings.infusion_volume_ml)
    return DoseAllocation(
        protocol_id=protocol.id, protocol_version=protocol.version, protocol_sha256=protocol.sha256,
        patient_id=patient_id, dose_level_cells_per_kg=dose_level_cells_per_kg, dose_basis=settings.dose_basis,
        weight_kg=weight_kg, weight_measured_on=weight_measured_on, target_cells=target, low_cells=low,
        high_cells=high, tolerance_percent=settings.tolerance_percent, delivered_cells=delivered,
        delivered_cells_per_kg=(delivered / weight_kg).to_integral_value(ROUND_HALF_EVEN),
        deviation_percent=((delivered - target) * _HUNDRED / target).quantize(Decimal("0.01"), ROUND_HALF_EVEN),
        draws=tuple(draws), total_volume_ml=total_ml,
        waste_cells=sum((Decimal(count(b)) for b in chosen), Decimal(0)) - delivered,
        dmso_g=dmso_g, dmso_g_per_kg=dmso_per_kg_shown(dmso_g, weight_kg, settings.max_dmso_g_per_kg_per_day),
        max_dmso_g_per_kg=settings.max_dmso_g_per_kg_per_day,
        endotoxin_eu=endotoxin, endotoxin_limit_eu=limit_eu, infused_volume_ml=infused_ml,
        infusion_duration_h=duration_h,
        endotoxin_limit_eu_per_ml=endotoxin_limit_eu_per_ml(settings.endotoxin_k_eu_per_kg_per_h, weight_kg,
                                                            infused_ml, duration_h),
        excluded=tuple(excluded), exhaustive_search=exhaustive,
        endotoxin_k_eu_per_kg_per_h=settings.endotoxin_k_eu_per_kg_per_h,
        dmso_given_g=given.grams, dmso_given_at=given.times if given.grams else (),
        dmso_given_dated=given.dated if given.grams else (), dmso_window_end=given.until, dmso_window=given.window,
    )


def dose_at_new_weight(calculation: Mapping[str, Any], weight_kg: Decimal) -> list[str]:
    """What no longer holds when a signed prescription meets a newer weight of the patient: the cells per kg
    outside the band, the DMSO not below its limit per kg (with the DMSO already given in the 24 hours before it when
    it was signed, dmso_given_g), the endotoxin above K x weight x time. Plain words, none when the
    prescription still holds. `calculation` is the prescription's stored calculation (allocation_data: decimals as
    text), so the band and limits are those it was signed under, not today's protocol file."""
    value = {key: Decimal(calculation[key]) for key in ("dose_level_cells_per_kg", "tolerance_percent",
                                                         "delivered_cells", "dmso_g", "max_dmso_g_per_kg",
                                                         "endotoxin_limit_eu", "weight_kg")}
    level, tolerance = value["dose_level_cells_per_kg"], value["tolerance_percent"]
    problems = []
    per_kg = value["delivered_cells"] / weight_kg
    low, high = level * (_HUNDRED - tolerance) / _HUNDRED, level * (_HUNDRED + tolerance) / _HUNDRED
    if not low <= per_kg <= high:
        # to 0.01 x10^6/kg, but never onto the band: 2.2004 x10^6/kg, refused, is not written "2.2" (+10 %,
        # allowed) but "2.21" (rounded away from the band, as the value judged lies outside it)
        shown = per_kg.quantize(Decimal("1E+4"))
        if low <= shown <= high:
            shown = per_kg.quantize(Decimal("1E+4"), ROUND_CEILING if per_kg > high else ROUND_FLOOR)
        problems.append(f"the bags would give {format_cells_per_kg(shown)} instead of "
                        f"{format_cells_per_kg(level)} (allowed: +/- {tolerance.normalize():f} %)")
    given = Decimal(calculation.get("dmso_given_g") or 0)
    if (value["dmso_g"] + given) / weight_kg >= value["max_dmso_g_per_kg"]:
        with_given = (f" ({given:.2f} g already given in the 24 hours before it + {value['dmso_g']:.2f} g in this "
                      "course)"
                      if given else "")
        problems.append(f"DMSO would be {_per_kg_words((value['dmso_g'] + given) / weight_kg, ROUND_CEILING)} g/kg"
                        f"{with_given}, not below the "
                        f"limit of {value['max_dmso_g_per_kg'].normalize():f} g/kg")
    endotoxin = calculation.get("endotoxin_eu")
    limit = value["endotoxin_limit_eu"] * weight_kg / value["weight_kg"]  # K x weight x time, at the new weight
    if endotoxin is not None and Decimal(endotoxin) > limit:
        problems.append(f"endotoxin would be {Decimal(endotoxin).normalize():f} EU, above the limit of "
                        f"{limit.quantize(Decimal('0.01'))} EU for this weight")
    return problems


def infused_against_prescribed(infused_ml: Decimal, prescribed_ml: Decimal, tolerance_percent: Decimal) -> str | None:
    """How the volume given compares with the volume the prescription draws from the bag: "more" for any amount
    above it (the prescription set it), "less" when short by more than the protocol's dose tolerance (the
    infusion stopped early for a reaction, a leak: the dose then falls outside its band), None otherwise (a
    shortfall inside the band, such as the line's dead volume, still gives a dose within it)."""
    if infused_ml > prescribed_ml:
        return "more"
    if infused_ml < prescribed_ml * (_HUNDRED - tolerance_percent) / _HUNDRED:
        return "less"
    return None


@dataclass(frozen=True)
class CourseBag:
    """One bag of a prescription's course as it stands on the ward: `cells` and `volume_ml` are what the
    prescription draws from it (cells counted on the protocol's dose basis); `state` "given" (its infusion started;
    `infused_ml` the volume recorded at its end, None while it runs), "to_give" (not given yet) or "lost"
    (discarded, or returned to the unit: it will not be given)."""

    din: str
    cells: Decimal
    volume_ml: Decimal
    state: str
    infused_ml: Decimal | None = None
    status: str = ""  # the bag's own state (discarded, returned...), for the words
    check_character: str = ""  # K, so that the words naming a lost bag say it as its label does (din_shown)


@dataclass(frozen=True)
class CourseDose:
    """What a course gives: the cells given so far, those its bags still to give would add, and those lost."""

    given_cells: Decimal
    to_give_cells: Decimal
    lost_cells: Decimal
    lost: tuple[CourseBag, ...]

    @property
    def expected_cells(self) -> Decimal:
        """Given so far plus what the bags still to give would give as prescribed."""
        return self.given_cells + self.to_give_cells


def cells_given(prescribed_cells: Decimal, prescribed_ml: Decimal, infused_ml: Decimal | None) -> Decimal:
    """The cells a bag gave: its prescribed cells in proportion to the volume recorded at the infusion's end
    (a homogeneous suspension; more than prescribed counts more), or as prescribed while the infusion runs.

    The bedside check adds the same up in SQL, in its one statement (custody.checks._course_given: cells x infused
    / prescribed mL, as prescribed while it runs or when its draw is 0 mL): change the two together."""
    if infused_ml is None or prescribed_ml <= 0:
        return prescribed_cells
    return prescribed_cells * infused_ml / prescribed_ml


def course_dose(bags: Sequence[CourseBag]) -> CourseDose:
    """Add up a course (pure). A bag given counts at the volume recorded at its end (its cells in proportion,
    assuming a homogeneous suspension; more than prescribed counts more), or as prescribed while it runs; a bag
    still to give counts as prescribed; a lost bag counts nothing."""
    given = to_give = lost_cells = Decimal(0)
    lost: list[CourseBag] = []
    for bag in bags:
        if bag.state == "given":
            given += cells_given(bag.cells, bag.volume_ml, bag.infused_ml)
        elif bag.state == "lost":
            lost_cells += bag.cells
            lost.append(bag)
        else:
            to_give += bag.cells
    return CourseDose(given, to_give, lost_cells, tuple(lost))


def course_low_cells(calculation: Mapping[str, Any]) -> Decimal:
    """The lower limit of the band a prescription was signed under (its stored calculation, decimals as text):
    its low_cells, or target x (100 - tolerance) / 100 for a calculation stored without it."""
    if calculation.get("low_cells") is not None:
        return Decimal(calculation["low_cells"])
    return (Decimal(calculation["target_cells"]) * (_HUNDRED - Decimal(calculation["tolerance_percent"]))
            / _HUNDRED)


def course_high_cells(calculation: Mapping[str, Any]) -> Decimal:
    """The upper limit of the band a prescription was signed under (its stored calculation, decimals as text): its
    high_cells, or target x (100 + tolerance) / 100 for a calculation stored without it (the bedside check's
    course_over: custody.checks)."""
    if calculation.get("high_cells") is not None:
        return Decimal(calculation["high_cells"])
    return (Decimal(calculation["target_cells"]) * (_HUNDRED + Decimal(calculation["tolerance_percent"]))
            / _HUNDRED)


def cells_per_kg_words(cells: Decimal, weight_kg: Decimal) -> str:
    """Cells for a weight as the protocols write a level: "1.65 x10^6/kg" (to 0.01 x10^6/kg)."""
    return per_kg_words(cells / weight_kg)


def per_kg_words(cells_per_kg: Decimal) -> str:
    """A dose per kg as the protocols write a level, to 0.01 x10^6/kg: "1.65 x10^6/kg"."""
    return format_cells_per_kg(cells_per_kg.quantize(Decimal("1E+4")))
