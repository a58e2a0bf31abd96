"""Review 4, custody: the infusion start scans the bag in hand again, beside the wristband (web and API). Two thawed
bags of one patient are on the ward, both checked and confirmed: a nurse holding bag B who presses "Start infusion"
on bag A's page (or sends bag A's id to the API) is refused in plain words, and nothing is written; the bag may be
named by its QR code, its DIN typed with K, or the label's Code 128 read, as at the bedside check."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.core.identifiers import parse_din
from mscbatch.custody.models import CustodyEvent, Infusion
from mscbatch.lots.models import Bag
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_custody_support import KEY, Ward, checked_and_confirmed, prescribed_bag, token_of
from tests.integration.test_infusion_start import _confirmed_page, _written

REFUSED = AuditEvent.action == "infusion_start_refused"


def _refusals(session: Any) -> list[str]:
    session.rollback()
    found = [json.loads(e.new_value)["refusal"] for e in session.scalars(select(AuditEvent).where(REFUSED))]
    session.rollback()
    return found


def _two_thawed_bags(session: Any) -> tuple[Ward, Ward]:
    """The patient's bags 1 and 2 (of three prescribed), both thawed on the ward and checked and confirmed."""
    from mscbatch.custody import handover
    from tests.integration.patient_factories import user

    first = prescribed_bag(session)
    bag = session.get(Bag, first.other_bag_ids[0])
    tech, nurse = user(session, "technician"), user(session, "nurse")
    handover.dispatch(session, tech, bag.id, courier="C", shipper="S", temperature_logger_id="T")
    handover.receive(session, nurse, bag.id, scan=token_of(bag))
    handover.thaw(session, nurse, bag.id, scan=token_of(bag))
    second = Ward(bag.id, [], first.patient_id, first.wristband, token_of(bag), first.lot_id, first.donor_id)
    checked_and_confirmed(session, first)
    checked_and_confirmed(session, second)
    session.rollback()  # SQLite: no transaction left open while the test client writes
    return first, second


def _dins(session: Any, *wards: Ward) -> list[str]:
    dins = [session.get(Bag, w.bag_id).din for w in wards]
    session.rollback()
    return dins


def test_the_web_start_refuses_another_bag_than_the_one_started(app, users, db_session, client_as):
    first, second = _two_thawed_bags(db_session)
    din_a, din_b = _dins(db_session, first, second)
    nurse = client_as("nurse")
    page = _confirmed_page(nurse, first)
    form = page.split('id="start-form"', 1)[1].split("</form>", 1)[0]
    assert 'name="bag"' in form and "Scan the label of the bag in your hand" in form
    url = f"/ward/bags/{first.bag_id}/infusion"
    before = _written(db_session)

    missing = nurse.post(url, data={"wristband": first.wristband})
    html = missing.get_data(as_text=True)
    assert missing.status_code == 422 and 'id="start-bag-error"' in html
    assert "Scan the label of the bag in your hand" in html.split('id="start-bag-error"', 1)[1]

    wrong = nurse.post(url, data={"wristband": first.wristband, "bag": second.token})
    assert wrong.status_code == 303 and wrong.headers["Location"] == url  # review 5: to the STOP page (GET)
    html = nurse.get(url).get_data(as_text=True)
    assert ">STOP<" in html and 'id="start-infusion"' not in html
    assert f"WRONG BAG: the bag in your hand is {parse_din(din_b).display}, not bag {parse_din(din_a).display}" in html
    unreadable = nurse.post(url, data={"wristband": first.wristband, "bag": "not-a-bag"})
    assert unreadable.status_code == 422 and 'id="start-bag-error"' in unreadable.get_data(as_text=True)

    assert _written(db_session) == before  # no infusion, no custody event
    assert _refusals(db_session) == ["wrong_bag"]  # the refused start is recorded for the admin's monitoring
    assert {db_session.get(Bag, w.bag_id).status for w in (first, second)} == {"thawed"}
    db_session.rollback()

    started = nurse.post(url, data={"wristband": first.wristband, "bag": first.token})
    assert started.status_code == 302 and "/ward/infusions/" in started.headers["Location"]
    db_session.rollback()
    assert db_session.scalar(select(Infusion.bag_id)) == first.bag_id


def _drawn_ml(session, bag_id: int) -> str:  # type: ignore[no-untyped-def]
    from mscbatch.patients.models import Allocation

    volume = session.scalar(select(Allocation.volume_ml).where(Allocation.bag_id == bag_id))
    session.rollback()
    return str(volume)


