"""Scale data (issue 9 point 1): `mscbatch seed-scale` fills an empty database with a realistic, deterministic
shape whose audit chain verifies, whose pages render and whose bedside pairs answer MATCHES; it refuses a
database that holds lots. Small N (300 bags) on SQLite and PostgreSQL."""
from __future__ import annotations

import shutil
from collections import Counter

import pytest
from sqlalchemy import func, select

from bench.bench_load import weighable_patients
from mscbatch.audit.verify import verify_database
from mscbatch.custody.models import CustodyEvent, Infusion, TwoPersonCheck
from mscbatch.donors.models import Donor, EligibilityDecision
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.models import Allocation, EnrolmentCheck, Patient, Prescription
from mscbatch.recall.traceability import backward_from_patient, forward_from_donor
from mscbatch.release.models import LotDisposition
from mscbatch.scale import ScaleRefused, matching_pairs, seed_scale
from mscbatch.scale.shape import lot_sizes, plan
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import verify as verify_signature
from tests.conftest import TEST_CONFIG, api_token_for, make_app

BAGS = 300


def _run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def _session(app):  # type: ignore[no-untyped-def]
    return app.extensions["mscbatch.db"].new_session()


def _fingerprint(app) -> list[tuple]:  # type: ignore[type-arg]
    with _session(app) as session:
        return [tuple(row) for row in session.execute(
            select(Bag.din, Bag.check_character, Lot.lot_number, Bag.status, Bag.total_cells, Patient.code)
            .join(Lot, Lot.id == Bag.lot_id).outerjoin(Allocation, Allocation.active_bag_id == Bag.id)
            .outerjoin(Patient, Patient.id == Allocation.patient_id).order_by(Bag.id))]


def test_the_plan_has_lots_of_4_to_20_bags_adding_up_exactly():
    import random

    for bags in (4, 21, 25, 300, 10_007):
        sizes = lot_sizes(bags, random.Random(bags))
        assert sum(sizes) == bags and all(4 <= size <= 20 for size in sizes)
    big = plan(100_000, seed=3)
    assert 9_000 <= len(big.lots) <= 11_000  # about 10 bags a lot: 1 000 000 bags ~ 100 000 lots
    assert big.years == 2  # at most 8 000 lots a year (MSC-YYYY-NNNN)
    with pytest.raises(ValueError, match="at least 4 bags"):
        plan(3)


