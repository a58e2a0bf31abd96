"""The bags a patient's dose may be drawn from, and the dose calculation dry run (DOMAIN.md sections 6 and 8).

Candidates come from the lots package (lots.queries.available_bags: lot released or conditionally released,
bag in stock, not expired at the planned infusion), for each product the protocol allows; a bag with an active
allocation is marked allocated. The pure core (core.dosing) then applies the patient rules: a directed
product's bag is offered only to its intended recipient (the familial donor's recipient code), the tolerance
band, DMSO and endotoxin limits. Bags of a conditionally released lot are usable but flagged. Each bag carries
its lot's endotoxin release result in EU/mL (release.queries.endotoxin_eu_per_ml), so the core computes the
endotoxin load of the draws and refuses it above K x weight x time (Ph. Eur. 5.1.10 K/M). The DMSO limit per kg
per day is held over any 24 hours: the DMSO the patient already received in the 24 hours before the planned
infusion (dmso_given_within: the bags of a stopped course) is added to the course's before the core judges it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.bounds import FIRST_DAY, LAST_DAY, plausible_day
from mscbatch.core.cohorts import CohortState, EscalationError, check_prescription
from mscbatch.core.culture import format_cells
from mscbatch.core.dosing import (
    LAST_24_HOURS,
    CandidateBag,
    DmsoGiven,
    DoseAllocation,
    DoseRefused,
    calculate_dose,
    cells_given,
    dmso_grams,
    offered_bags,
    per_kg_words,
    start_words,
    window_start_before,
)
from mscbatch.core.identifiers import din_shown
from mscbatch.core.numbers import plain
from mscbatch.core.protocols import Protocol
from mscbatch.database import utcnow
from mscbatch.donors.models import Donor
from mscbatch.errors import ValidationFailed
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import available_bags
from mscbatch.patients.models import Allocation, Patient, Prescription, WeightMeasurement
from mscbatch.patients.queries import (
    allocated_volume_ml,
    cohort_plans,
    familial_donor_of,
    latest_weight,
    protocol_of,
)
from mscbatch.release.queries import endotoxin_eu_per_ml, exceptional_patients
from mscbatch.site import local_and_utc, site_config, site_day, site_today


def _cells(bag: Bag, lot: Lot) -> tuple[Decimal, Decimal]:
    """(viable, total) cells of a bag. Bags carry cells on the lot's cell basis (lots.bags.cryopreserve); the
    other count is derived with the harvest viability (or taken equal when the viability is unknown)."""
    cells = Decimal(bag.total_cells)
    viability = lot.harvest_viability_percent
    if not viability:
        return cells, cells
    if (lot.cell_basis or "viable") == "viable":
        return cells, (cells * 100 / Decimal(viability)).to_integral_value(ROUND_FLOOR)
    return (cells * Decimal(viability) / 100).to_integral_value(ROUND_FLOOR), cells


def candidate(bag: Bag, lot: Lot, donor: Donor | None, allocated: bool,
              endotoxin_eu_per_ml: Decimal | None = None, exceptional_for: str | None = None) -> CandidateBag:
    """The core's view of a bag. `endotoxin_eu_per_ml`: the lot's endotoxin release result (None = no result)."""
    viable, total = _cells(bag, lot)
    recipient = donor.recipient_code if donor is not None and donor.donor_type == "familial" else None
    return CandidateBag(
        bag_id=str(bag.id), din=bag.din, viable_cells=viable, total_cells=total, volume_ml=Decimal(bag.volume_ml),
        dmso_percent=Decimal(bag.dmso_percent), expires_at=bag.expires_at,
        released=lot.status in ("released", "conditional_release"), allocated=allocated or bag.status == "allocated",
        on_hold=bag.status == "on_hold", product_id=lot.product_id, donor_id=str(lot.donor_id),
        intended_recipient_id=recipient, endotoxin_eu_per_ml=endotoxin_eu_per_ml, exceptional_for=exceptional_for)


def candidate_bags(session: Session, protocol: Protocol, at: datetime) -> dict[str, tuple[CandidateBag, Bag, Lot]]:
    """bag id (text) -> (core view, bag, lot), for every bag the lots package says may be allocated now."""
    rows = [row for product in protocol.products for row in available_bags(session, product_id=product, at=at)]
    ids = [bag.id for bag, _lot in rows]
    taken = set(session.scalars(select(Allocation.active_bag_id).where(Allocation.active_bag_id.in_(ids)))) if ids else set()
    donors = {d.id: d for d in session.scalars(select(Donor).where(Donor.id.in_({lot.donor_id for _b, lot in rows})))}
    endotoxin = endotoxin_eu_per_ml(session, {lot.id: lot for _b, lot in rows}.values())
    exceptional = exceptional_patients(session, {lot.id for _b, lot in rows})
    return {str(bag.id): (candidate(bag, lot, donors.get(lot.donor_id), bag.id in taken, endotoxin.get(lot.id),
                                    exceptional.get(lot.id)), bag, lot)
            for bag, lot in rows}


@dataclass(frozen=True)
class InfusedBag:
    """One bag infused to the patient under the protocol, with the cells it gave: in proportion to the volume
    infused once the infusion has ended, the prescribed draw while it runs."""

    bag_id: int
    din: str
    check_character: str  # K, so that every sentence names the bag as its label does (din_shown)
    prescription_id: int
    started_at: datetime
    cells: Decimal
    volume_infused_ml: Decimal | None  # None: the infusion has not ended
    weight_kg: Decimal  # the weight of the prescription it was given under

    @property
    def cells_per_kg(self) -> Decimal:
        return self.cells / self.weight_kg

    @property
    def din_shown(self) -> str:
        return din_shown(self)


@dataclass(frozen=True)
class AlreadyInfused:
    """The cells a patient was already given under a protocol (a stopped course): shown on the dose page and in the
    dry run, never subtracted from the new dose; a new prescription then needs the repeat course's reason."""

    protocol_short_name: str
    bags: tuple[InfusedBag, ...]

    @property
    def cells(self) -> Decimal:
        return sum((b.cells for b in self.bags), Decimal(0))

    @property
    def cells_per_kg(self) -> Decimal:
        """Per kg of the weight each bag was prescribed for, in whole cells."""
        return sum((b.cells_per_kg for b in self.bags), Decimal(0)).to_integral_value(ROUND_FLOOR)

    @property
    def words(self) -> str:
        if not self.bags:
            return f"no cells infused to this patient under {self.protocol_short_name} so far"
        # the site's clock first, UTC beside it: around midnight a UTC time alone names the wrong day
        bags = "; ".join(f"bag {din_shown(b)} started {local_and_utc(b.started_at)} (prescription {b.prescription_id}, "
                         + (f"{plain(b.volume_infused_ml)} mL infused" if b.volume_infused_ml is not None
                            else "infusion not ended: its prescribed draw") + ")" for b in self.bags)
        return (f"{format_cells(self.cells)} cells = {per_kg_words(self.cells_per_kg)} "
                f"already infused to this patient under {self.protocol_short_name} ({bags})")

    def data(self) -> dict[str, Any]:
        return {"cells": f"{self.cells.to_integral_value(ROUND_FLOOR):f}", "cells_per_kg": f"{self.cells_per_kg:f}",
                "words": self.words,
                "bags": [{"bag_id": b.bag_id, "din": b.din, "prescription_id": b.prescription_id,
                          "started_at": b.started_at.isoformat(), "cells": f"{b.cells.to_integral_value(ROUND_FLOOR):f}",
                          "volume_infused_ml": None if b.volume_infused_ml is None else f"{b.volume_infused_ml:f}",
                          "weight_kg": f"{b.weight_kg:f}"} for b in self.bags]}


