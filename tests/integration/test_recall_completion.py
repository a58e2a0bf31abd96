"""Closing a valid recall as completed (EU GMP Part I 8.30; DOMAIN.md section 8), through the pages, on both
databases. Before, the only way out of an active recall was "End (found invalid)", which lifts every hold: QA
who had finished a genuine recall could not close it without putting its bags back into use. Completion is signed
by QA with a closing note, refused while a bag the recall reaches is still in stock or on the ward, and lifts no
hold: the lots stay recalled and the bedside check still stops the bags."""
from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader
from sqlalchemy import select, update

from mscbatch.audit.models import AuditEvent
from mscbatch.core.identifiers import parse_din
from mscbatch.custody import handover
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Prescription
from mscbatch.recall.models import COMPLETE_MEANING, BagHold, Recall
from mscbatch.recall.queries import bag_hold, recalls_covering
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import verify
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_recall_support import scene

NOTE = ("Effectiveness check: all 4 affected bags traced; 1 infused (clinician notified 12 May), 3 recovered in the "
        "unit and destroyed. Delivered 1, recovered 3, destroyed 3: reconciled.")


def start(client: Any, scope: str, target: str) -> Any:
    response = client.post("/recalls/new", data={"scope": scope, "target": target, "password": PASSWORD,
                                                 "reason": "Supplier notice: medium lot contaminated"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(response.headers["Location"].rsplit("/", 1)[-1])


def complete(client: Any, recall_id: int, note: str = NOTE, password: str = PASSWORD) -> Any:
    return client.post(f"/recalls/{recall_id}/complete", data={"note": note, "password": password})


def refusal(response: Any) -> str:
    """The refusal's words on the recall's page (the page lists every bag too)."""
    page = response.get_data(as_text=True)
    start_at = page.index("Recall R-", page.index('id="complete"'))
    return page[start_at:page.index("Nothing was signed.", start_at) + len("Nothing was signed.")]


def held_bags(app: Any, recall_id: int) -> list[tuple[int, str, str]]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return [(bag.id, bag.din, bag.status) for bag in session.scalars(
            select(Bag).join(BagHold, BagHold.bag_id == Bag.id).where(BagHold.recall_id == recall_id)
            .order_by(Bag.din))]


def discard_all_in_stock(app: Any, bag_ids: list[int]) -> None:
    """QA discards the held bags in the unit (a bag allocated is first let go by cancelling its prescription)."""
    with app.extensions["mscbatch.db"].new_session() as session:
        clinician, qa = user(session, "clinician"), user(session, "qa")
        for prescription in session.scalars(select(Prescription).where(Prescription.status == "active")).all():
            prescriptions.cancel(session, clinician, prescription.id, "Recalled product: course stopped", password=PASSWORD)
        for bag_id in bag_ids:
            if session.get(Bag, bag_id).status not in ("infused", "discarded"):
                handover.discard(session, qa, bag_id, reason="Recalled: destroyed")


def notify_all(app: Any, client: Any, recall_id: int) -> None:
    """QA records, on the recall's page, that the clinician of every patient on its notify list was told (a recall
    is completed only then: recall.notices)."""
    from mscbatch.database import utcnow
    from mscbatch.recall.report import recall_report
    from mscbatch.site import site_config

    with app.extensions["mscbatch.db"].new_session() as session:
        untold = [entry.patient.id for entry in recall_report(session, recall_id).not_notified]
    when = utcnow().astimezone(site_config().tz).strftime("%Y-%m-%dT%H:%M")
    for patient_id in untold:
        response = client.post(f"/recalls/{recall_id}/patients/{patient_id}/notice",
                               data={"clinician": "Dr Clara Clinician", "how": "phone", "told_at": when})
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]


def test_qa_completes_a_recall_once_every_held_bag_is_destroyed_and_the_holds_stay(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.released_lot_id))
    held = held_bags(app, recall_id)
    assert len(held) >= 2 and all(status != "infused" for _id, _din, status in held)

    refused = complete(qa, recall_id)
    text = refusal(refused)
    assert refused.status_code == 409
    assert f"{len(held)} bags are still to be dealt with" in text and all(parse_din(din).display in text for _i, din, _s in held)
    assert "in stock" in text and "Nothing was signed" in text
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert 'id="outstanding"' in page and "Sign and complete the recall" in page

    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held[:-1]])  # one left: the refusal names it
    one_left = refusal(complete(qa, recall_id))
    assert one_left.startswith(f"Recall R-{recall_id} cannot be completed yet: 1 bag is still to be dealt with: "
                               f"bag {parse_din(held[-1][1]).display} (in stock).")

    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held])
    notify_all(app, qa, recall_id)
    no_note = complete(qa, recall_id, note="  ")
    assert no_note.status_code == 422 and "Write the closing note" in no_note.get_data(as_text=True)
    wrong = complete(qa, recall_id, password="not my password")
    assert wrong.status_code == 401 and "wrong password" in wrong.get_data(as_text=True)
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Recall, recall_id).status == "active"

    done = complete(qa, recall_id)
    assert done.status_code == 302, done.get_data(as_text=True)[:3000]
    with app.extensions["mscbatch.db"].new_session() as session:
        recall = session.get(Recall, recall_id)
        qa_id = user(session, "qa").id
        assert (recall.status, recall.ended_by_id, recall.end_reason) == ("completed", qa_id, NOTE)
        assert recall.ended_at is not None and not recall.active
        holds = session.scalars(select(BagHold).where(BagHold.recall_id == recall_id)).all()
        assert len(holds) == len(held) and all(h.lifted_at is None for h in holds)  # nothing lifted
        assert all(bag_hold(session, h.bag_id) for h in holds)
        assert session.get(Lot, s.released_lot_id).status == "recalled"
        signatures = list(session.scalars(select(Signature).where(Signature.entity_type == "recall")
                                          .order_by(Signature.id)))
        assert [sig.meaning for sig in signatures][1:] == [COMPLETE_MEANING]
        assert all(verify(session, sig, recall).valid for sig in signatures)
        trail = session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "recall",
                                                         AuditEvent.field == "status")).all()
        assert [(e.old_value, e.new_value) for e in trail][-1:] == [("active", "completed")]
        assert trail[-1].reason.startswith("recall completed: Effectiveness check")
        # the completion signature vouches for the note: a note altered behind the application fails it
        session.execute(update(Recall).where(Recall.id == recall_id).values(end_reason="All fine"))
        session.expire_all()
        assert not verify(session, signatures[-1], session.get(Recall, recall_id)).valid
        session.rollback()

    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert 'id="recall-status">Completed<' in page and NOTE in page and COMPLETE_MEANING in page
    assert "Sign and complete" not in page and "Sign and end" not in page
    assert page.count('data-hold="active"') == len(held)
    assert "destroyed under the recall" in page
    pdf = qa.get(f"/recalls/{recall_id}/report.pdf")
    words = " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "Status: COMPLETED (final report)" in words and "Completed by" in words
    assert "Recall completed: every affected bag accounted for" in words and "Closing note" in words
    assert "reconciled" in words and "Reconciliation:" in words

    again = complete(qa, recall_id)
    assert again.status_code == 409 and "already completed" in again.get_data(as_text=True)
    ended = qa.post(f"/recalls/{recall_id}/end", data={"reason": "changed my mind", "password": PASSWORD})
    assert ended.status_code == 409 and "cannot be ended, and its holds stay" in ended.get_data(as_text=True)
    with app.extensions["mscbatch.db"].new_session() as session:
        assert all(h.lifted_at is None for h in session.scalars(select(BagHold)))


