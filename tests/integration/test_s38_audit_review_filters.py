"""QA's audit trail review (Part 11 inspection finding): the page had no filter by action (refused signatures, failed
sign-ins, status changes could not be listed alone), took a record only by its database id (entity_type=lot&
entity_id=MSC-2026-0001 silently listed nothing), a user only by username ("Quentin QA" listed nothing), and had no
view of a lot's whole trail. Now each works, on the page and its CSV, and a filter that names nothing says so beside
its field with a 4xx."""
from __future__ import annotations

import csv
import html
import io
import re

import pytest
from sqlalchemy import select

from mscbatch.core.identifiers import din_shown
from mscbatch.demo import seed_demo
from mscbatch.donors.models import Donor
from mscbatch.lots.models import Bag, Lot
from mscbatch.patients.models import Patient
from mscbatch.release.demo import DEMO_PASSWORD
from tests.conftest import login

ROW = re.compile(r"<tr>\s*<td>(\d+)</td>")


@pytest.fixture
def demo(app):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        seed_demo(session, hash_profile="fast")
        from mscbatch.recall.demo import demo_recall

        recall = demo_recall(session)
        lot = session.scalar(select(Lot).where(Lot.lot_number == "MSC-2026-0001"))
        bag = session.scalar(select(Bag).where(Bag.lot_id == lot.id).order_by(Bag.id).limit(1))
        donor = session.get(Donor, lot.donor_id)
        patient = session.scalar(select(Patient).order_by(Patient.id).limit(1))
        other_lot = session.scalar(select(Lot).where(Lot.id != lot.id).order_by(Lot.id).limit(1))
        made = {"lot_id": lot.id, "lot_number": lot.lot_number, "bag_id": bag.id, "din": bag.din,
                "k": bag.check_character, "din_shown": din_shown(bag), "donor_id": donor.id, "donor_code": donor.code,
                "patient_id": patient.id, "patient_code": patient.code, "recall_id": recall.id if recall else None,
                "other_bags": set(session.scalars(select(Bag.id).where(Bag.lot_id == other_lot.id)))}
        session.commit()
    finally:
        session.close()
    return made


def _qa(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert login(client, "qa", DEMO_PASSWORD).status_code == 302
    return client


def _seqs(answer) -> list[int]:  # type: ignore[no-untyped-def]
    assert answer.status_code == 200, answer.get_data(as_text=True)[-2000:]
    return [int(n) for n in ROW.findall(answer.get_data(as_text=True))]


def _csv(client, **query: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    answer = client.get("/audit/events.csv", query_string=query)
    assert answer.status_code == 200, answer.get_data(as_text=True)[-2000:]
    return list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))


def test_s38_the_action_filter_lists_failed_sign_ins_alone_on_the_page_and_the_csv(app, demo):  # type: ignore[no-untyped-def]
    stranger = app.test_client()
    assert login(stranger, "qa", "not the password").status_code != 302  # a failed sign-in, audited
    qa = _qa(app)
    page = qa.get("/audit").get_data(as_text=True)
    assert '<select name="action">' in page and '<option value="login_failed">login failed</option>' in page
    seqs = _seqs(qa.get("/audit", query_string={"action": "login_failed"}))
    assert seqs
    rows = _csv(qa, action="login_failed")
    assert rows and {r["action"] for r in rows} == {"login_failed"}
    assert sorted(int(r["seq"]) for r in rows) == sorted(seqs)
    # an action no event has: said beside the field, 422, nothing listed
    answer = qa.get("/audit", query_string={"action": "made_up"})
    text = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 422 and "Action: no event of the trail has the action 'made_up'" in text
    assert qa.get("/audit/events.csv", query_string={"action": "made_up"}).status_code == 422


def test_s38_a_record_is_found_by_the_name_users_know_it_by(app, demo):  # type: ignore[no-untyped-def]
    qa = _qa(app)
    din = demo["din"]
    spaced = f"{din[:5]} {din[5:7]} {din[7:]}"
    cases = [("lot", demo["lot_id"], [demo["lot_number"], demo["lot_number"].lower()]),
             ("bag", demo["bag_id"], [din, din + demo["k"], demo["din_shown"], spaced]),
             ("donor", demo["donor_id"], [demo["donor_code"]]),
             ("patient", demo["patient_id"], [demo["patient_code"]])]
    if demo["recall_id"]:
        cases.append(("recall", demo["recall_id"], [f"R-{demo['recall_id']}", f"r-{demo['recall_id']}"]))
    for record_type, record_id, names in cases:
        by_id = _seqs(qa.get("/audit", query_string={"entity_type": record_type, "entity_id": str(record_id)}))
        assert by_id, record_type
        for name in names:
            by_name = _seqs(qa.get("/audit", query_string={"entity_type": record_type, "entity_id": name}))
            assert by_name == by_id, (record_type, name)
    rows = _csv(qa, entity_type="lot", entity_id=demo["lot_number"])
    assert rows and {r["record_id"] for r in rows} == {str(demo["lot_id"])}


