"""Recall and lookback (issue 7, DOMAIN.md section 8), through the pages, on both databases: a donor recall
puts every unused bag of the donor on hold at once and lists the patients who received product; the bedside
hold query and the label API see the hold; ending the recall (signed) lifts the holds."""
from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader
from sqlalchemy import select, update

from mscbatch.core.label_token import make_token
from mscbatch.donors.models import DonorLookback
from mscbatch.lots.models import Bag, Lot
from mscbatch.recall.models import BagHold, Recall
from mscbatch.recall.queries import bag_hold
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import verify
from tests.conftest import PASSWORD, TEST_CONFIG, api_token_for
from tests.integration.patient_factories import lot_with_bags, user
from tests.integration.test_recall_support import scene


def start(client: Any, scope: str, target: str, reason: str = "Late positive anti-HBc on the archived sample",
          password: str = PASSWORD) -> Any:
    return client.post("/recalls/new", data={"scope": scope, "target": target, "reason": reason,
                                             "password": password})


def test_a_donor_recall_holds_every_unused_bag_at_once_and_lists_the_patients(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    response = start(qa, "donor", s.donor_code)
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    session = app.extensions["mscbatch.db"].new_session()
    recall = session.scalars(select(Recall)).one()
    assert (recall.scope, recall.donor_id, recall.status) == ("donor", s.donor_id, "active")
    held = {h.bag_id for h in session.scalars(select(BagHold).where(BagHold.lifted_at.is_(None)))}
    assert held == set(s.stock_bag_ids) and s.infused_bag_id not in held
    for bag_id in s.stock_bag_ids:
        assert "on hold by recall R-" in (bag_hold(session, bag_id) or "")
    assert bag_hold(session, s.infused_bag_id) is None
    other_bags = session.scalars(select(Bag.id).where(Bag.lot_id == s.other_lot_id)).all()
    assert all(bag_hold(session, b) is None for b in other_bags)
    assert session.get(Lot, s.released_lot_id).status == "recalled"
    assert session.get(Lot, s.quarantine_lot_id).status == "quarantine"  # no recalled state from quarantine
    assert session.get(Lot, s.other_lot_id).status == "released"
    signature = session.scalars(select(Signature).where(Signature.entity_type == "recall")).one()
    assert signature.meaning.startswith("Recall started") and recall.locked_at is not None
    stock_bag = session.get(Bag, s.stock_bag_ids[-1])
    token = make_token(stock_bag.din + stock_bag.check_character, TEST_CONFIG["LABEL_KEY"])
    session.close()

    page = qa.get(response.headers["Location"]).get_data(as_text=True)
    assert f'data-patient="{s.patient_code}"' in page and "NOTIFY CLINICIAN" in page
    assert page.count('data-hold="active"') == len(s.stock_bag_ids)
    pdf = qa.get(f"/recalls/{recall.id}/report.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert s.patient_code in text and "notify their clinician" in text and "Recall started" in text
    clinician_view = client_as("clinician").get(f"/recalls/{recall.id}")
    assert clinician_view.status_code == 200 and "Sign and end" not in clinician_view.get_data(as_text=True)

    api = app.test_client().get("/api/v1/labels/verify", query_string={"token": token},
                                headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}).get_json()
    assert api["on_hold"] is True and api["usable"] is False
    assert client_as("technician").post(f"/labels/lots/{s.quarantine_lot_id}/print",
                                        data={"print_format": "lot"}).status_code == 409
    assert start(qa, "donor", s.donor_code).status_code == 409  # one active recall per origin


def test_a_donor_recall_links_and_closes_the_donors_open_lookback(app, users, client_as):
    from mscbatch.donors import decisions
    from mscbatch.donors.models import Donor
    from tests.integration.lot_factories import approved_adipose_donor

    session = app.extensions["mscbatch.db"].new_session()
    donor_id = approved_adipose_donor(session)
    lot_with_bags(session, user(session, "technician"), session.get(Donor, donor_id), bags=2)
    decisions.reopen_screening(session, user(session, "qa"), donor_id, "Donor reports hepatitis B in a relative")
    code = session.get(Donor, donor_id).code
    session.close()
    assert start(client_as("qa"), "donor", code).status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    lookback = session.scalars(select(DonorLookback)).one()
    recall = session.scalars(select(Recall)).one()
    assert recall.lookback_id == lookback.id and lookback.closed_at is not None
    assert lookback.closure_note.startswith(f"Recall R-{recall.id} started")
    assert len(session.scalars(select(BagHold)).all()) == 2
    session.close()


def test_a_recall_needs_qa_a_reason_and_the_right_password(app, users, client_as):
    s = scene(app)
    assert start(client_as("technician"), "donor", s.donor_code).status_code == 403
    qa = client_as("qa")
    no_reason = start(qa, "donor", s.donor_code, reason=" ")
    assert no_reason.status_code == 422 and "Give the reason" in no_reason.get_data(as_text=True)
    wrong = start(qa, "donor", s.donor_code, password="wrong password")
    assert wrong.status_code == 401 and "wrong password" in wrong.get_data(as_text=True)
    unknown = start(qa, "donor", "D-0000-0000")
    assert unknown.status_code == 422
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalars(select(Recall)).all() == [] and session.scalars(select(BagHold)).all() == []
    assert session.get(Lot, s.released_lot_id).status == "released"
    session.close()


def test_ending_a_recall_is_signed_and_lifts_its_holds(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    assert start(qa, "lot", "#" + str(s.quarantine_lot_id)).status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    recall = session.scalars(select(Recall)).one()
    quarantine_bags = session.scalars(select(Bag.id).where(Bag.lot_id == s.quarantine_lot_id)).all()
    assert all(bag_hold(session, b) for b in quarantine_bags)
    session.close()
    refused = qa.post(f"/recalls/{recall.id}/end", data={"reason": "", "password": PASSWORD})
    assert refused.status_code == 422
    wrong = qa.post(f"/recalls/{recall.id}/end", data={"reason": "false positive", "password": "nope"})
    assert wrong.status_code == 401
    ended = qa.post(f"/recalls/{recall.id}/end",
                    data={"reason": "Supplier confirmed the sterility alert concerned another lot", "password": PASSWORD})
    assert ended.status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    recall = session.get(Recall, recall.id)
    assert recall.status == "ended" and recall.end_reason.startswith("Supplier confirmed")
    assert all(bag_hold(session, b) is None for b in quarantine_bags)
    assert all(h.lifted_at is not None for h in session.scalars(select(BagHold)))
    signatures = list(session.scalars(select(Signature).where(Signature.entity_type == "recall").order_by(Signature.id)))
    assert signatures[0].meaning.startswith("Recall started") and signatures[1].meaning.startswith("Recall ended")
    assert all(verify(session, sig, recall).valid for sig in signatures)
    recall_id = recall.id
    # the end signature vouches for the ending: an end reason altered behind the application fails it
    session.execute(update(Recall).where(Recall.id == recall_id).values(end_reason="Nothing to see"))
    session.expire_all()
    start_check, end_check = (verify(session, sig, session.get(Recall, recall_id)) for sig in signatures)
    assert start_check.valid and not end_check.valid and end_check.problem == "the record changed after it was signed"
    session.rollback()
    session.close()
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert 'data-hold="lifted"' in page and "Bags on hold now: <strong>0</strong>" in page
    assert qa.post(f"/recalls/{recall_id}/end", data={"reason": "again", "password": PASSWORD}).status_code == 409


def test_a_reagent_lot_recall_holds_the_bags_of_every_lot_that_used_it(app, users, client_as):
    s = scene(app)
    assert start(client_as("qa"), "reagent_lot", "MA-77", reason="Supplier notice: endotoxin").status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    held = {h.bag_id for h in session.scalars(select(BagHold))}
    assert held == set(s.stock_bag_ids)
    assert session.scalars(select(Recall)).one().reagent_lot_id == s.reagent_lot_id
    session.close()
    listing = client_as("clinician").get("/recalls").get_data(as_text=True)
    assert "MEM alpha MA-77" in listing


def test_the_bedside_check_stops_a_bag_held_by_a_recall(app, users, client_as):
    import pytest

    checks = pytest.importorskip("mscbatch.custody.checks")
    from mscbatch.patients.models import Patient

    s = scene(app)
    assert s.dispatched_bag_id is not None  # the second bag allocated to the patient, not given yet
    assert start(client_as("qa"), "donor", s.donor_code).status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    bag = session.get(Bag, s.dispatched_bag_id)
    wristband = session.get(Patient, s.patient_id).wristband_id
    result = checks.evaluate(session, wristband, make_token(bag.din + bag.check_character, TEST_CONFIG["LABEL_KEY"]),
                             TEST_CONFIG["LABEL_KEY"])
    codes = {f.code for f in result.failures}
    assert "on_hold" in codes and not result.matches
    assert any(f.message.startswith("This bag is ON HOLD (recall R-") for f in result.failures)
    session.close()


def test_an_end_signature_made_before_the_ending_was_signed_content_still_verifies(app, users, client_as):  # type: ignore[no-untyped-def]
    """End signatures of the earlier meaning vouched for the start content only: they stay valid."""
    from mscbatch.audit.context import use_case
    from mscbatch.signatures.services import sign

    s = scene(app)
    assert start(client_as("qa"), "lot", "#" + str(s.quarantine_lot_id)).status_code == 302
    session = app.extensions["mscbatch.db"].new_session()
    recall = session.scalars(select(Recall)).one()
    qa = user(session, "qa")
    with use_case(session, qa, "recall ended: test of an earlier signature"):
        recall.status, recall.end_reason = "ended", "Supplier alert concerned another lot"
        old = sign(session, qa, PASSWORD, recall, "Recall ended: found invalid, holds lifted", required_role="qa",
                   lock=False)
    assert verify(session, old, recall).valid
    session.close()