def already_infused(session: Session, patient: Patient, protocol: Protocol) -> AlreadyInfused:
    """Every bag infused to the patient under the protocol's signed prescriptions (whatever their status since:
    a stopped course keeps the allocation of the bags it gave), in order of start."""
    from mscbatch.custody.models import Infusion  # custody reads patients: imported when called

    rows = session.execute(
        select(Infusion, Allocation, Prescription, Bag.din, Bag.check_character)
        .join(Allocation, (Allocation.bag_id == Infusion.bag_id) & (Allocation.patient_id == Infusion.patient_id))
        .join(Prescription, Prescription.id == Allocation.prescription_id)
        .join(Bag, Bag.id == Infusion.bag_id)
        .where(Infusion.patient_id == patient.id, Prescription.protocol_id == protocol.id,
               Prescription.locked_at.is_not(None))
        .order_by(Infusion.started_at, Infusion.id, Allocation.id.desc()))
    chosen: dict[int, tuple[Any, Allocation, Prescription, str, str]] = {}
    for infusion, allocation, prescription, din, k in rows:
        held = chosen.get(infusion.id)
        # the allocation the bag was given under: the one still holding it (an infused bag keeps it), else the latest
        if held is None or (allocation.active and not held[1].active):
            chosen[infusion.id] = (infusion, allocation, prescription, din, k)
    bags = []
    for infusion, allocation, prescription, din, k in chosen.values():
        drawn = cells_given(Decimal(allocation.cells), Decimal(allocation.volume_ml),
                            None if infusion.volume_infused_ml is None else Decimal(infusion.volume_infused_ml))
        bags.append(InfusedBag(bag_id=infusion.bag_id, din=din, check_character=k, prescription_id=prescription.id,
                               started_at=infusion.started_at, cells=drawn.to_integral_value(ROUND_FLOOR),
                               volume_infused_ml=None if infusion.volume_infused_ml is None
                               else Decimal(infusion.volume_infused_ml),
                               weight_kg=Decimal(prescription.weight_kg)))
    return AlreadyInfused(protocol.short_name, tuple(bags))