@pytest.mark.parametrize(("record_type", "typed", "words"), [
    ("lot", "MSC-2099-9999", "Record id: no lot is numbered MSC-2099-9999."),
    ("donor", "D-2099-9999", "Record id: no donor has the code D-2099-9999."),
    ("patient", "SLE-UC-999", "Record id: no patient has the code SLE-UC-999."),
    ("recall", "R-999", "Record id: no recall is numbered R-999."),
    ("recall", "first", "Record id: 'first' is not a recall's number"),
    ("bag", "G1234 26 999999", "Record id: no bag has the DIN G1234 26 999999."),
    ("bag", "XYZ", "Record id: 'XYZ' is neither a bag's id nor its DIN"),
    ("", "MSC-2026-0001", "choose its record type too"),
])
def test_s38_a_name_that_matches_nothing_is_said_beside_the_field(app, demo, record_type, typed, words):  # type: ignore[no-untyped-def]
    qa = _qa(app)
    answer = qa.get("/audit", query_string={"entity_type": record_type, "entity_id": typed})
    text = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 422 and words in text
    assert 'id="entity-id-error"' in text and "No events are listed" in text
    assert qa.get("/audit/events.csv", query_string={"entity_type": record_type,
                                                     "entity_id": typed}).status_code == 422


def test_s38_a_user_is_found_by_the_full_name(app, demo):  # type: ignore[no-untyped-def]
    qa = _qa(app)
    by_username = _seqs(qa.get("/audit", query_string={"actor": "qa"}))
    assert by_username
    assert _seqs(qa.get("/audit", query_string={"actor": "Quentin QA"})) == by_username
    assert _seqs(qa.get("/audit", query_string={"actor": "quentin  qa"})) == by_username
    rows = _csv(qa, actor="Quentin QA")
    assert rows and {r["actor"] for r in rows} == {"qa"}


def test_s38_a_lots_whole_trail_gathers_its_records_and_no_other_lots(app, demo):  # type: ignore[no-untyped-def]
    qa = _qa(app)
    rows = _csv(qa, lot=demo["lot_number"])
    types = {r["record_type"] for r in rows}
    assert {"lot", "bag", "signature", "release_disposition", "release_result"} <= types, types
    assert {int(r["record_id"]) for r in rows if r["record_type"] == "lot"} == {demo["lot_id"]}
    assert not {int(r["record_id"]) for r in rows if r["record_type"] == "bag"} & demo["other_bags"]
    assert demo["bag_id"] in {int(r["record_id"]) for r in rows if r["record_type"] == "bag"}
    page = qa.get("/audit", query_string={"lot": demo["lot_number"]})
    assert _seqs(page)
    assert f'lot={demo["lot_number"]}' in page.get_data(as_text=True)  # the CSV link keeps the filter
    # with another filter: the lot's signatures only
    signatures = _csv(qa, lot=demo["lot_number"], entity_type="signature")
    assert signatures and {r["record_type"] for r in signatures} == {"signature"}
    answer = qa.get("/audit", query_string={"lot": "MSC-2099-0404"})
    text = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 422 and "Whole trail of lot: no lot is numbered MSC-2099-0404." in text
    assert 'id="lot-error"' in text


def test_s38_a_number_too_large_or_not_ascii_is_refused_beside_the_filter(app, users, client_as):  # type: ignore[no-untyped-def]
    """Code review and the edge fuzzer: lot=2^63 or a 5 000-digit number overflowed the id column, and R-² passed
    str.isdigit() but not int(): each gave a 500. Each is now the field's own refusal (422)."""
    qa = client_as("qa")
    for query, field_words in (("lot=9223372036854775808", "Whole trail of lot: no lot is numbered"),
                               ("lot=" + "9" * 5000, "Whole trail of lot: no lot is numbered"),
                               ("entity_type=recall&entity_id=R-99999999999999999999", "is not a recall's number"),
                               ("entity_type=recall&entity_id=R-%C2%B2", "is not a recall's number")):
        for path in ("/audit", "/audit/events.csv"):
            response = qa.get(f"{path}?{query}")
            assert response.status_code == 422, (path, query[:40], response.status_code)
            if path == "/audit":
                assert field_words in html.unescape(response.get_data(as_text=True)), (query[:40],)
