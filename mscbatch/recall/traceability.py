"""Chain of identity, read both ways (DOMAIN.md section 8, issue 7):

forward  donor (or reagent lot) -> lots -> bags -> patients (through allocations by prescriptions);
backward patient -> bags -> lots -> donor -> reagent lots.

A patient "received product" from a bag when the bag left the unit for them (dispatched, received on the
ward, thawed or infused) under an allocation that was not cancelled; the infusion time comes from the
custody record when the custody capability records one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.donors.models import Donor
from mscbatch.errors import NotFound
from mscbatch.lots.models import Bag, Lot, ReagentLot, ReagentUse
from mscbatch.lots.queries import bags_of, lots_of_donor, lots_using_reagent
from mscbatch.lots.record_corrections import RecordCorrection, record_corrections
from mscbatch.patients.course import CourseSummary, course_summaries
from mscbatch.patients.models import Allocation, Patient, Prescription
from mscbatch.recall.queries import bag_hold, bag_holds, chunks

OUT_OF_UNIT = ("dispatched", "received", "thawed", "infused")


@dataclass(frozen=True)
class Recipient:
    patient: Patient
    prescription: Prescription
    allocation: Allocation
    received: bool  # the bag went to this patient (left the unit or infused)
    infused_at: datetime | None = None

    @property
    def cancelled(self) -> bool:
        return self.allocation.released_at is not None


@dataclass
class BagTrace:
    bag: Bag
    hold: str | None
    recipients: list[Recipient] = field(default_factory=list)

    @property
    def infused(self) -> bool:
        return self.bag.status == "infused"

    @property
    def current_recipient(self) -> Recipient | None:
        return next((r for r in self.recipients if not r.cancelled), None)


@dataclass
class LotTrace:
    lot: Lot
    donor: Donor
    reagents: list[tuple[ReagentUse, ReagentLot]]
    bags: list[BagTrace]
    #: every correction of the lot's manufacturing record after first entry (lots.record_corrections), read for a
    #: lot's own trace (forward_from_lot: its PDF prints them, EU GMP Annex 11 8.2); None when not read
    corrections: list[RecordCorrection] | None = None


@dataclass
class ForwardTrace:
    origin: str  # "donor" | "reagent_lot" | "lot"
    donor: Donor | None
    reagent_lot: ReagentLot | None
    lots: list[LotTrace]

    @property
    def patients(self) -> list[Patient]:
        seen: dict[int, Patient] = {}
        for lot in self.lots:
            for bag in lot.bags:
                for recipient in bag.recipients:
                    if not recipient.cancelled:
                        seen.setdefault(recipient.patient.id, recipient.patient)
        return list(seen.values())


@dataclass
class BackwardEntry:
    recipient: Recipient
    bag: Bag
    lot: Lot
    donor: Donor
    reagents: list[tuple[ReagentUse, ReagentLot]]
    hold: str | None


@dataclass
class BackwardTrace:
    patient: Patient
    entries: list[BackwardEntry]
    #: each prescription's course (patients.course.course_summaries, by prescription id): its state in the words of
    #: the patient page ("COMPLETED: every bag given" for a course whose every bag was given), for the PDF
    courses: dict[int, CourseSummary] = field(default_factory=dict)


def infusion_times(session: Session, bag_ids: list[int]) -> dict[int, datetime]:
    """When each bag's infusion started, from the custody record (mscbatch.custody), if that capability is
    installed; empty otherwise."""
    if not bag_ids:
        return {}
    try:
        from mscbatch.custody.models import Infusion
    except ImportError:  # pragma: no cover  (custody capability not installed)
        return {}
    return {bag_id: started for chunk in chunks(bag_ids) for bag_id, started in session.execute(
        select(Infusion.bag_id, Infusion.started_at).where(Infusion.bag_id.in_(chunk)))}


def recipients_of(session: Session, bag: Bag, infused: dict[int, datetime] | None = None) -> list[Recipient]:
    rows = session.execute(
        select(Allocation, Prescription, Patient).join(Prescription, Prescription.id == Allocation.prescription_id)
        .join(Patient, Patient.id == Allocation.patient_id).where(Allocation.bag_id == bag.id)
        .order_by(Allocation.id.desc()))
    return _recipients(bag, rows, infused or {})


def reagents_of(session: Session, lot_id: int) -> list[tuple[ReagentUse, ReagentLot]]:
    return [(use, reagent) for use, reagent in session.execute(
        select(ReagentUse, ReagentLot).join(ReagentLot, ReagentLot.id == ReagentUse.reagent_lot_id)
        .where(ReagentUse.lot_id == lot_id).order_by(ReagentUse.used_on, ReagentUse.id))]


def trace_lot(session: Session, lot: Lot) -> LotTrace:
    donor = session.get(Donor, lot.donor_id)
    assert donor is not None
    bags = bags_of(session, lot.id)
    infused = infusion_times(session, [b.id for b in bags])
    return LotTrace(lot=lot, donor=donor, reagents=reagents_of(session, lot.id),
                    bags=[BagTrace(bag=b, hold=bag_hold(session, b.id), recipients=recipients_of(session, b, infused))
                          for b in bags])


def trace_lots(session: Session, lots: list[Lot]) -> list[LotTrace]:
    """trace_lot of each of these lots, in their order, read set-based: a few statements per IDS_PER_STATEMENT lots
    (donors, bags, reagents, allocations, infusions, holds), never one per lot or per bag. A reagent recall reaches
    a thousand lots and ten thousand bags: read one bag at a time (its allocations, its hold) the recall's page
    took 24 000 statements and outlived the web server's timeout."""
    if not lots:
        return []
    lot_ids = list(dict.fromkeys(lot.id for lot in lots))
    donor_ids = list({lot.donor_id for lot in lots if lot.donor_id is not None})
    donors = {donor.id: donor for chunk in chunks(donor_ids)
              for donor in session.scalars(select(Donor).where(Donor.id.in_(chunk)))}
    bags: dict[int, list[Bag]] = {lot_id: [] for lot_id in lot_ids}  # each lot's, by bag number (bags_of)
    reagents: dict[int, list[tuple[ReagentUse, ReagentLot]]] = {lot_id: [] for lot_id in lot_ids}  # (reagents_of)
    allocations: dict[int, list[tuple[Allocation, Prescription, Patient]]] = {}  # each bag's, newest first
    infused: dict[int, datetime] = {}
    holds: dict[int, str] = {}
    try:
        from mscbatch.custody.models import Infusion
    except ImportError:  # pragma: no cover  (custody capability not installed)
        Infusion = None  # noqa: N806
    for chunk in chunks(lot_ids):
        for bag in session.scalars(select(Bag).where(Bag.lot_id.in_(chunk))
                                   .order_by(Bag.lot_id, Bag.bag_number, Bag.id)):
            bags[bag.lot_id].append(bag)
        for use, reagent in session.execute(
                select(ReagentUse, ReagentLot).join(ReagentLot, ReagentLot.id == ReagentUse.reagent_lot_id)
                .where(ReagentUse.lot_id.in_(chunk)).order_by(ReagentUse.lot_id, ReagentUse.used_on, ReagentUse.id)):
            reagents[use.lot_id].append((use, reagent))
        for allocation, prescription, patient in session.execute(
                select(Allocation, Prescription, Patient)
                .join(Prescription, Prescription.id == Allocation.prescription_id)
                .join(Patient, Patient.id == Allocation.patient_id).join(Bag, Bag.id == Allocation.bag_id)
                .where(Bag.lot_id.in_(chunk)).order_by(Allocation.bag_id, Allocation.id.desc())):
            allocations.setdefault(allocation.bag_id, []).append((allocation, prescription, patient))
        if Infusion is not None:
            infused.update({bag_id: started for bag_id, started in session.execute(
                select(Infusion.bag_id, Infusion.started_at).join(Bag, Bag.id == Infusion.bag_id)
                .where(Bag.lot_id.in_(chunk)))})
        holds.update(bag_holds(session, select(Bag.id).where(Bag.lot_id.in_(chunk))))
    out = []
    by_id = {lot.id: lot for lot in lots}
    for lot_id in lot_ids:
        lot = by_id[lot_id]
        donor = donors.get(lot.donor_id)
        assert donor is not None
        out.append(LotTrace(lot=lot, donor=donor, reagents=reagents[lot_id], bags=[
            BagTrace(bag=bag, hold=holds.get(bag.id),
                     recipients=_recipients(bag, allocations.get(bag.id, []), infused)) for bag in bags[lot_id]]))
    return out