def dmso_given_within(session: Session, patient_id: int, until: datetime, density_g_per_ml: Decimal, *,
                      window: str = LAST_24_HOURS, now: datetime | None = None) -> DmsoGiven:
    """The DMSO the patient already received in the 24 hours before `until` (the moment judged): every infusion of
    the patient started in (until - 24 h, until], at the volume recorded at its end x the bag's DMSO % x the density.
    An infusion not ended yet counts the volume its signed allocation draws from the bag (a partial draw), or the
    whole bag when no allocation holds it (the worst case). The starts are written on the site's clock as read on
    `now`'s site day ("09:12", "yesterday 23:50", "2026-12-03 23:50"), and with their day for a record read later;
    `window` says the 24 hours in words for the refusal and the dose line."""
    from mscbatch.custody.models import Infusion  # custody reads patients: imported when called

    tz = site_config().tz
    drawn = allocated_volume_ml(Infusion.bag_id, active_only=False)  # kept by an infused bag
    rows = session.execute(
        select(Infusion.started_at, Infusion.volume_infused_ml, Bag.volume_ml, Bag.dmso_percent, drawn)
        .join(Bag, Bag.id == Infusion.bag_id)
        .where(Infusion.patient_id == patient_id, Infusion.started_at > window_start_before(until),
               Infusion.started_at <= until)
        .order_by(Infusion.started_at, Infusion.id))
    today = site_day(now or utcnow())
    grams, times, dated = Decimal(0), [], []
    last: datetime | None = None
    for started_at, infused_ml, bag_ml, percent, drawn_ml in rows:
        running = ""
        if infused_ml is None:  # not ended: what its prescription draws from the bag, else the whole bag
            volume = Decimal(bag_ml) if drawn_ml is None else min(Decimal(drawn_ml), Decimal(bag_ml))
            running = (", not ended: its whole bag counted" if drawn_ml is None or volume == Decimal(bag_ml)
                       else f", not ended: its prescribed {volume.normalize():f} mL counted")
        else:
            volume = Decimal(infused_ml)
        grams += dmso_grams(volume, Decimal(percent), density_g_per_ml)
        local = last = started_at.astimezone(tz)
        times.append(start_words(local, today) + running)
        dated.append(f"{local:%Y-%m-%d %H:%M}" + running)
    return DmsoGiven(grams, tuple(times), tuple(dated), until.astimezone(tz), window, last)


