"""The demo data of `make run` (mscbatch.demo.seed_demo), seeded twice into the test database (SQLite and
PostgreSQL): a newcomer can click from donor to prescription at once, has bags and an enrolled patient to
prescribe for, and a second run adds nothing."""
from __future__ import annotations

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.audit.verify import verify_database
from mscbatch.demo import seed_demo
from mscbatch.donors.demo import CHAIN_CORD_INITIALS, PENDING_CORD_INITIALS, demo_cord_donor
from mscbatch.donors.models import Donor
from mscbatch.lots.demo import chain_lot, second_chain_lot
from mscbatch.lots.models import Bag, Lot, ProcessStep
from mscbatch.patients.demo import READY_WRISTBAND
from mscbatch.patients.inventory import calculate
from mscbatch.patients.models import Allocation, Patient, Prescription
from mscbatch.patients.queries import allocations_of
from mscbatch.release.models import LotDisposition, OosInvestigation, ReleaseResult
from mscbatch.signatures.models import Signature
from tests.conftest import TEST_CONFIG


def _counts(session) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (Donor, Lot, Bag, ReleaseResult, LotDisposition, OosInvestigation, Patient, Prescription,
                          Allocation, Signature)}


def test_the_demo_chains_an_approved_cord_donor_to_a_signed_prescription_and_is_idempotent(app):
    session = app.extensions["mscbatch.db"].new_session()
    try:
        first = seed_demo(session, hash_profile="fast")
        session.rollback()
        before = _counts(session)
        events = session.scalar(select(func.count()).select_from(AuditEvent))
        second = seed_demo(session, hash_profile="fast")  # idempotent: nothing new
        session.rollback()
        assert _counts(session) == before, "\n".join(second)
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == events

        # donors: the adipose and the chain cord donor approved; the other cord donor still awaits QA
        statuses = {(d.tissue_source, d.initials): d.status for d in session.scalars(select(Donor))}
        assert statuses[("adipose_tissue", "AB")] == "approved"
        assert statuses[("umbilical_cord", CHAIN_CORD_INITIALS)] == "approved"
        assert statuses[("umbilical_cord", PENDING_CORD_INITIALS)] == "screening"

        # the UC-MSC lot of the approved cord donor: released by a QA person who entered nothing about it
        lot = chain_lot(session)
        assert lot is not None and lot.product_id == "UC-MSC" and lot.status == "released"
        assert lot.donor_id == demo_cord_donor(session, CHAIN_CORD_INITIALS).id
        bags = list(session.scalars(select(Bag).where(Bag.lot_id == lot.id)))
        assert len(bags) == 4 and all(b.total_cells == 50_000_000 for b in bags)
        [disposition] = session.scalars(select(LotDisposition).where(LotDisposition.lot_id == lot.id))
        assert disposition.kind == "release" and disposition.signed_at is not None
        releaser_id = disposition.decided_by_id
        assert releaser_id is not None and lot.created_by_id != releaser_id
        assert releaser_id not in set(session.scalars(select(ProcessStep.recorded_by_id)
                                                      .where(ProcessStep.lot_id == lot.id)))
        assert {r.entered_by_id for r in session.scalars(
            select(ReleaseResult).where(ReleaseResult.lot_id == lot.id))}.isdisjoint({releaser_id})
        donor_signers = set(session.scalars(select(Signature.signer_id).where(
            Signature.entity_type == "donor_eligibility_decision")))
        assert releaser_id not in donor_signers

        # the lupus patient's signed prescription allocates bags of that lot: 125 x10^6 cells for 62.5 kg
        lupus = session.scalar(select(Patient).where(Patient.wristband_id == "WB-100234"))
        assert lupus is not None and lupus.status == "enrolled"
        [rx] = session.scalars(select(Prescription).where(Prescription.patient_id == lupus.id))
        assert rx.status == "active" and rx.locked_at is not None and rx.delivered_cells == 125_000_000
        allocated = allocations_of(session, rx.id)
        assert len(allocated) == 3 and all(a.active for a in allocated)
        assert {session.get(Bag, a.bag_id).lot_id for a in allocated} == {lot.id}
        assert all(session.get(Bag, a.bag_id).status == "allocated" for a in allocated)
        assert rx.calculation["endotoxin_eu"] is not None  # the lot's endotoxin result reaches the dose

        # a second released UC-MSC lot, its bags free, and an enrolled lupus patient with no prescription: a
        # newcomer can dry-run and prescribe (2 x10^6/kg x 70 kg = 140 x10^6 cells)
        second = second_chain_lot(session)
        assert second is not None and second.status == "released" and second.id != lot.id
        free = list(session.scalars(select(Bag).where(Bag.lot_id == second.id)))
        assert len(free) == 4 and all(b.status == "stored" and b.total_cells == 50_000_000 for b in free)
        ready = session.scalar(select(Patient).where(Patient.wristband_id == READY_WRISTBAND))
        assert ready is not None and ready.status == "enrolled"
        assert session.scalars(select(Prescription).where(Prescription.patient_id == ready.id)).all() == []
        dry_run = calculate(session, ready)
        assert dry_run.allocation is not None and dry_run.allocation.delivered_cells == 140_000_000
        session.rollback()

        # an open OOS still waits for QA on the cord lot of the donor awaiting QA
        pending = demo_cord_donor(session, PENDING_CORD_INITIALS)
        [oos] = session.scalars(select(OosInvestigation).join(Lot, Lot.id == OosInvestigation.lot_id)
                                .where(Lot.donor_id == pending.id))
        assert oos.status == "open" and oos.test_id == "cd105"

        verdict = verify_database(session, TEST_CONFIG["AUDIT_KEY"])
        assert verdict.ok, verdict.problem
        text = "\n".join(first)
        assert "released by qa2" in text and "prescription" in text and "skipped" not in text
    finally:
        session.close()
