"""Patient data leaving through the interoperability exports: the infusions CSV (page and API) goes to the readers
of the patient pages only; the evidence bundle an administrator takes holds the product's evidence with the
patients' records and the patient named in custody events redacted, while QA's holds the clinical side."""
from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from sqlalchemy import select

from mscbatch.core import evidence
from mscbatch.custody import infusions
from mscbatch.custody.models import Infusion
from tests.conftest import api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_evidence import KEY, infused_bag  # noqa: F401 (a fixture)

REACTION = "chills, fever 38.6 after 10 mL"
REDACTED = "[redacted]"


@pytest.fixture
def reacted(db_session, infused_bag):  # type: ignore[no-untyped-def]  # noqa: F811
    """The infused bag, with an infusion reaction recorded by the nurse."""
    infusion = db_session.scalar(select(Infusion).where(Infusion.bag_id == infused_bag["bag_id"]))
    infusions.record_reaction(db_session, user(db_session, "nurse"), infusion.id,
                              infusions.ReactionDetails("Infusion related reaction", "2", REACTION))
    made = {**infused_bag, "infusion_id": infusion.id, "patient_id": infusion.patient_id}
    db_session.rollback()  # end the read transaction: SQLite would otherwise keep the requests waiting
    return made


def _csv(response) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _api(app, role: str, path: str):  # type: ignore[no-untyped-def]
    return app.test_client().get(path, headers={"Authorization": f"Bearer {api_token_for(app, role)}"})


@pytest.mark.parametrize("role", ["qa", "clinician"])
def test_patient_readers_export_the_infusions(app, client_as, reacted, role):
    [row] = _csv(client_as(role).get("/exports/infusions.csv"))
    assert row["patient_code"] == reacted["patient_code"] and row["worst_reaction_grade"] == "2"
    api = _api(app, role, "/api/v1/exports/infusions.csv")
    assert api.status_code == 200 and _csv(api) == [row]
    assert "/exports/infusions.csv" in client_as(role).get("/exports").get_data(as_text=True)


@pytest.mark.parametrize("role", ["admin", "technician", "nurse"])
def test_admin_and_technician_are_refused_the_infusions(app, client_as, reacted, role):
    page = client_as(role).get("/exports/infusions.csv")
    assert page.status_code == 403 and reacted["patient_code"] not in page.get_data(as_text=True)
    api = _api(app, role, "/api/v1/exports/infusions.csv")
    assert api.status_code == 403 and api.mimetype == "application/problem+json"
    assert reacted["patient_code"] not in api.get_data(as_text=True)
    assert "/exports/infusions.csv" not in client_as(role).get("/exports").get_data(as_text=True)
    assert client_as(role).get("/exports/bags.csv").status_code == 200  # the product exports stay


def _bundle(client_as, role: str, bag_id: int) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    response = client_as(role).get(f"/bags/{bag_id}/evidence.zip")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert evidence.verify(response.data, KEY).valid
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _inserted(members: dict[str, bytes], entity_type: str) -> list[dict]:  # type: ignore[type-arg]
    events = json.loads(members["audit-events.json"])
    return [e for e in events if e["entity_type"] == entity_type and e["action"] == "insert"]


def _started(members: dict[str, bytes]) -> dict:  # type: ignore[type-arg]
    events = json.loads(members["custody-timeline.json"])["events"]
    return next(e for e in events if e["kind"] == "infusion_started")


def test_the_admins_evidence_bundle_keeps_the_product_evidence_and_redacts_the_patient(client_as, reacted):
    members = _bundle(client_as, "admin", reacted["bag_id"])
    everything = b"".join(members.values()).decode("utf-8", "replace")
    for secret in (reacted["patient_code"], REACTION, reacted["wristband"], reacted["patient_dob"]):
        assert secret not in everything, secret
    started = _started(members)
    assert started["details"]["patient_id"] == REDACTED and started["details"]["wristband"] == REDACTED
    assert started["details"]["infusion_id"] == reacted["infusion_id"] and started["actor"]  # who, when stay
    [reaction] = _inserted(members, "infusion_reaction")
    shown = json.loads(reaction["new_value"])
    assert shown["description"] == REDACTED and shown["grade"] == REDACTED and shown["ctcae_term"] == REDACTED
    assert shown["infusion_id"] == str(reacted["infusion_id"]) and shown["recorded_at"] != REDACTED
    assert reaction["actor_name"] == "nurse" and reaction["occurred_at"]
    [prescription] = _inserted(members, "prescription")
    shown = json.loads(prescription["new_value"])
    assert shown["patient_id"] == REDACTED and shown["weight_kg"] == REDACTED and shown["prescribed_at"] != REDACTED
    [infusion] = _inserted(members, "infusion")
    shown = json.loads(infusion["new_value"])
    assert shown["patient_id"] == REDACTED and shown["bag_id"] == str(reacted["bag_id"])
    assert reacted["din"] in everything and reacted["lot_number"] in everything  # the product's trail is whole
    assert members["certificate-of-analysis.pdf"].startswith(b"%PDF")


def test_the_qa_evidence_bundle_holds_the_clinical_side(client_as, reacted):
    members = _bundle(client_as, "qa", reacted["bag_id"])
    started = _started(members)
    assert started["details"]["patient_id"] == reacted["patient_id"]
    [reaction] = _inserted(members, "infusion_reaction")
    assert json.loads(reaction["new_value"])["description"] == REACTION
    [prescription] = _inserted(members, "prescription")
    assert json.loads(prescription["new_value"])["patient_id"] == str(reacted["patient_id"])
    everything = b"".join(members.values()).decode("utf-8", "replace")
    for identity in (reacted["wristband"], reacted["patient_dob"]):  # identity never leaves the site
        assert identity not in everything