def dmso_window_of(planned_at: datetime, now: datetime) -> tuple[datetime, str]:
    """The moment a dose's DMSO is judged at and its 24 hours in words: the planned infusion, or now when it is not
    later (a bag is never given in the past; without a planned time the dose is judged now)."""
    if planned_at <= now:
        return now, LAST_24_HOURS
    return planned_at, f"in the 24 hours before {planned_at.astimezone(site_config().tz):%Y-%m-%d %H:%M}"


@dataclass
class DoseResult:
    """A dry run: the allocation or the refusal, with everything the clinician needs to judge it."""

    patient: Patient
    protocol: Protocol
    state: CohortState
    weight: WeightMeasurement | None
    level_cells_per_kg: Decimal | None
    planned_at: datetime
    allocation: DoseAllocation | None = None
    refusal: DoseRefused | None = None
    bags: dict[str, tuple[CandidateBag, Bag, Lot]] = field(default_factory=dict)
    infused: CohortState | None = None  # the plan counted from infusions started (queries.cohort_plans)
    already: AlreadyInfused | None = None  # what this patient was already given under this protocol
    dmso_given: DmsoGiven | None = None  # the DMSO this patient already received in the 24 hours before it

    @property
    def highest_total_cells_per_kg(self) -> Decimal:
        """The most a patient may receive under the protocol, all courses together: its highest dose level with its
        tolerance band's upper end (a single course at that level may deliver that much)."""
        dosing = self.protocol.dosing
        return max(dosing.dose_levels_cells_per_kg) * (100 + dosing.tolerance_percent) / 100

    @property
    def course_total_cells_per_kg(self) -> Decimal | None:
        """What the patient already received under the protocol plus this calculation's dose, per kg."""
        if self.allocation is None:
            return None
        given = self.already.cells_per_kg if self.already is not None else Decimal(0)
        return given + Decimal(self.allocation.delivered_cells_per_kg)

    @property
    def course_total_words(self) -> str | None:
        """The total with this dose, in words (the dose page shows it before signing a repeat course)."""
        total = self.course_total_cells_per_kg
        if total is None:
            return None
        dosing = self.protocol.dosing
        given = self.already.cells_per_kg if self.already is not None else Decimal(0)
        return (f"already received {per_kg_words(given)} + this dose "
                f"{per_kg_words(Decimal(self.allocation.delivered_cells_per_kg))} = {per_kg_words(total)} in all "
                f"under {self.protocol.short_name}; the protocol's highest dose level is "
                f"{per_kg_words(max(dosing.dose_levels_cells_per_kg))} (at most "
                f"{per_kg_words(self.highest_total_cells_per_kg)} with its +{plain(dosing.tolerance_percent)} % band)")

    @property
    def course_total_refusal(self) -> str | None:
        """Why this dose is refused because the patient's total under the protocol would exceed its highest level."""
        total = self.course_total_cells_per_kg
        if total is None or total <= self.highest_total_cells_per_kg:
            return None
        return (f"total dose too high: {self.course_total_words}. A dose that takes the patient above the protocol's "
                "highest level cannot be prescribed; nothing was signed")

    @property
    def repeat_course(self) -> bool:
        """Cells were already infused to this patient under this protocol: signing needs the repeat course's reason."""
        return self.already is not None and bool(self.already.bags)

    def bag(self, bag_id: str) -> tuple[Bag, Lot]:
        _c, bag, lot = self.bags[bag_id]
        return bag, lot

    @property
    def conditional_dins(self) -> list[str]:
        if self.allocation is None:
            return []
        return [d.din for d in self.allocation.draws if self.bags[d.bag_id][2].status == "conditional_release"]