def test_completion_is_for_qa_and_not_for_a_recall_ended_as_invalid(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.quarantine_lot_id))
    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held_bags(app, recall_id)])
    for role in ("technician", "clinician", "nurse"):
        assert complete(client_as(role), recall_id).status_code == 403
    assert qa.post(f"/recalls/{recall_id}/end", data={"reason": "Supplier withdrew the notice: wrong lot number",
                                                      "password": PASSWORD}).status_code == 302
    refused = complete(qa, recall_id)
    assert refused.status_code == 409 and "already ended (found invalid" in refused.get_data(as_text=True)
    listing = qa.get("/recalls").get_data(as_text=True)
    assert "Ended (found invalid)" in listing and ">Completed<" not in listing
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Recall, recall_id).status == "ended"
        assert session.scalars(select(Signature.meaning).where(Signature.entity_type == "recall")).all()[-1] \
            .startswith("Recall ended")


def test_the_bedside_still_stops_the_held_bag_after_completion(app, db_session, users, client_as):
    ward = prescribed_bag(db_session)  # thawed on the ward for its patient
    db_session.close()
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(ward.lot_id))
    refused = refusal(complete(qa, recall_id))
    ward_din = next(din for bag_id, din, _s in held_bags(app, recall_id) if bag_id == ward.bag_id)
    assert f"bag {parse_din(ward_din).display} (thawed on the ward)" in refused

    with app.extensions["mscbatch.db"].new_session() as session:  # the ward destroys its thawed bag
        handover.discard(session, user(session, "nurse"), ward.bag_id, reason="Recalled: not given, destroyed")
    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held_bags(app, recall_id)])
    assert complete(qa, recall_id).status_code == 302

    scan = app.test_client().post("/api/v1/custody/scan-verify", json={"wristband": ward.wristband, "bag": ward.token},
                                  headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}).get_json()
    assert scan["result"] == "STOP"
    on_hold = [f["message"] for f in scan["failures"] if f["code"] == "on_hold"]
    assert on_hold and f"ON HOLD (recall R-{recall_id})" in on_hold[0]  # held still; "completed" would read as over
    with app.extensions["mscbatch.db"].new_session() as session:
        assert all(bag_hold(session, bag_id) for bag_id, _din, _s in held_bags(app, recall_id))
        # a completed recall still covers its origin: the lot cannot be released again, and bags made later are held
        assert [r.id for r in recalls_covering(session, session.get(Lot, ward.lot_id))] == [recall_id]