def test_the_api_start_refuses_another_bag_and_takes_a_typed_din_or_the_code_128(app, users, db_session):
    first, second = _two_thawed_bags(db_session)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    before = _written(db_session)
    missing = client.post("/api/v1/custody/infusions", headers=headers,
                          json={"bag_id": first.bag_id, "wristband": first.wristband})
    assert missing.status_code == 422 and "bag" in missing.get_json()["errors"]
    wrong = client.post("/api/v1/custody/infusions", headers=headers,
                        json={"bag_id": first.bag_id, "wristband": first.wristband, "bag": second.token})
    assert wrong.status_code == 409 and wrong.mimetype == "application/problem+json"
    assert "WRONG BAG" in wrong.get_json()["detail"]
    blank = client.post("/api/v1/custody/infusions", headers=headers,
                        json={"bag_id": first.bag_id, "wristband": first.wristband, "bag": "  "})
    assert blank.status_code == 422 and "Scan the label of the bag" in blank.get_json()["detail"]
    assert _written(db_session) == before

    bag_a, bag_b = db_session.get(Bag, first.bag_id), db_session.get(Bag, second.bag_id)
    typed_a, din_b = bag_a.din + bag_a.check_character, bag_b.din
    db_session.rollback()
    typed = client.post("/api/v1/custody/infusions", headers=headers,
                        json={"bag_id": first.bag_id, "wristband": first.wristband, "bag": typed_a})
    assert typed.status_code == 201, typed.get_json()
    # ended before the second bag starts: while it runs, the patient's next bag is a STOP (s41)
    ended = client.post(f"/api/v1/custody/infusions/{typed.get_json()['id']}/end", headers=headers,
                        json={"volume_ml": _drawn_ml(db_session, first.bag_id), "reason": "test: ended at once"})
    assert ended.status_code == 200, ended.get_json()
    db_session.rollback()
    symbol = client.post("/api/v1/custody/infusions", headers=headers,
                         json={"bag_id": second.bag_id, "wristband": second.wristband, "bag": f"={din_b}00"})
    assert symbol.status_code == 201, symbol.get_json()

    spec = client.get("/api/v1/openapi.json").get_json()
    body = spec["paths"]["/api/v1/custody/infusions"]["post"]["requestBody"]["content"]["application/json"]
    schema = spec["components"]["schemas"][body["schema"]["$ref"].split("/")[-1]]
    assert "bag" in schema["required"] and "scanned again" in schema["properties"]["bag"]["description"]


def test_the_service_start_runs_the_check_again_on_the_bag_scanned_now(app, users, db_session):
    """The start's custody event records the scan made at the start, not the one copied from the check."""
    from mscbatch.custody import infusions
    from tests.integration.patient_factories import user

    first, _ = _two_thawed_bags(db_session)
    bag = db_session.get(Bag, first.bag_id)
    typed = bag.din + bag.check_character
    infusions.start_infusion(db_session, user(db_session, "nurse"), first.bag_id, wristband=first.wristband,
                             bag_scan=typed, label_key=KEY)
    event = db_session.scalar(select(CustodyEvent).where(CustodyEvent.bag_id == first.bag_id,
                                                         CustodyEvent.kind == "infusion_started"))
    assert event.scan == typed


def test_a_second_persons_wrong_password_is_recorded_under_who_typed_it(app, users):
    """Review 4: every refusal of the bedside second person was audited as "system": the monitoring page could not
    say who was guessing a colleague's password, or who locked them out."""
    from sqlalchemy import select

    from mscbatch.audit.models import AuditEvent
    from tests.conftest import api_token_for
    from tests.integration.test_custody_support import check, prescribed_bag

    with app.app_context(), app.extensions["mscbatch.db"].new_session() as s:
        check_id = check(s, prescribed_bag(s, state="thawed")).check_id
        first_seq = s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    token = api_token_for(app, "nurse")
    for body in ({"username": "nurse2", "password": "not-the-password"}, {"username": "nobody", "password": "x"}):
        answer = app.test_client().post(f"/api/v1/custody/checks/{check_id}/confirm",
                                        headers={"Authorization": f"Bearer {token}"},
                                        json={**body, "checker_password": PASSWORD})
        assert answer.status_code == 401, answer.get_json()
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as s:
        refusals = s.execute(select(AuditEvent.actor_name, AuditEvent.reason).where(
            AuditEvent.seq > first_seq, AuditEvent.action == "second_person_refused").order_by(AuditEvent.seq)).all()
    assert [tuple(r) for r in refusals] == [("nurse", "second person: wrong password"),
                                            ("nurse", "second person: unknown user name")], refusals