def _recipients(bag: Bag, rows: Any, infused: dict[int, datetime]) -> list[Recipient]:
    """The bag's recipients from its allocations (newest first) with their prescriptions and patients."""
    out = []
    for allocation, prescription, patient in rows:
        received = allocation.released_at is None and bag.status in OUT_OF_UNIT
        out.append(Recipient(patient=patient, prescription=prescription, allocation=allocation, received=received,
                             infused_at=infused.get(bag.id) if received else None))
    return out


def forward_from_donor(session: Session, donor_id: int) -> ForwardTrace:
    donor = session.get(Donor, donor_id)
    if donor is None:
        raise NotFound(f"No donor with id {donor_id}.")
    lots = sorted(lots_of_donor(session, donor_id), key=lambda lot: lot.id)
    return ForwardTrace(origin="donor", donor=donor, reagent_lot=None,
                        lots=trace_lots(session, lots))


def forward_from_reagent_lot(session: Session, reagent_lot_id: int) -> ForwardTrace:
    reagent = session.get(ReagentLot, reagent_lot_id)
    if reagent is None:
        raise NotFound(f"No reagent lot with id {reagent_lot_id}.")
    lots: dict[int, Lot] = {}
    for _use, lot in lots_using_reagent(session, reagent_lot_id):
        lots.setdefault(lot.id, lot)
    return ForwardTrace(origin="reagent_lot", donor=None, reagent_lot=reagent,
                        lots=trace_lots(session, [lots[i] for i in sorted(lots)]))


