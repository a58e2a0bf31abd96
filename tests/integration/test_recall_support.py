"""Set-up for the recall and traceability tests: one donor with a released and a quarantined lot, a patient
who received one bag and has another allocated, another donor's lot, and a medium lot both donor lots used."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.lots.models import Bag, ReagentLot, ReagentUse
from mscbatch.patients import prescriptions
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user


@dataclass
class Scene:
    donor_id: int
    donor_code: str
    released_lot_id: int
    quarantine_lot_id: int
    other_lot_id: int
    infused_bag_id: int
    dispatched_bag_id: int | None
    stock_bag_ids: list[int]
    patient_id: int
    patient_code: str
    reagent_lot_id: int


def set_status(session: Any, actor: Any, bag_id: int, status: str) -> None:
    with use_case(session, actor, "test set-up: custody moves recorded elsewhere"):
        session.get(Bag, bag_id).status = status


def scene(app: Any) -> Scene:
    """Donor D: a released lot (3 bags; one infused into patient P, one allocated to P, one in stock) and a
    quarantined lot (2 bags). Another donor's released lot stays untouched. Both D lots used one medium lot."""
    session = app.extensions["mscbatch.db"].new_session()
    try:
        tech, clin = user(session, "technician"), user(session, "clinician")
        the_donor = donor(session, tech)
        released = lot_with_bags(session, tech, the_donor, bags=3)
        quarantined = lot_with_bags(session, tech, the_donor, bags=2, status="quarantine")
        row = patient(session, clin)
        prescriptions.prescribe(session, clin, PASSWORD, row.id)
        allocated = sorted(b.id for b in session.scalars(select(Bag).where(Bag.status == "allocated")))
        assert allocated and all(session.get(Bag, b).lot_id == released[0].lot_id for b in allocated)
        other = lot_with_bags(session, tech, donor(session, tech), bags=2)
        set_status(session, tech, allocated[0], "infused")
        with use_case(session, tech):
            medium = ReagentLot(reagent_type="medium", name="MEM alpha", supplier="Acme Media", lot_number="MA-77",
                                expiry_date=site_today() + timedelta(days=200), registered_by_id=tech.id)
            session.add(medium)
            session.flush()
            for lot_id in (released[0].lot_id, quarantined[0].lot_id):
                session.add(ReagentUse(lot_id=lot_id, reagent_lot_id=medium.id, stage="expansion",
                                       used_on=site_today() - timedelta(days=10), recorded_by_id=tech.id))
        stock = [b.id for b in released + quarantined if b.id not in allocated[:1]]
        return Scene(the_donor.id, the_donor.code, released[0].lot_id, quarantined[0].lot_id, other[0].lot_id,
                     allocated[0], allocated[1] if len(allocated) > 1 else None, stock, row.id, row.code, medium.id)
    finally:
        session.close()