def test_a_recall_ended_and_completed_at_once_is_closed_once(app, users, monkeypatch):
    """Two QA people, one ending the recall as invalid, one completing it (PostgreSQL: both read it active before
    either wrote). The recall row is locked and read again: one wins, the other is refused in words, and there is
    one closing signature; holds lifted only if the ending won."""
    from mscbatch.recall import services as recalls
    from tests.reliability.races import Rendezvous, race

    s = scene(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        recall_id = recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=s.quarantine_lot_id,
                                         reason="isolator sterility in doubt", password=PASSWORD).recall_id
    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held_bags(app, recall_id)])
    meet, read = Rendezvous(True), recalls.get_recall

    def read_then_meet(session: Any, wanted: int) -> Any:
        found = read(session, wanted)
        meet()
        return found

    monkeypatch.setattr(recalls, "get_recall", read_then_meet)

    def close(session: Any, qa: Any) -> Any:
        if qa.username == "qa":
            return recalls.complete_recall(session, qa, recall_id, note=NOTE, password=PASSWORD)
        return recalls.end_recall(session, qa, recall_id, reason="false alarm", password=PASSWORD)

    outcomes = race(app, lambda session, n: user(session, ("qa", "qa2")[n]), close)
    assert sorted(kind for kind, _ in outcomes) == ["ok", "refused"], outcomes
    [refused] = [value for kind, value in outcomes if kind == "refused"]
    with app.extensions["mscbatch.db"].new_session() as session:
        recall = session.get(Recall, recall_id)
        closings = session.scalars(select(Signature.meaning).where(Signature.entity_type == "recall")).all()[1:]
        lifted = {h.lifted_at is not None for h in session.scalars(select(BagHold))}
        assert len(closings) == 1
        if recall.status == "completed":
            assert closings[0] == COMPLETE_MEANING and lifted == {False} and recall.end_reason == NOTE
            assert "already completed" in refused.message
        else:
            assert closings[0].startswith("Recall ended") and lifted == {True} and recall.end_reason == "false alarm"
            assert "already ended (found invalid" in refused.message
