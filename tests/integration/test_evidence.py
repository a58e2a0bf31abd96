"""The inspectors' evidence bundle (issue 8 point 3): one ZIP per bag with the custody timeline, lot record, CoA,
donor decision, signatures and audit events, a SHA-256 manifest and an HMAC over it; verified offline, and
any one changed byte in any file is caught and named."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest

from mscbatch.core import evidence
from tests.conftest import TEST_CONFIG

KEY = TEST_CONFIG["AUDIT_KEY"]
DATA_FILES = ["custody-timeline.json", "lot-record.json", "certificate-of-analysis.pdf", "donor-eligibility.json",
              "signatures.json", "audit-events.json"]


@pytest.fixture
def infused_bag(app, users, db_session):  # type: ignore[no-untyped-def]
    """A bag of a lot with a release disposition, prescribed (signed), checked, infused and ended."""
    from mscbatch.audit.context import use_case
    from mscbatch.custody import infusions
    from mscbatch.database import utcnow
    from mscbatch.donors.models import Donor
    from mscbatch.lots.models import Bag, Lot
    from mscbatch.patients.models import Patient
    from mscbatch.release.models import LotDisposition
    from mscbatch.release.specs import spec_for_lot
    from tests.integration.patient_factories import user
    from tests.integration.test_custody_support import KEY as LABEL_KEY
    from tests.integration.test_custody_support import checked_and_confirmed, prescribed_bag

    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    nurse = user(db_session, "nurse")
    infusion = infusions.start_infusion(db_session, nurse, ward.bag_id, wristband=ward.wristband, bag_scan=ward.token, label_key=LABEL_KEY)
    infusions.end_infusion(db_session, nurse, infusion.id, volume_ml="24.5")
    qa, spec = user(db_session, "qa"), spec_for_lot(db_session.get(Lot, ward.lot_id))
    with use_case(db_session, qa):  # the release itself (results, signatures) has its own tests
        db_session.add(LotDisposition(lot_id=ward.lot_id, kind="release", spec_id=spec.id, spec_version=spec.version,
                                      spec_sha256=spec.sha256, verdicts_json="[]", lot_content_json="{}",
                                      decided_by_id=qa.id, signed_at=utcnow()))
    db_session.commit()
    bag = db_session.get(Bag, ward.bag_id)
    lot = db_session.get(Lot, ward.lot_id)
    patient = db_session.get(Patient, ward.patient_id)
    donor = db_session.get(Donor, lot.donor_id)
    made = {"bag_id": bag.id, "lot_id": lot.id, "din": bag.din + bag.check_character, "lot_number": lot.lot_number,
            "donor_code": donor.code, "patient_code": patient.code, "patient_initials": patient.initials,
            "patient_dob": patient.date_of_birth.isoformat(), "wristband": patient.wristband_id}
    db_session.rollback()  # end the read transaction: SQLite would otherwise keep the requests waiting
    return made


@pytest.fixture
def bundle(client_as, infused_bag):  # type: ignore[no-untyped-def]
    response = client_as("qa").get(f"/bags/{infused_bag['bag_id']}/evidence.zip")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/zip"
    assert f'evidence-{infused_bag["din"]}.zip' in response.headers["Content-Disposition"]
    return response.data


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rezip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def test_a_bag_bundle_holds_every_record_and_verifies(bundle, infused_bag):
    verdict = evidence.verify(bundle, KEY)
    assert verdict.valid, verdict
    assert verdict.files_checked == len(DATA_FILES)
    members = _members(bundle)
    assert list(members) == [*DATA_FILES, "manifest.json", "manifest.hmac"]
    manifest = json.loads(members["manifest.json"])
    assert manifest["subject"]["din"] == infused_bag["din"]
    for entry in manifest["files"]:
        assert entry["sha256"] == hashlib.sha256(members[entry["name"]]).hexdigest()
    assert members["certificate-of-analysis.pdf"].startswith(b"%PDF")

    kinds = [e["kind"] for e in json.loads(members["custody-timeline.json"])["events"]]
    assert kinds[-2:] == ["infusion_started", "infusion_ended"]
    assert json.loads(members["lot-record.json"])["lot"]["lot_number"] == infused_bag["lot_number"]
    decision = json.loads(members["donor-eligibility.json"])
    assert decision["donor_code"] == infused_bag["donor_code"]
    if decision["decision"] is not None:
        assert set(decision["decision"]["rule_set"]) == {"id", "version", "sha256"}
        assert "reasons" in decision["decision"]
    signatures = json.loads(members["signatures.json"])
    assert any(s["entity_type"] == "prescription" for s in signatures)
    assert all(s["verification"]["valid"] for s in signatures)
    audit_types = {e["entity_type"] for e in json.loads(members["audit-events.json"])}
    assert {"bag", "lot", "prescription", "custody_event", "infusion", "release_disposition"} <= audit_types

    everything = b"".join(members.values()).decode("utf-8", "replace")
    assert infused_bag["patient_code"] in everything  # pseudonymised codes only
    for identity in (infused_bag["patient_dob"], infused_bag["wristband"]):
        assert identity not in everything


def test_one_flipped_byte_in_any_member_fails_and_names_it(bundle):
    members = _members(bundle)
    for name, body in members.items():
        changed = dict(members)
        middle = len(body) // 2
        changed[name] = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1:]
        verdict = evidence.verify(_rezip(changed), KEY)
        assert not verdict.valid, name
        if name in ("manifest.json", "manifest.hmac"):
            assert verdict.bad_file == "manifest.hmac" and "HMAC" in verdict.problem, (name, verdict)
        else:
            assert verdict.bad_file == name, (name, verdict)
    assert evidence.verify(_rezip(members), KEY).valid  # the rewriting itself changes nothing


def test_a_rewritten_manifest_fails_on_the_hmac(bundle):
    members = _members(bundle)
    forged = b'{"status": "forged"}\n'
    manifest = json.loads(members["manifest.json"])
    for entry in manifest["files"]:
        if entry["name"] == "signatures.json":
            entry["sha256"], entry["size"] = hashlib.sha256(forged).hexdigest(), len(forged)
    members["signatures.json"] = forged
    members["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    verdict = evidence.verify(_rezip(members), KEY)
    assert not verdict.valid and verdict.bad_file == "manifest.hmac" and "HMAC" in verdict.problem
    assert not evidence.verify(bundle, "another-key").valid


def test_added_and_missing_members_and_garbage_fail():
    data = evidence.pack({"a.json": b"{}", "b.txt": b"b"}, KEY, subject={}, generated_at="2026-01-01T00:00:00+00:00")
    assert evidence.verify(data, KEY).valid
    members = _members(data)
    verdict = evidence.verify(_rezip({**members, "extra.txt": b"x"}), KEY)
    assert not verdict.valid and verdict.bad_file == "extra.txt"
    verdict = evidence.verify(_rezip({k: v for k, v in members.items() if k != "b.txt"}), KEY)
    assert not verdict.valid and verdict.bad_file == "b.txt"
    assert not evidence.verify(b"not a zip", KEY).valid
    assert not evidence.verify(data, "").valid
    with pytest.raises(ValueError):
        evidence.pack({"manifest.json": b""}, KEY, subject={}, generated_at="")


def test_the_cli_verifies_offline_and_names_the_bad_file(app, bundle, tmp_path):
    good = tmp_path / "good.zip"
    good.write_bytes(bundle)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["evidence", "verify", str(good)])
    assert result.exit_code == 0 and "VALID" in result.output
    members = _members(bundle)
    members["lot-record.json"] = members["lot-record.json"].replace(b"{", b"[", 1)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_rezip(members))
    result = runner.invoke(args=["evidence", "verify", str(bad)])
    assert result.exit_code == 1 and "lot-record.json" in result.output


def test_only_qa_and_admin_take_the_bundle(client_as, infused_bag):
    url = f"/bags/{infused_bag['bag_id']}/evidence.zip"
    assert client_as("admin").get(url).status_code == 200
    for role in ("technician", "nurse", "clinician"):
        assert client_as(role).get(url).status_code == 403, role
    assert client_as("qa").get("/bags/999999/evidence.zip").status_code == 404
    lot_page = f"/lots/{infused_bag['lot_id']}"
    assert url in client_as("qa").get(lot_page).get_data(as_text=True)
    assert url not in client_as("technician").get(lot_page).get_data(as_text=True)


def test_a_frozen_bag_of_a_screened_donor_carries_the_signed_decision_and_no_coa(app, users, client_as):
    from tests.integration.lot_factories import approved_adipose_donor, cryopreserved_lot

    session = app.extensions["mscbatch.db"].new_session()
    try:
        _lot_id, bags = cryopreserved_lot(session, approved_adipose_donor(session), count=1)
        bag_id = bags[0].id
    finally:
        session.close()
    data = client_as("admin").get(f"/bags/{bag_id}/evidence.zip").data
    assert evidence.verify(data, KEY).valid
    members = _members(data)
    assert "certificate-of-analysis.pdf" not in members  # no release disposition yet
    decision = json.loads(members["donor-eligibility.json"])["decision"]
    assert decision["meaning"] and decision["reasons"] is not None
    assert decision["rule_set"]["id"] == "adipose_at_don" and len(decision["rule_set"]["sha256"]) == 64
    signatures = json.loads(members["signatures.json"])
    assert [s["entity_type"] for s in signatures] == ["donor_eligibility_decision"]
    assert signatures[0]["verification"] == {"valid": True, "problem": None}
    audit = json.loads(members["audit-events.json"])
    donor_rows = [e for e in audit if e["entity_type"] == "donor"]
    assert donor_rows and all("date_of_birth" not in (e["new_value"] or "") or "[redacted]" in e["new_value"]
                              for e in donor_rows)
