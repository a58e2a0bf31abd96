"""QA's signed assessment of a bag returned to the unit (custody.returns): back into stock with the logger's
warmest reading and the bag seen intact, or discarded; refused, nothing is written."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.custody import handover
from mscbatch.custody.models import CustodyEvent, ReturnAssessment
from mscbatch.lots.models import Bag, StorageLocation
from mscbatch.lots.queries import position_label
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation, Prescription
from mscbatch.signatures.models import Signature
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag

GOOD = {"decision": "restock", "logger_max_c": "-172.4", "intact": "y",
        "rationale": "Logger TL-0042 read: never above -172 C; bag and label intact.", "password": PASSWORD}


def returned(session, *, let_go: bool = True, state: str = "received"):  # type: ignore[no-untyped-def]
    """A bag dispatched, (received,) returned by the nurse; with `let_go` its prescription cancelled by the
    clinician (the returned bag is then released from the course, as prescriptions.GONE_FROM_STOCK says)."""
    ward = prescribed_bag(session, state=state)
    handover.return_bag(session, user(session, "nurse"), ward.bag_id, reason="infusion postponed: fever",
                        location="Ward 3")
    if let_go:
        prescription_id = session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == ward.bag_id))
        prescriptions.cancel(session, user(session, "clinician"), prescription_id, "infusion postponed a week", password=PASSWORD)
    session.commit()  # ends the session's transaction: the web requests that follow need SQLite's write lock
    return ward


def post(client, bag_id: int, **changes):  # type: ignore[no-untyped-def]
    data = {**GOOD, **changes}
    return client.post(f"/ward/returned/{bag_id}", data={key: value for key, value in data.items() if value is not None})


def counts(session) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    session.expire_all()
    found = tuple(session.scalar(select(func.count()).select_from(model))
                  for model in (ReturnAssessment, Signature, CustodyEvent, AuditEvent))
    session.commit()
    return found  # type: ignore[return-value]


def test_qa_sees_the_returned_bag_with_its_time_out_and_logger(app, users, db_session, client_as):
    ward = returned(db_session)
    bag = db_session.get(Bag, ward.bag_id)
    box = db_session.get(StorageLocation, bag.box_id)
    kept = f"{box.name}, position {position_label(box, bag.position)}"  # "Box A2, position A4"
    db_session.commit()
    page = client_as("qa").get("/ward/returned")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'id="returned-{bag.id}"' in html and bag.din in html and "infusion postponed: fever" in html
    assert f'href="/ward/returned/{bag.id}"' in html
    page = client_as("qa").get(f"/ward/returned/{bag.id}").get_data(as_text=True)
    assert "TL-0042" in page and "Out of the unit" in page and "Dry shipper DS-3" in page and "-150" in page
    assert f"{kept}</dd>" in page  # one box, then its slot
    assert "Returned bags" in client_as("qa").get("/").get_data(as_text=True)  # in QA's navigation
    lot_page = client_as("qa").get(f"/lots/{ward.lot_id}").get_data(as_text=True)
    assert f'href="/ward/returned/{bag.id}"' in lot_page  # from the lot's bag table
    assert "Assess the return" not in client_as("technician").get(f"/lots/{ward.lot_id}").get_data(as_text=True)


def test_restock_puts_the_bag_back_in_its_position_signed_and_it_can_be_prescribed_again(app, users, db_session,
                                                                                         client_as):
    ward = returned(db_session)
    bag = db_session.get(Bag, ward.bag_id)
    box, position = bag.box_id, bag.position
    assert box is not None  # the slot was kept while the bag was out
    db_session.commit()
    answer = post(client_as("qa"), bag.id)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    db_session.expire_all()
    bag = db_session.get(Bag, ward.bag_id)
    assert (bag.status, bag.box_id, bag.position) == ("stored", box, position)
    assessment = db_session.scalar(select(ReturnAssessment).where(ReturnAssessment.bag_id == bag.id))
    assert assessment.decision == "restock" and assessment.logger_max_c == Decimal("-172.4") and assessment.intact
    assert assessment.locked_at is not None and assessment.minutes_out is not None
    signature = db_session.scalar(select(Signature).where(Signature.entity_type == "custody_return_assessment",
                                                          Signature.entity_id == str(assessment.id)))
    assert signature.meaning == "Returned bag assessed: back into stock"
    event = db_session.scalar(select(CustodyEvent).where(CustodyEvent.bag_id == bag.id)
                              .order_by(CustodyEvent.id.desc()).limit(1))
    assert (event.kind, event.from_status, event.to_status) == ("stored", "returned", "stored")
    assert event.details["return_assessment_id"] == assessment.id and "Logger TL-0042" in event.reason
    audit = db_session.scalar(select(AuditEvent).where(AuditEvent.entity_type == "bag",
                                                       AuditEvent.entity_id == str(bag.id))
                              .order_by(AuditEvent.seq.desc()).limit(1))
    assert audit.actor_id == user(db_session, "qa").id and "Logger TL-0042" in (audit.reason or "")
    # in stock again: a new prescription may take it (the stock offers it; nothing holds its allocation)
    from mscbatch.lots.queries import available_bags

    assert bag.id in {row.id for row, _lot in available_bags(db_session)}
    db_session.commit()
    assert "No bag waits for an assessment" in client_as("qa").get("/ward/returned").get_data(as_text=True)
    # the inspectors' evidence bundle of the bag carries the signed assessment and its audit events
    import io
    import json
    import zipfile

    bundle = zipfile.ZipFile(io.BytesIO(client_as("qa").get(f"/bags/{bag.id}/evidence.zip").data))
    signatures = json.loads(bundle.read("signatures.json"))
    assert any(s["meaning"] == "Returned bag assessed: back into stock" and s["verification"]["valid"]
               for s in signatures)
    audit = json.loads(bundle.read("audit-events.json"))
    assert any(event["entity_type"] == "custody_return_assessment" for event in audit)


def test_discard_is_signed_and_frees_the_position(app, users, db_session, client_as):
    ward = returned(db_session, let_go=False)  # discarding needs no cancelled course
    answer = post(client_as("qa"), ward.bag_id, decision="discard", logger_max_c="", intact=None,
                  rationale="Overwrap torn on arrival; cold chain unproven.")
    assert answer.status_code == 302, answer.get_data(as_text=True)
    db_session.expire_all()
    bag = db_session.get(Bag, ward.bag_id)
    assert (bag.status, bag.box_id, bag.position) == ("discarded", None, None)
    assessment = db_session.scalar(select(ReturnAssessment).where(ReturnAssessment.bag_id == bag.id))
    assert assessment.decision == "discard" and assessment.logger_max_c is None and not assessment.intact


@pytest.mark.parametrize("changes, status, field, words", [
    ({"logger_max_c": "-120.0"}, 409, "logger_max_c", "warmer than the -150"),
    ({"logger_max_c": ""}, 422, "logger_max_c", "Warmest logger temperature: give the warmest"),
    ({"logger_max_c": "cold"}, 422, "logger_max_c", "Warmest logger temperature: give the warmest"),
    ({"logger_max_c": "-172.45"}, 422, "logger_max_c", "at most 1 decimal"),
    ({"logger_max_c": "NaN"}, 422, "logger_max_c", "Warmest logger temperature"),
    ({"intact": None}, 422, "intact", "seen intact"),
    ({"rationale": "ok"}, 422, "rationale", "Rationale: say what you checked"),
    ({"decision": "keep"}, 422, "decision", "Decision: choose"),
    ({"password": "wrong-password"}, 401, "password", "password"),
    ({"password": ""}, 422, "password", "Type your password"),
])
def test_a_refused_assessment_writes_nothing_and_says_why(app, users, db_session, client_as, changes, status, field,
                                                         words):
    ward = returned(db_session)
    qa = client_as("qa")  # signed in first: the sign-in's own audit event is not the assessment's
    before = counts(db_session)
    answer = post(qa, ward.bag_id, **changes)
    html = answer.get_data(as_text=True)
    assert answer.status_code == status, html
    assert words in html
    assert f'id="{field}-error"' in html or status == 401
    db_session.expire_all()
    assert db_session.get(Bag, ward.bag_id).status == "returned"
    after = counts(db_session)
    if status == 401:  # a wrong password: only the refusal and the account's count of wrong passwords are audited
        assert after[:3] == before[:3]
        new = db_session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(after[3] - before[3]))
        assert {(event.action, event.entity_type) for event in new} <= {
            ("signature_refused", "custody_return_assessment"), ("update", "user_account")}, new
    else:
        assert after == before


def test_a_bag_still_reserved_by_an_active_prescription_is_not_restocked(app, users, db_session, client_as):
    ward = returned(db_session, let_go=False)
    qa = client_as("qa")
    before = counts(db_session)
    page = qa.get(f"/ward/returned/{ward.bag_id}").get_data(as_text=True)
    assert 'id="reserved"' in page
    answer = post(qa, ward.bag_id)
    assert answer.status_code == 409
    assert "still reserved by an active prescription" in answer.get_data(as_text=True)
    assert counts(db_session) == before
    # the course still counts it as lost
    prescription = db_session.scalar(select(Prescription).join(Allocation, Allocation.prescription_id == Prescription.id)
                                     .where(Allocation.active_bag_id == ward.bag_id))
    assert prescription is not None and prescription.status == "active"


def test_only_qa_assesses_and_not_the_person_who_returned_it(app, users, db_session, client_as):
    from tests.conftest import add_user

    ward = returned(db_session)
    for role in ("nurse", "technician", "clinician", "admin"):
        assert post(client_as(role), ward.bag_id).status_code == 403
        assert client_as(role).get("/ward/returned").status_code == 403
    # an account holding QA and technician returned a bag itself: another QA person assesses it
    add_user(app, "qatech", ["qa", "technician"])
    other = prescribed_bag(db_session, state="dispatched")
    handover.return_bag(db_session, user(db_session, "qatech"), other.bag_id, reason="courier turned back")
    prescription_id = db_session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == other.bag_id))
    prescriptions.cancel(db_session, user(db_session, "clinician"), prescription_id, "course postponed", password=PASSWORD)
    qatech = client_as("qatech")
    before = counts(db_session)
    answer = post(qatech, other.bag_id)
    assert answer.status_code == 409 and "segregation of duties" in answer.get_data(as_text=True)
    assert counts(db_session) == before
    assert post(client_as("qa"), other.bag_id).status_code == 302


def test_a_bag_assessed_once_cannot_be_assessed_again(app, users, db_session, client_as):
    ward = returned(db_session)
    assert post(client_as("qa"), ward.bag_id).status_code == 302
    qa2 = client_as("qa2")
    before = counts(db_session)
    answer = post(qa2, ward.bag_id, decision="discard")
    assert answer.status_code == 409 and "not returned" in answer.get_data(as_text=True)
    assert counts(db_session) == before
    page = qa2.get(f"/ward/returned/{ward.bag_id}")
    assert page.status_code == 404 and "is stored: no return of it waits" in page.get_data(as_text=True)
    assert qa2.get("/ward/returned/999999").status_code == 404


def test_an_expired_returned_bag_cannot_go_back_into_stock(app, users, db_session, client_as):
    from datetime import timedelta

    from sqlalchemy import update

    from mscbatch.database import utcnow

    ward = returned(db_session)
    with db_session.begin():  # the clock moved on past its expiry (Core: no use case to audit a test's shortcut)
        db_session.execute(update(Bag.__table__).where(Bag.__table__.c.id == ward.bag_id)
                           .values(expires_at=utcnow() - timedelta(minutes=1)))
    answer = post(client_as("qa"), ward.bag_id)
    assert answer.status_code == 409 and "cannot go back into stock: it expired" in answer.get_data(as_text=True)
    assert db_session.get(Bag, ward.bag_id).status == "returned"


def test_a_returned_bag_is_not_discarded_without_the_signed_assessment_on_the_ward_page_nor_the_api(
        app, users, db_session, client_as):
    from tests.conftest import api_token_for

    ward = returned(db_session)
    qa = client_as("qa")
    before = counts(db_session)
    page = qa.post("/ward/event", data={"bag": ward.token, "action": "discard", "reason": "cracked overwrap"})
    assert page.status_code == 409 and "signed assessment of the return" in page.get_data(as_text=True)
    api = app.test_client().post("/api/v1/custody/events", json={"bag": ward.token, "kind": "discarded",
                                                                  "reason": "cracked overwrap"},
                                 headers={"Authorization": f"Bearer {api_token_for(app, 'qa')}"})
    assert api.status_code == 409 and "signed assessment of the return" in api.get_json()["detail"]
    after = counts(db_session)
    assert after[:3] == before[:3]  # no assessment, signature or custody event (the API token's creation is audited)
    assert db_session.get(Bag, ward.bag_id).status == "returned"


def test_the_lot_page_shows_each_return_with_its_signed_assessment(app, users, db_session, client_as):
    """A bag back in stock after a trip to the ward carries its story on the lot's page, for anyone who reads it
    (a clinician prescribing it again, an inspector): when and why it came back, what QA found, and the signature's
    printed name, time and meaning (21 CFR 11.50). Before, the assessment was shown only in the evidence bundle."""
    ward = returned(db_session)
    db_session.commit()
    lot_page = client_as("clinician").get(f"/lots/{ward.lot_id}").get_data(as_text=True)
    assert 'id="bag-returns"' not in lot_page  # nothing assessed yet: no section
    assert post(client_as("qa"), ward.bag_id).status_code == 302
    qa_name = user(db_session, "qa").full_name
    db_session.commit()
    lot_page = client_as("clinician").get(f"/lots/{ward.lot_id}").get_data(as_text=True)
    section = lot_page[lot_page.index('id="bag-returns"'):]
    section = section[:section.index("</ul>")]
    assert "infusion postponed: fever" in section and "Back into stock" in section
    assert "-172.4 °C" in section and "seen intact" in section and "Logger TL-0042 read" in section
    assert f"Signed: {qa_name}" in section and "“Returned bag assessed: back into stock”" in section
