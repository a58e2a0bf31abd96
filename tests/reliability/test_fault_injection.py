"""Fault injection (issue 9 point 3): an exception at each flush (and just before the commit) of every signed
or stock-moving use case leaves the database exactly as it was (every table, the audit trail and its head)
and the audit chain verifying; then the same use case runs to success on the same scene. SQLite and
PostgreSQL (the `app` fixture). The use cases: release; conditional release and its completion; rejection;
exceptional release (the clinician's request, QA's approval); prescription with its allocations and its
cancellation (the bags back in stock); bedside check, second-person confirmation and infusion start; the
start of a recall (holds placed) and its end (holds lifted).

Release and recall are driven through their services (their pages need a cookie session, whose sliding idle
window may write); prescription and the bedside steps through the JSON API, which also shows the injected
fault reaches the client as a bare 500 problem with an incident reference and no stack trace."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit import trail
from mscbatch.audit.models import AuditEvent
from mscbatch.custody.models import Infusion, TwoPersonCheck
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation
from mscbatch.recall import services as recall_services
from mscbatch.recall.models import BagHold
from mscbatch.release import release, results
from mscbatch.release.demo import PASSING_PANEL, enter_panel
from mscbatch.release.models import CLINICIAN_MEANING, LotDisposition
from mscbatch.signatures.models import Signature
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_recall_support import scene
from tests.integration.test_release_support import (
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
)
from tests.reliability.support import InjectedFault, assert_chain_verifies, digests_of, drive_faults


def _count(app: Any, what: Any, *where: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count()).select_from(what).where(*where))


def _api(app: Any, username: str) -> Any:
    headers = {"Authorization": f"Bearer {api_token_for(app, username)}"}
    # the token's first use stamps its last use (auth.services, bookkeeping outside any use case): done here, before
    # a test takes its "before" digests, so they compare what the use case under fault writes and nothing else
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 200

    def call(path: str, body: dict[str, Any]) -> Any:
        response = app.test_client().post(path, json=body, headers=headers)
        if response.status_code == 500:
            text = response.get_data(as_text=True)
            assert response.mimetype == "application/problem+json", text
            assert "Nothing was saved" in text and "Incident reference" in text, text
            assert "Traceback" not in text and "InjectedFault" not in text and "injected" not in text, text
            raise InjectedFault(text)
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        return response.get_json()
    return call


def test_a_fault_at_any_step_of_a_release_signature_leaves_nothing(app, users, monkeypatch):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    database = app.extensions["mscbatch.db"]
    with database.new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id)
    flushes = drive_faults(app.config["DATABASE_URL"], lambda session: release.release_lot(
        session, user(session, "qa"), lot_id, PASSWORD), target=database.new_session)
    assert flushes >= 3, flushes  # disposition, signature, lot status + custody notes: each one a fault point
    assert _count(app, Signature, Signature.meaning == "Released for clinical use") == 1


def test_a_fault_at_any_step_of_a_signed_prescription_allocates_nothing(app, users):
    database = app.extensions["mscbatch.db"]
    with database.new_session() as session:
        lot_with_bags(session, user(session, "technician"), donor(session, user(session, "technician")))
        patient_id = patient(session, user(session, "clinician")).id
    call = _api(app, "clinician")
    dry = call(f"/api/v1/patients/{patient_id}/dose-calculation", {})  # what the clinician saw, then signs
    seen = {"password": PASSWORD, "weight_id": dry["weight_id"],
            "dose_level_cells_per_kg": dry["calculation"]["dose_level_cells_per_kg"],
            "bag_ids": [int(d["bag_id"]) for d in dry["calculation"]["draws"]]}
    flushes = drive_faults(app.config["DATABASE_URL"], lambda _: call(
        f"/api/v1/patients/{patient_id}/prescriptions", seen))
    assert flushes >= 3, flushes
    assert _count(app, Allocation, Allocation.active_bag_id.is_not(None)) == 3


def _fails_after_the_row_is_written(session: Any, _rows: Any) -> None:
    assert session.execute(select(func.count()).select_from(TwoPersonCheck)).scalar_one() == 1  # written, uncommitted
    raise InjectedFault("injected between the bedside check's row and its audit event")


def test_a_fault_at_any_step_of_the_bedside_check_confirmation_and_infusion_start_leaves_nothing(app, users,
                                                                                                   monkeypatch):
    database = app.extensions["mscbatch.db"]
    with database.new_session() as session:
        ward = prescribed_bag(session)
    nurse = _api(app, "nurse")
    url = app.config["DATABASE_URL"]
    checked: list[int] = []

    def scan() -> None:
        checked.append(nurse("/api/v1/custody/scan-verify", {"wristband": ward.wristband, "bag": ward.token})["check_id"])

    # The check's record is written without a flush (trail.insert_audited: a Core insert, then its audit event):
    # its fault points are between the row and its event, and before the commit (drive_faults, with no flush).
    before = digests_of(url)
    with monkeypatch.context() as patched:
        patched.setattr(trail, "append_events", _fails_after_the_row_is_written)
        with pytest.raises(InjectedFault):
            scan()
    assert digests_of(url) == before
    assert drive_faults(url, lambda _: scan()) == 0
    assert len(checked) == 1 and _count(app, TwoPersonCheck) == 1
    assert drive_faults(url, lambda _: nurse(f"/api/v1/custody/checks/{checked[0]}/confirm", {
        "username": "nurse2", "password": PASSWORD, "checker_password": PASSWORD,
    })) >= 2  # the check's confirmation (and its two signatures), then the custody event
    assert drive_faults(url, lambda _: nurse("/api/v1/custody/infusions", {
        "bag_id": ward.bag_id, "wristband": ward.wristband, "bag": ward.token})) >= 2
    assert _count(app, Infusion) == 1


def test_a_fault_at_any_step_of_starting_a_recall_holds_nothing(app, users):
    the_scene = scene(app)
    database = app.extensions["mscbatch.db"]
    events_before = _count(app, AuditEvent)
    flushes = drive_faults(app.config["DATABASE_URL"], lambda session: recall_services.start_recall(
        session, user(session, "qa"), scope="donor", target_id=the_scene.donor_id,
        reason="late positive HBV NAT of the donor", password=PASSWORD), target=database.new_session)
    assert flushes >= 3, flushes
    assert _count(app, BagHold) == len(the_scene.stock_bag_ids)  # every bag of the donor not yet infused
    assert _count(app, AuditEvent) > events_before
    assert_chain_verifies(app.config["DATABASE_URL"])


# ---- the other signed dispositions of a lot, cancellation and the end of a recall --------------------------

def _disposition_count(app: Any, kind: str) -> int:
    return _count(app, LotDisposition, LotDisposition.kind == kind, LotDisposition.signed_at.is_not(None))


def _lot_status(app: Any, lot_id: int) -> str:
    with app.extensions["mscbatch.db"].new_session() as session:
        return str(session.get(Lot, lot_id).status)


def test_a_fault_at_any_step_of_a_conditional_release_and_of_its_completion_leaves_nothing(app, users, monkeypatch):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    database = app.extensions["mscbatch.db"]
    url = app.config["DATABASE_URL"]
    with database.new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, skip=("sterility",))
    assert drive_faults(url, lambda session: release.release_lot(
        session, user(session, "qa"), lot_id, PASSWORD, conditional_tests=["sterility"],
        justification="Patient cannot wait 14 days for BacT/ALERT"), target=database.new_session) >= 5
    assert _lot_status(app, lot_id) == "conditional_release"
    with database.new_session() as session:
        results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
            test_id="sterility", value=PASSING_PANEL["sterility"][0], unit="", analyst="A", tested_on=site_today()))
    assert drive_faults(url, lambda session: release.complete_conditional_release(
        session, user(session, "qa2"), lot_id, PASSWORD), target=database.new_session) >= 5
    assert _lot_status(app, lot_id) == "released"
    assert _disposition_count(app, "conditional_release") == _disposition_count(app, "completion") == 1


def test_a_fault_at_any_step_of_a_rejection_leaves_nothing(app, users):
    database = app.extensions["mscbatch.db"]
    with database.new_session() as session:
        tech = user(session, "technician")
        lot_id = lot_with_bags(session, tech, donor(session, tech), status="quarantine")[0].lot_id
    assert drive_faults(app.config["DATABASE_URL"], lambda session: release.reject_lot(
        session, user(session, "qa"), lot_id, PASSWORD, "Bag labels damaged in the LN2 tank"),
        target=database.new_session) >= 3  # 3 flushes on both databases, each one a fault point
    assert _lot_status(app, lot_id) == "rejected"
    assert _disposition_count(app, "rejection") == 1


def test_a_fault_at_any_step_of_an_exceptional_release_request_and_approval_leaves_nothing(app, users, monkeypatch):
    seed_quarantine_lot(app, monkeypatch)
    database = app.extensions["mscbatch.db"]
    url = app.config["DATABASE_URL"]
    with database.new_session() as session:  # a UC-MSC lot and a registered lupus patient (release.patient_refusal)
        lot_id = cord_quarantine_lot(session)
        code = lupus_patient_code(session)
        enter_panel(session, user(session, "technician"), lot_id, {"viability": ("66", "%")})
    assert drive_faults(url, lambda session: release.request_exceptional_release(
        session, user(session, "clinician"), lot_id, code,
        "No alternative therapy; life-threatening flare, benefit outweighs risk", PASSWORD),
        target=database.new_session) >= 2
    assert _count(app, Signature, Signature.meaning == CLINICIAN_MEANING) == 1
    # four flushes: the clinician's request is locked at its own signature (review 9, Part 11), so QA's approval no
    # longer locks it in a flush of its own
    assert drive_faults(url, lambda session: release.approve_exceptional_release(
        session, user(session, "qa"), lot_id, PASSWORD), target=database.new_session) >= 4
    assert _lot_status(app, lot_id) == "released"
    assert _disposition_count(app, "exceptional_release") == 1


def test_a_fault_at_any_step_of_cancelling_a_prescription_keeps_its_bags_allocated(app, users):
    database = app.extensions["mscbatch.db"]
    with database.new_session() as session:
        tech, clinician = user(session, "technician"), user(session, "clinician")
        lot_with_bags(session, tech, donor(session, tech))
        prescription_id = prescriptions.prescribe(session, clinician, PASSWORD, patient(session, clinician).id).id
    allocated = _count(app, Allocation, Allocation.active_bag_id.is_not(None))
    assert allocated >= 2
    assert drive_faults(app.config["DATABASE_URL"], lambda session: prescriptions.cancel(
        session, user(session, "clinician"), prescription_id, "Patient withdrew consent", password=PASSWORD),
        target=database.new_session) >= 3
    assert _count(app, Allocation, Allocation.active_bag_id.is_not(None)) == 0
    assert _count(app, Allocation, Allocation.released_at.is_not(None)) == allocated
    assert _count(app, Bag, Bag.status == "allocated") == 0


def test_a_fault_at_any_step_of_ending_a_recall_lifts_no_hold(app, users):
    the_scene = scene(app)
    database = app.extensions["mscbatch.db"]
    with database.new_session() as session:
        recall_id = recall_services.start_recall(
            session, user(session, "qa"), scope="donor", target_id=the_scene.donor_id,
            reason="late positive HBV NAT of the donor", password=PASSWORD).recall_id
    held = _count(app, BagHold, BagHold.lifted_at.is_(None))
    assert held == len(the_scene.stock_bag_ids)
    assert drive_faults(app.config["DATABASE_URL"], lambda session: recall_services.end_recall(
        session, user(session, "qa"), recall_id, reason="HBV NAT repeat negative: a false positive",
        password=PASSWORD), target=database.new_session) >= 2
    assert _count(app, BagHold, BagHold.lifted_at.is_(None)) == 0
    assert _count(app, BagHold, BagHold.lifted_at.is_not(None)) == held
    assert_chain_verifies(app.config["DATABASE_URL"])
