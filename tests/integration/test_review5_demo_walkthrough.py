"""The `make run` walk-through as a newcomer does it (review 5): seed-demo keeps `make run` serving after an
account made with `mscbatch create-user`; the clinician prescribes for the enrolled lupus patient who has none;
the nurse receives and thaws the bag before the bedside scan of wristband and bag (README step 4); and seed-demo
then names the next bag, not the one already given."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.custody.models import TwoPersonCheck
from mscbatch.lots.models import Bag
from mscbatch.patients.demo import LUPUS_WRISTBAND, READY_WRISTBAND
from mscbatch.patients.models import Patient, Prescription
from tests.conftest import login

DEMO_PASSWORD = "mscbatch-demo"
WARD = "Internal medicine, bed 12"


def _run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def _as(app, username):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert login(client, username, DEMO_PASSWORD).status_code == 302
    return client


def _events(app) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def test_seed_demo_after_create_user_on_the_demo_adds_nothing_says_so_and_lets_make_run_serve(app):
    assert _run(app, "seed-demo").exit_code == 0
    made = _run(app, "create-user", "--username", "boss", "--full-name", "Bo Boss", "--role", "admin",
                "--password", "a-long-password-1", "--reason", "trying the command on the demo")
    assert made.exit_code == 0, made.output
    before = _events(app)
    again = _run(app, "seed-demo")
    assert again.exit_code == 0, again.output  # `make run` goes on to serve
    assert "holds the demo and also 1 account(s) the demo did not make (boss)" in again.output
    assert "seed-demo added nothing" in again.output and "tech       mscbatch-demo" in again.output
    assert f"wristband {LUPUS_WRISTBAND}" in again.output
    assert _events(app) == before  # nothing written


def test_a_unit_database_without_the_demo_is_still_refused(app):
    made = _run(app, "create-user", "--username", "boss", "--full-name", "Bo Boss", "--role", "admin",
                "--password", "a-long-password-1", "--reason", "first administrator of the unit")
    assert made.exit_code == 0, made.output
    refused = _run(app, "seed-demo")
    assert refused.exit_code == 2 and "Refused" in refused.output
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 0


def test_the_clinician_prescribes_for_the_enrolled_lupus_patient_without_a_prescription(app):
    assert _run(app, "seed-demo").exit_code == 0
    with app.extensions["mscbatch.db"].new_session() as session:
        patient = session.scalar(select(Patient).where(Patient.wristband_id == READY_WRISTBAND))
        assert patient is not None and patient.status == "enrolled"
        patient_id = patient.id
    clinician = _as(app, "clinician")
    page = clinician.get(f"/patients/{patient_id}/dose")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    fields = dict(re.findall(r'name="(level|bag_ids|weight_id|planned_on)"[^>]*value="([^"]*)"', html))
    assert fields.get("bag_ids"), html[:3000]
    signed = clinician.post(f"/patients/{patient_id}/prescriptions", data={**fields, "password": DEMO_PASSWORD})
    assert signed.status_code == 302, signed.get_data(as_text=True)[:3000]
    with app.extensions["mscbatch.db"].new_session() as session:
        [rx] = session.scalars(select(Prescription).where(Prescription.patient_id == patient_id))
        assert rx.status == "active" and rx.delivered_cells == 140_000_000  # 2 x10^6/kg x 70 kg


def test_the_readme_ward_order_gives_the_first_bag_and_seed_demo_then_names_the_next_one(app):
    assert _run(app, "seed-demo").exit_code == 0
    with app.extensions["mscbatch.db"].new_session() as session:
        lupus = session.scalar(select(Patient).where(Patient.wristband_id == LUPUS_WRISTBAND))
        first, second = session.scalars(select(Bag).join(Prescription, Prescription.patient_id == lupus.id)
                                        .where(Bag.status == "allocated").order_by(Bag.id)).unique().all()[:2]
        bag_id, bag, next_bag = first.id, first.din + first.check_character, second.din + second.check_character
    tech, nurse = _as(app, "tech"), _as(app, "nurse")
    dispatched = tech.post("/ward/dispatch", data={"bag": bag, "courier": "J. Courier", "shipper": "DS-01",
                                                   "temperature_logger_id": "TL-7", "location": "Cell therapy unit"})
    assert dispatched.status_code == 302, dispatched.get_data(as_text=True)[:2000]
    for action in ("receive", "thaw"):  # the bag alone: no wristband scanned yet
        done = nurse.post("/ward/event", data={"bag": bag, "location": WARD, "action": action})
        assert done.status_code == 302, (action, done.get_data(as_text=True)[:2000])
    checked = nurse.post("/ward/check", data={"wristband": LUPUS_WRISTBAND, "bag": bag, "location": WARD})
    assert checked.status_code == 303
    check_id = int(re.findall(r"\d+", checked.headers["Location"])[-1])
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(TwoPersonCheck, check_id).result == "matches"
    confirmed = nurse.post(f"/ward/checks/{check_id}/confirm", data={
        "checker_password": DEMO_PASSWORD, "second_username": "nurse2", "second_password": DEMO_PASSWORD})
    assert confirmed.status_code == 303, confirmed.get_data(as_text=True)[:2000]
    started = nurse.post(f"/ward/bags/{bag_id}/infusion", data={"wristband": LUPUS_WRISTBAND, "bag": bag})
    assert started.status_code in (302, 303), started.get_data(as_text=True)[:2000]
    infusion_id = int(re.findall(r"/infusions/(\d+)", started.headers["Location"])[0])

    running = _run(app, "seed-demo")
    assert running.exit_code == 0 and f"infusion of bag {bag} for SLE-UC-001 started, not ended" in running.output

    ended = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "25"})
    assert ended.status_code in (302, 303), ended.get_data(as_text=True)[:2000]
    after = _run(app, "seed-demo")
    assert after.exit_code == 0, after.output
    assert f"already given or discarded: {bag}" in after.output
    assert f"bag {next_bag} (allocated)" in after.output and f"bag {bag} (" not in after.output
    assert "next: tech dispatches it" in after.output


def test_the_demo_in_process_lot_lets_the_technician_correct_its_p0_trypsin(app):
    """README step 2: on MSC-2026-0002 (in process) the P0 trypsin TR-7781 is corrected to the demo's second TrypLE
    lot TR-7790, with a reason; the lot page then names TR-7790 and lists the correction."""
    from mscbatch.lots.models import Lot, ReagentLot, ReagentUse

    assert _run(app, "seed-demo").exit_code == 0
    with app.extensions["mscbatch.db"].new_session() as session:
        lot = session.scalar(select(Lot).where(Lot.lot_number.like("MSC-%-0002")))
        assert lot is not None and lot.status == "in_process"
        lots = {r.lot_number: r.id for r in session.scalars(select(ReagentLot))}
        use = session.scalar(select(ReagentUse).where(ReagentUse.lot_id == lot.id,
                                                      ReagentUse.reagent_lot_id == lots["TR-7781"]))
        assert use is not None
        lot_id, use_id, used_on = lot.id, use.id, use.used_on
    tech = _as(app, "tech")
    page = tech.get(f"/lots/{lot_id}").get_data(as_text=True)
    assert "Correct this reagent use" in page and "TR-7790" in page
    done = tech.post(f"/lots/{lot_id}/reagents/{use_id}/correction", data={
        f"reagentfix{use_id}-reagent_lot_id": str(lots["TR-7790"]), f"reagentfix{use_id}-used_on": used_on.isoformat(),
        f"reagentfix{use_id}-reason": "TR-7790 was opened at P0: the wrong lot was picked"})
    assert done.status_code == 302, done.get_data(as_text=True)
    page = tech.get(done.headers["Location"]).get_data(as_text=True)
    assert "the wrong lot was picked" in page
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(ReagentUse, use_id).reagent_lot_id == lots["TR-7790"]