def test_seed_scale_fills_a_database_the_application_works_on(app, users, client_as):
    result = _run(app, "seed-scale", "--bags", str(BAGS), "--seed", "7", "--quiet")
    assert result.exit_code == 0, result.output
    assert f"{BAGS} bags in" in result.output and "audit events" in result.output
    with _session(app) as session:
        sizes = list(session.scalars(select(func.count(Bag.id)).group_by(Bag.lot_id)))
        assert sum(sizes) == BAGS and all(4 <= size <= 20 for size in sizes) and 15 <= len(sizes) <= 45
        sources = set(session.scalars(select(Donor.tissue_source)))
        assert sources == {"umbilical_cord", "adipose_tissue", "bone_marrow"}
        assert set(session.scalars(select(Donor.status))) == {"approved"}
        statuses = Counter(session.scalars(select(Bag.status)))
        assert statuses["stored"] > BAGS / 3 and statuses["received"] and statuses["infused"]
        assert session.scalar(select(func.count(Infusion.id))) == statuses["infused"]
        assert session.scalar(select(func.count(TwoPersonCheck.id))) == statuses["infused"]
        assert session.scalar(select(func.count(CustodyEvent.id))) >= 2 * BAGS  # stored + released at least
        assert session.scalar(select(func.count(Prescription.id))) == session.scalar(select(func.count(Patient.id)))
        verdict = verify_database(session, TEST_CONFIG["AUDIT_KEY"])
        assert verdict.ok, verdict.problem
        assert verdict.events_checked >= BAGS
        signed = {m.__tablename__: m for m in (EligibilityDecision, LotDisposition, EnrolmentCheck, Prescription)}
        signatures = list(session.scalars(select(Signature)))
        assert {s.entity_type for s in signatures} == set(signed)
        for signature in signatures:  # made with the project's signing functions: every one verifies
            record = session.get(signed[signature.entity_type], int(signature.entity_id))
            assert verify_signature(session, signature, record).valid and record.locked_at is not None
        pairs = matching_pairs(session, limit=1000)
        assert len(pairs) >= BAGS // 100
        weighable = weighable_patients(session, 1000)  # the load benchmark's weights go to these: never scanned
        scanned = {wristband for wristband, _scan in matching_pairs(session, limit=BAGS)}
        assert weighable and not {session.get(Patient, p).wristband_id for p in weighable} & scanned
        first_lot_id, last_lot_id = session.execute(select(func.min(Lot.id), func.max(Lot.id))).one()
        bag_lots = [session.scalar(select(Bag.lot_id).where(Bag.din == scan[:13])) for _w, scan in pairs]
        assert min(bag_lots) - first_lot_id < (last_lot_id - first_lot_id) / 2 < max(bag_lots) - first_lot_id
        lot = session.scalar(select(Lot).where(Lot.status == "released").order_by(Lot.id.desc()).limit(1))
        donor_id = lot.donor_id
        patient = session.scalar(select(Patient).where(Patient.wristband_id == pairs[0][0]))
        other = session.scalar(select(Patient).where(Patient.id != patient.id).order_by(Patient.id).limit(1))
        forward = forward_from_donor(session, donor_id)
        assert [len(t.bags) for t in forward.lots] == [session.scalar(select(func.count(Bag.id))
                                                                      .where(Bag.lot_id == lot.id))]
        backward = backward_from_patient(session, patient.id)
        assert backward.entries and all(e.bag.status == "received" for e in backward.entries)

    again = _run(app, "seed-scale", "--bags", "50", "--quiet")
    assert again.exit_code == 2 and "Refused: The database already holds" in again.output
    with pytest.raises(ScaleRefused, match="already holds"):
        seed_scale(app, 50)

    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    client = app.test_client()
    wristband, scan = pairs[0]
    ok = client.post("/api/v1/custody/scan-verify", headers=headers, json={"wristband": wristband, "bag": scan})
    assert ok.get_json()["result"] == "MATCHES", ok.get_json()["failures"]
    stop = client.post("/api/v1/custody/scan-verify", headers=headers,
                       json={"wristband": other.wristband_id, "bag": scan}).get_json()
    assert stop["result"] == "STOP" and "wrong_patient" in [f["code"] for f in stop["failures"]]

    qa, clinician = client_as("qa"), client_as("clinician")
    page = qa.get(f"/lots/{lot.id}")
    assert page.status_code == 200 and lot.lot_number in page.get_data(as_text=True)
    assert qa.get(f"/donors/{donor_id}").status_code == 200
    assert clinician.get(f"/patients/{patient.id}").status_code == 200
    assert lot.lot_number in client_as("technician").get("/lots").get_data(as_text=True)

    _the_application_goes_on(app, users, donor_id)