#: No protocol doses a billion cells or more per kg: a level beyond it is a typing error, not a level to compare
MAX_LEVEL_CELLS_PER_KG = Decimal(10) ** 9


def _refuse_implausible(level: Decimal | None, planned_at: datetime | None) -> None:
    """What is asked before the calculation: a dose level that is a plausible number of cells per kg (1E+999999999
    overflowed the formatting of the refusal, a 500), a planned day within the dates records can hold."""
    if level is not None and not (level.is_finite() and 0 < level < MAX_LEVEL_CELLS_PER_KG):
        raise ValidationFailed("Dose level: a number of cells per kg above 0 and below 10^9, the protocol's level "
                               "(e.g. 2000000 for 2 x10^6/kg).", field="dose_level_cells_per_kg")
    if planned_at is not None and not plausible_day(planned_at.date()):
        raise ValidationFailed(f"Planned infusion date: between {FIRST_DAY} and {LAST_DAY}.", field="planned_at")


def _refuse_past(planned_at: datetime | None, today: date) -> None:
    """A planned infusion before today (the site's day) is a typing slip or a copied old date: the bags would be
    judged in date and the weight recent on a day already gone, not on the day the cells are actually given."""
    if planned_at is not None and site_day(planned_at) < today:
        raise ValidationFailed(f"Planned infusion date: {site_day(planned_at)} is before today ({today}). An infusion "
                               "cannot be planned in the past: choose today or a later day.", field="planned_at")


def plan_words(text: str, state: CohortState, infused: CohortState | None) -> str:
    """core.cohorts' "(stage 'initial', 3 of 5 dosed)" in the words the dose and cohort pages count the same stage
    ("stage 'initial': 3 of 5 patients prescribed, 2 infused": templates/patients/_cohort.html), so that one page
    never says "dosed" of prescriptions beside "prescribed" and "infused"."""
    for stage in state.stages:
        old = f"(stage {stage.stage_id!r}, {stage.dosed} of {stage.planned} dosed)"
        if old in text:
            given = next((s.dosed for s in (infused.stages if infused else ()) if s.stage_id == stage.stage_id), 0)
            text = text.replace(old, f"(stage {stage.stage_id!r}: {stage.dosed} of {stage.planned} patients "
                                     f"prescribed, {given} infused)")
    return text


def calculate(session: Session, patient_id_or_patient: Any, *, level_cells_per_kg: Decimal | None = None,
              planned_at: datetime | None = None, only_bag_ids: list[int] | None = None,
              today: date | None = None) -> DoseResult:
    """The dose calculation for a patient (no writes). The level defaults to the cohort's current level."""
    today = today or site_today()
    _refuse_implausible(level_cells_per_kg, planned_at)
    _refuse_past(planned_at, today)
    patient = (patient_id_or_patient if isinstance(patient_id_or_patient, Patient)
               else session.get(Patient, patient_id_or_patient))
    assert patient is not None
    protocol = protocol_of(patient)
    now = utcnow()
    planned_at = planned_at or now
    state, infused = cohort_plans(session, protocol, excluding_patient_id=patient.id)
    level = level_cells_per_kg if level_cells_per_kg is not None else state.default_level_cells_per_kg
    weight = latest_weight(session, patient.id)
    result = DoseResult(patient, protocol, state, weight, level, planned_at, infused=infused,
                        already=already_infused(session, patient, protocol))
    try:
        if patient.status == "withdrawn":
            raise DoseRefused("withdrawn", f"patient {patient.code} has been withdrawn from the trial: no new "
                                           "prescription")
        if level is None:
            raise DoseRefused("escalation", plan_words(state.message, state, infused))
        try:
            check_prescription(state, level)
        except EscalationError as error:
            raise DoseRefused("escalation", plan_words(str(error), state, infused)) from None
        bags = candidate_bags(session, protocol, planned_at)
        if only_bag_ids is not None:
            bags = {k: v for k, v in bags.items() if int(k) in set(only_bag_ids)}
        result.bags = bags
        donor = familial_donor_of(session, patient)
        until, window = dmso_window_of(planned_at, now)
        result.dmso_given = dmso_given_within(session, patient.id, until, protocol.dosing.dmso_density_g_per_ml,
                                              window=window, now=now)
        result.allocation = calculate_dose(
            protocol, patient_id=patient.code, enrolled=patient.status == "enrolled", dose_level_cells_per_kg=level,
            weight_kg=None if weight is None else Decimal(weight.weight_kg),
            weight_measured_on=None if weight is None else weight.measured_on, today=today,
            planned_at=planned_at, infusion_on=site_day(planned_at), bags=[c for c, _b, _l in bags.values()],
            familial_donor_id=None if donor is None else str(donor.id), dmso_given=result.dmso_given)
        over = result.course_total_refusal
        if over is not None:
            result.allocation = None
            raise DoseRefused("course_total", over)
    except DoseRefused as refusal:
        if refusal.code == "no_bags":  # only here: the normal path never pays for the second stock query
            refusal = _expire_before_plan(session, protocol, patient, refusal, planned_at, now, only_bag_ids)
        result.refusal = refusal
    return result


