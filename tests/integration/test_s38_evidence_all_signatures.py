"""The evidence bundle holds every signature bearing on the bag (Part 11 inspection finding): after a two-person
bedside check (nurse checks, nurse2 confirms), signatures.json listed only the donor approval, the release and the
prescription: the two bedside signatures, the lot's OOS invalidation and QA's deviation assessment were missing, and
the custody timeline named the second checker as "second_checker": <user id> with no printed name. Now each
signature is there with its manifestation (printed name, local time with UTC, meaning) and its verification, the
timeline names both people, and the bundle still verifies offline (mscbatch evidence verify)."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.custody.bedside import CHECKED_MEANING, CONFIRMED_MEANING
from mscbatch.lots import steps
from mscbatch.lots.models import Deviation, ProcessStep
from mscbatch.release import oos
from mscbatch.release.deviations import assess_deviation
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_bedside_late_news import _conditionally_released, _sterility
from tests.integration.test_custody_support import checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _members(app, client, bag_id: int, tmp_path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    response = client.get(f"/bags/{bag_id}/evidence.zip")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    path = tmp_path / "bundle.zip"
    path.write_bytes(response.data)
    verdict = app.test_cli_runner().invoke(args=["evidence", "verify", str(path)])
    assert verdict.exit_code == 0 and "VALID" in verdict.output, verdict.output
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        return {name: json.loads(archive.read(name)) for name in archive.namelist() if name.endswith(".json")}


def test_s38_the_bundle_holds_the_bedside_oos_and_deviation_signatures_with_names(app, db_session, client_as,
                                                                                   tmp_path):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    _conditionally_released(db_session, ward)
    # a late OOS, closed by QA's signature (laboratory error, valid retest)
    _sterility(db_session, ward.lot_id, "positive")
    [late] = oos.open_oos_of(db_session, ward.lot_id)
    retest = _sterility(db_session, ward.lot_id, "negative")
    oos.invalidate_oos(db_session, user(db_session, "qa"), late.id, retest.id,
                       "Contaminated culture bottle, retest from the retained sample is negative.", PASSWORD,
                       assignable_cause="sample")
    # a deviation recorded after the release, assessed by QA (signed)
    tech = user(db_session, "technician")
    with use_case(db_session, tech, "test: the lot's passage"):
        step = ProcessStep(lot_id=ward.lot_id, kind="passage", passage_number=1, performed_on=site_today(),
                           recorded_by_id=tech.id)
        db_session.add(step)
    step_id = step.id
    steps.record_deviation(db_session, user(db_session, "technician"), ward.lot_id, step_id, severity="critical",
                           description="Culture medium lot used past its expiry, found at the monthly review")
    deviation_id = db_session.scalar(select(Deviation.id).where(Deviation.lot_id == ward.lot_id)
                                     .order_by(Deviation.id.desc()).limit(1))
    assess_deviation(db_session, user(db_session, "qa2"), deviation_id, outcome="no_impact", password=PASSWORD,
                     rationale="The medium was tested in use: sterile, endotoxin below limit; bags unaffected.")
    # the two-person check at the bedside: nurse checks, nurse2 confirms (both sign)
    checked_and_confirmed(db_session, ward)
    nurse, nurse2 = user(db_session, "nurse"), user(db_session, "nurse2")
    nurse_name, nurse2_name, nurse2_id = nurse.full_name, nurse2.full_name, nurse2.id
    db_session.commit()

    members = _members(app, client_as("qa"), ward.bag_id, tmp_path)
    signatures = members["signatures.json"]
    by_meaning = {(s["entity_type"], s["meaning"]): s for s in signatures}
    checked = by_meaning[("two_person_check", CHECKED_MEANING)]
    confirmed = by_meaning[("two_person_check", CONFIRMED_MEANING)]
    assert checked["printed_name"] == nurse_name and confirmed["printed_name"] == nurse2_name
    assert ("release_oos", oos.INVALIDATED_MEANING) in by_meaning
    assert any(kind == "release_deviation_assessment" for kind, _meaning in by_meaning)
    assert ("prescription", "Prescribed: dose level, weight and bags") in by_meaning
    for signature in signatures:  # each with its manifestation and its verification
        assert signature["verification"] == {"valid": True, "problem": None}, signature
        manifestation = signature["manifestation"]
        assert signature["printed_name"] in manifestation and signature["meaning"] in manifestation
        assert "UTC" in manifestation and "UTC" in signature["signed_at_local"]
    assert confirmed["record"]["type"] == "Bedside two-person check"
    assert [s["signed_at"] for s in signatures] == sorted(s["signed_at"] for s in signatures)  # oldest first

    [verified] = [e for e in members["custody-timeline.json"]["events"] if e["kind"] == "bedside_verified"]
    assert verified["details"]["second_checker"] == nurse2_id
    assert verified["details"]["second_checker_name"] == nurse2_name
    assert verified["details"]["first_checker_name"] == nurse_name
    audited = {e["entity_type"] for e in members["audit-events.json"]}
    assert {"release_oos", "release_deviation_assessment", "two_person_check"} <= audited


def test_s38_an_administrators_bundle_names_the_bedside_signers_too(app, db_session, client_as, tmp_path):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    db_session.commit()
    members = _members(app, client_as("admin"), ward.bag_id, tmp_path)
    meanings = {s["meaning"] for s in members["signatures.json"] if s["entity_type"] == "two_person_check"}
    assert meanings == {CHECKED_MEANING, CONFIRMED_MEANING}
    [verified] = [e for e in members["custody-timeline.json"]["events"] if e["kind"] == "bedside_verified"]
    assert verified["details"]["second_checker_name"] == "Nurse2"