def _the_application_goes_on(app, users, donor_id: int) -> None:  # type: ignore[no-untyped-def]
    """New records after the generated ones: ids (PostgreSQL sequences), lot numbers, DINs, the audit chain."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from mscbatch.core.culture import BagPlan
    from mscbatch.donors.services import DonorDetails, register_donor
    from mscbatch.lots import bags, services, steps
    from mscbatch.site import site_day

    with _session(app) as session:
        tech = session.merge(users["technician"])
        donor = register_donor(session, tech, DonorDetails(tissue_source="adipose_tissue", rule_set_id="adipose_at_don",
                                                           donor_type="unrelated", initials="NE"))
        assert donor.id > donor_id and donor.code.startswith("D-")
        product = session.get(Lot, session.scalar(select(Lot.id).where(Lot.donor_id == donor_id))).product_id
        at = datetime.now(UTC) - timedelta(days=20)
        lot = services.create_lot(session, tech, services.LotDetails(
            donor_id=donor_id, product_id=product, collection_at=at, collection_site="Theatre 1",
            tissue_amount=Decimal("20"), tissue_unit="g" if product != "BM-MSC" else "mL"))
        collected_on = site_day(at)  # the site's day: after 23:00 UTC, at.date() is the day before in Paris
        steps.record_isolation(session, tech, lot.id, performed_on=collected_on)
        steps.record_passage(session, tech, lot.id, steps.PassageDetails(
            passage_number=0, performed_on=collected_on + timedelta(days=5), seeded_cells=2_000_000,
            harvested_cells=110_000_000, viability_percent="95", days_in_culture=Decimal(5)))
        steps.record_harvest(session, tech, lot.id, harvested_at=at + timedelta(days=6), total_cells=100_000_000,
                             viability_percent="95")
        made = bags.cryopreserve(session, tech, lot.id, frozen_at=at + timedelta(days=6, hours=1), bags=[
            BagPlan(volume_ml=Decimal(25), cells_per_ml=1_000_000, dmso_percent=Decimal(10))] * 2)
        generated = set(session.scalars(select(Bag.din).where(Bag.id.notin_([b.id for b in made]))))
        assert len(made) == 2 and not {b.din for b in made} & generated
        assert session.scalar(select(func.count(Lot.id)).where(Lot.lot_number == lot.lot_number)) == 1
        assert verify_database(session, TEST_CONFIG["AUDIT_KEY"]).ok


def test_same_seed_same_data_other_seed_other_data(app, sqlite_template, tmp_path):
    seed_scale(app, 120, seed=5)
    first = _fingerprint(app)  # read now: a new app rebinds the shared database extension
    copies = []
    for seed in (5, 6):
        path = tmp_path / f"seed{seed}.sqlite3"
        shutil.copyfile(sqlite_template, path)
        other = make_app(f"sqlite:///{path}")
        seed_scale(other, 120, seed=seed)
        copies.append(_fingerprint(other))
        other.extensions["mscbatch.db"].engine.dispose()
    same, different = copies
    assert first == same and len(same) == 120 and any(row[-1] for row in same)
    assert same != different


def test_refused_before_initialisation(tmp_path):
    from mscbatch import create_app

    app = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path}/empty.sqlite3"})
    with app.app_context(), pytest.raises(ScaleRefused, match="mscbatch init"):
        seed_scale(app, 10)
    app.extensions["mscbatch.db"].engine.dispose()


def test_an_error_in_the_writing_process_reaches_the_caller_and_leaves_no_half_chunk(app, monkeypatch):
    """Chunks are chained and written by a forked process: its failure is raised here, and the chunk it was
    writing is rolled back whole (rows and events together), so the database stays as it was."""
    from mscbatch.audit.models import AuditEvent
    from mscbatch.lots.models import StorageLocation
    from mscbatch.scale import writer

    def broken(connection, batch):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full while writing the audit events")

    monkeypatch.setattr(writer, "write_events", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        seed_scale(app, 400)  # a chunk larger than a pipe buffer: the dead writer never reads it
    with _session(app) as session:
        assert session.scalar(select(func.count(StorageLocation.id))) == 0  # the rows went with the events
        assert not session.scalar(select(func.count(AuditEvent.seq)).where(AuditEvent.entity_type == "storage_location"))
        assert verify_database(session, TEST_CONFIG["AUDIT_KEY"]).ok


def test_refused_on_a_database_with_real_donors_or_patients_but_no_lot(app, users):
    """Review 4: a unit's first donors and patients come before its first lot; seed-scale counted lots only, and
    wrote thousands of records beside them."""
    from tests.integration.patient_factories import patient, user

    session = _session(app)
    patient(session, user(session, "clinician"))
    session.close()
    refused = _run(app, "seed-scale", "--bags", "50", "--quiet")
    assert refused.exit_code == 2 and "already holds 1 patient(s)" in refused.output, refused.output
    session = _session(app)
    assert session.scalar(select(func.count(Lot.id))) == 0
    session.close()