def _expire_before_plan(session: Session, protocol: Protocol, patient: Patient, refusal: DoseRefused,
                        planned_at: datetime, now: datetime, only_bag_ids: list[int] | None) -> DoseRefused:
    """"No usable bag", said better when bags that would suit the patient ARE in stock now but all expire before the
    planned infusion (the stock query at the planned instant leaves them out, so the refusal said "no bag in stock"):
    how many, the planned infusion, the earliest and latest expiry, and to plan an earlier day."""
    if planned_at <= now:
        return refusal
    product_id = protocol.products[0]  # the product the core refused (calculate_dose's default)
    donor = familial_donor_of(session, patient)
    gone = [c for c, _b, _l in candidate_bags(session, protocol, now).values()
            if c.expires_at <= planned_at and c.product_id == product_id
            and (only_bag_ids is None or int(c.bag_id) in set(only_bag_ids))]
    suiting, _others = offered_bags(protocol, gone, product_id=product_id, patient_id=patient.code,
                                    familial_donor_id=None if donor is None else str(donor.id), planned_at=now)
    if not suiting:
        return refusal
    earliest = min(b.expires_at for b in suiting)
    latest = max(b.expires_at for b in suiting)
    local = planned_at.astimezone(site_config().tz)
    # the dose page plans a day (dose_views.planned_at_of: its 23:59): said as the day; an API instant as itself
    planned = f"{local:%Y-%m-%d}" if (local.hour, local.minute) == (23, 59) else local_and_utc(planned_at)
    if len(suiting) == 1:
        stock = (f"the only bag of {product_id} in stock for this patient expires {local_and_utc(latest)}, before the "
                 f"planned infusion on {planned}")
    elif earliest == latest:
        stock = (f"the {len(suiting)} bags of {product_id} in stock for this patient all expire {local_and_utc(latest)}, "
                 f"before the planned infusion on {planned}")
    else:
        stock = (f"the {len(suiting)} bags of {product_id} in stock for this patient all expire before the planned "
                 f"infusion on {planned}: the earliest {local_and_utc(earliest)}, the latest {local_and_utc(latest)}")
    earlier = f"plan the infusion earlier, before {local_and_utc(latest)}"
    if refusal.reason.endswith("(no bag in stock)"):
        return DoseRefused(refusal.code, f"no usable bag of {product_id} for this patient: {stock}; {earlier}",
                           refusal.later)
    return DoseRefused(refusal.code, f"{refusal.reason}; besides, {stock}; {earlier}", refusal.later)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:f}"  # no exponent: 125000000, not 1.2500E+8
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def allocation_data(allocation: DoseAllocation) -> dict[str, Any]:
    """The whole calculation as plain JSON values (Decimals as strings): stored on the prescription."""
    data = _plain(asdict(allocation))
    data["bag_count"] = allocation.bag_count
    return data