def forward_from_lot(session: Session, lot_id: int) -> ForwardTrace:
    lot = session.get(Lot, lot_id)
    if lot is None:
        raise NotFound(f"No lot with id {lot_id}.")
    trace = trace_lot(session, lot)
    trace.corrections = record_corrections(session, lot)
    return ForwardTrace(origin="lot", donor=trace.donor, reagent_lot=None, lots=[trace])


def backward_from_patient(session: Session, patient_id: int) -> BackwardTrace:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"No patient with id {patient_id}.")
    rows = list(session.execute(
        select(Allocation, Prescription, Bag, Lot, Donor).join(Prescription, Prescription.id == Allocation.prescription_id)
        .join(Bag, Bag.id == Allocation.bag_id).join(Lot, Lot.id == Bag.lot_id).join(Donor, Donor.id == Lot.donor_id)
        .where(Allocation.patient_id == patient_id).order_by(Allocation.id)))
    infused = infusion_times(session, [row[2].id for row in rows])
    entries = []
    for allocation, prescription, bag, lot, donor in rows:
        received = allocation.released_at is None and bag.status in OUT_OF_UNIT
        recipient = Recipient(patient=patient, prescription=prescription, allocation=allocation, received=received,
                              infused_at=infused.get(bag.id) if received else None)
        entries.append(BackwardEntry(recipient=recipient, bag=bag, lot=lot, donor=donor,
                                     reagents=reagents_of(session, lot.id), hold=bag_hold(session, bag.id)))
    prescriptions = list({entry.recipient.prescription.id: entry.recipient.prescription for entry in entries}.values())
    return BackwardTrace(patient=patient, entries=entries, courses=course_summaries(session, prescriptions))


def bag_trace(session: Session, bag_id: int) -> tuple[BagTrace, Lot, Donor]:
    bag = session.get(Bag, bag_id)
    if bag is None:
        raise NotFound(f"No bag with id {bag_id}.")
    lot = session.get(Lot, bag.lot_id)
    assert lot is not None
    donor = session.get(Donor, lot.donor_id)
    assert donor is not None
    infused = infusion_times(session, [bag.id])
    return BagTrace(bag=bag, hold=bag_hold(session, bag.id), recipients=recipients_of(session, bag, infused)), lot, donor


def describe(value: Any) -> str:
    return str(value).replace("_", " ")
