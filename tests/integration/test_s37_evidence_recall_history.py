"""The evidence bundle of a recalled bag says why (inspection finding): the demo's bag of the lot recalled because
its donor later tested reactive (recall R-1). donor-eligibility.json held only "decision": null, "No eligibility
decision in force": the approval the lot was released under, the late reactive result and the reopening were gone;
signatures.json held the release signature alone and lot-record.json named no recall. Now the decision history
(each decision with its meaning, signer, time, whether superseded, when, why and by what), the screening results,
the lookback, the recalls covering the bag with the bag's hold and the recall signatures are all in the bundle, which
still verifies offline (mscbatch evidence verify)."""
from __future__ import annotations

import io
import json
import zipfile

from sqlalchemy import select

from mscbatch.auth.models import User
from mscbatch.demo import seed_demo
from mscbatch.donors.decisions import APPROVED
from mscbatch.lots.models import Bag
from mscbatch.recall import services
from mscbatch.recall.demo import demo_recall
from mscbatch.recall.models import COMPLETE_MEANING, END_MEANING, BagHold
from mscbatch.release.demo import DEMO_PASSWORD
from tests.conftest import login


def _bundle(app, bag_id: int, tmp_path, name: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert login(client, "qa", DEMO_PASSWORD).status_code == 302
    response = client.get(f"/bags/{bag_id}/evidence.zip")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    path = tmp_path / name
    path.write_bytes(response.data)
    verdict = app.test_cli_runner().invoke(args=["evidence", "verify", str(path)])  # the CLI, offline
    assert verdict.exit_code == 0 and "VALID" in verdict.output, verdict.output
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        return {member: json.loads(archive.read(member)) for member in archive.namelist()
                if member.endswith(".json")}


def test_a_recalled_bags_bundle_keeps_the_approval_the_late_result_and_the_recall(app, tmp_path):
    session = app.extensions["mscbatch.db"].new_session()
    try:
        seed_demo(session, hash_profile="fast")
        recall = demo_recall(session)
        assert recall is not None and recall.scope == "donor"
        bag = session.scalars(select(Bag).join(BagHold, BagHold.bag_id == Bag.id)
                              .where(BagHold.recall_id == recall.id).order_by(Bag.id)).first()
        recall_id, bag_id, donor_id = recall.id, bag.id, recall.donor_id
        session.rollback()
    finally:
        session.close()

    members = _bundle(app, bag_id, tmp_path, "active.zip")
    eligibility = members["donor-eligibility.json"]
    assert eligibility["decision"] is None  # none in force: the reactive result reopened the approval
    [approval] = [d for d in eligibility["decisions"] if d["meaning"] == APPROVED]
    assert approval["in_force"] is False and approval["superseded_at"] and approval["decided_by"] == "Quentin QA"
    assert "positive" in approval["superseded_reason"] and approval["judged_at"]
    assert approval["superseded_by_decision_id"] is None  # no decision since: the donor awaits QA
    reactive = [r for r in eligibility["screening_results"] if r["result"] == "positive"]
    assert [r["marker"] for r in reactive] == ["anti_hiv_1_2"]
    [lookback] = eligibility["lookbacks"]
    assert lookback["superseded_decision_id"] == approval["id"] and approval["lookback_ids"] == [lookback["id"]]
    assert lookback["triggering_result_id"] == reactive[0]["id"]
    assert "No eligibility decision in force for this donor now" in eligibility["note"]

    [entry] = members["lot-record.json"]["recalls"]
    assert (entry["id"], entry["number"], entry["scope"], entry["donor_id"]) == (recall_id, f"R-{recall_id}",
                                                                                "donor", donor_id)
    assert entry["status"] == "active" and "reactive" in entry["reason"] and entry["started_by"] == "Quentin QA"
    assert entry["bag_hold"]["active"] is True and entry["bag_hold"]["placed_at"]

    signatures = members["signatures.json"]
    kinds = {(s["entity_type"], s["meaning"]) for s in signatures}
    assert ("donor_eligibility_decision", APPROVED) in kinds  # the approval the lot was released under
    assert any(kind == "recall" and meaning.startswith("Recall started") for kind, meaning in kinds)
    assert all(s["verification"]["valid"] for s in signatures)
    audited = {e["entity_type"] for e in members["audit-events.json"]}
    assert {"recall", "bag_hold", "donor_screening_result", "donor_lookback"} <= audited

    # QA ends the recall (found invalid): the end, who and when, the lifted hold and the end signature follow
    session = app.extensions["mscbatch.db"].new_session()
    try:
        qa = session.scalar(select(User).where(User.username == "qa"))
        services.end_recall(session, qa, recall_id, reason="Retest by the reference lab: false reactive",
                            password=DEMO_PASSWORD)
        session.commit()
    finally:
        session.close()
    members = _bundle(app, bag_id, tmp_path, "ended.zip")
    [entry] = members["lot-record.json"]["recalls"]
    assert entry["status"] == "ended" and entry["ended_by"] == "Quentin QA" and entry["ended_at"]
    assert entry["end_reason"] == "Retest by the reference lab: false reactive"
    assert entry["bag_hold"]["active"] is False and entry["bag_hold"]["lifted_by"] == "Quentin QA"
    recall_signatures = [s for s in members["signatures.json"] if s["entity_type"] == "recall"]
    assert [s["meaning"] for s in recall_signatures][-1] in (END_MEANING, COMPLETE_MEANING)
    assert all(s["verification"]["valid"] for s in recall_signatures)
