"""Review 8 of DOMAIN.md section 8 (chain of custody, bedside, recall) against the ward's paths, and of QA's
assessment of a bag returned to the unit (custody.returns).

- Two qualified people check the bag "immediately before infusion": a two-person check of a bag made before the bag
  left the ward (returned, put back into stock by QA, prescribed again and sent again) was taken by the start of
  its new trip, within the check's validity window; it vouched for another trip, under another prescription.
- Labels stay on until the infusion ends: nothing told the nurse; the running infusion's page says it.
- Dose outside the prescription: a course's bag of a lot recalled (rejected, expired) for good was not counted as
  lost, so the bedside check of its other bags said MATCHES for a dose below the prescription's band.
- QA's restock of a returned bag put it back into the box position it kept without asking whether that box is
  still cold enough for the product's storage limit as it is now; the recall report called a returned bag "in stock".
- Pinned: the expiry instant and the post-thaw limit's last instant; the kept position of a returned bag.
"""
from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from mscbatch.core.identifiers import din_shown, parse_din
from mscbatch.custody import bedside, handover, infusions, returns
from mscbatch.custody.checks import evaluate
from mscbatch.custody.models import CustodyEvent, Infusion, ReturnAssessment
from mscbatch.lots import storage
from mscbatch.lots.models import Bag, Lot
from mscbatch.lots.queries import product_of
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Allocation, Prescription
from mscbatch.recall import services as recall_services
from mscbatch.site import site_config
from tests.conftest import PASSWORD, api_token_for
from tests.integration.lot_factories import box
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, check, checked_and_confirmed, prescribed_bag, token_of

RESTOCK = {"decision": "restock", "logger_max_c": "-172.4", "intact": "y",
           "rationale": "Logger TL-0042 read: never above -172 C; bag and label intact.", "password": PASSWORD}


def _api(app: Any, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_for(app, username)}"}


def _back_on_the_ward_again(session: Any, client_as: Any, ward: Any) -> None:
    """The bag returned from the ward, its course cancelled, QA's restock signed on the returned bag's page, the same
    patient prescribed again (the restocked bag chosen again: it expires first), sent, received and thawed."""
    nurse, clinician, tech = user(session, "nurse"), user(session, "clinician"), user(session, "technician")
    handover.return_bag(session, nurse, ward.bag_id, reason="infusion postponed: fever", location="Ward 3")
    first = session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == ward.bag_id))
    prescriptions.cancel(session, clinician, first, "infusion postponed an hour", password=PASSWORD)
    session.commit()
    assessed = client_as("qa").post(f"/ward/returned/{ward.bag_id}", data=RESTOCK)
    assert assessed.status_code == 302, assessed.get_data(as_text=True)
    session.expire_all()
    again = prescriptions.prescribe(session, clinician, PASSWORD, ward.patient_id)
    assert session.scalar(select(Allocation.prescription_id).where(Allocation.active_bag_id == ward.bag_id)) == again.id
    handover.dispatch(session, tech, ward.bag_id, courier="Fast Courier", shipper="Dry shipper DS-3",
                      temperature_logger_id="TL-0043")
    handover.receive(session, user(session, "nurse2"), ward.bag_id, location="Ward 3")
    handover.thaw(session, nurse, ward.bag_id, location="Ward 3")
    session.commit()


def test_a_check_confirmed_before_the_bag_left_the_ward_does_not_start_its_next_trip(app, users, db_session,
                                                                                       client_as):
    ward = prescribed_bag(db_session, state="received")
    db_session.commit()
    api = app.test_client()
    scanned = api.post("/api/v1/custody/scan-verify", headers=_api(app, "nurse"),
                       json={"wristband": ward.wristband, "bag": ward.token})
    assert scanned.status_code == 200 and scanned.json["matches"], scanned.json
    confirmed = api.post(f"/api/v1/custody/checks/{scanned.json['check_id']}/confirm", headers=_api(app, "nurse"),
                         json={"username": "nurse2", "password": PASSWORD, "checker_password": PASSWORD})
    assert confirmed.status_code == 200, confirmed.json
    _back_on_the_ward_again(db_session, client_as, ward)

    start = api.post("/api/v1/custody/infusions", headers=_api(app, "nurse"),
                     json={"bag_id": ward.bag_id, "wristband": ward.wristband, "bag": ward.token})
    assert start.status_code == 409, start.json
    assert "No confirmed two-person bedside check" in start.json["detail"]
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(Infusion)) == 0
    assert db_session.get(Bag, ward.bag_id).status == "thawed"
    db_session.commit()
    # the ward page's Start with the bag alone does not open the old check either
    page = client_as("nurse").post("/ward/event", data={"bag": ward.token, "action": "start"})
    assert page.status_code == 422 and "Start infusion is on the confirmed check" in page.get_data(as_text=True)
    old = client_as("nurse").get(f"/ward/checks/{scanned.json['check_id']}").get_data(as_text=True)
    assert "earlier trip of this bag" in old and 'id="start-form"' not in old


def test_a_check_scanned_before_the_bag_left_the_ward_cannot_be_confirmed_on_its_next_trip(app, users, db_session,
                                                                                           client_as):
    ward = prescribed_bag(db_session, state="received")
    old = check(db_session, ward)
    assert old.matches
    db_session.commit()
    _back_on_the_ward_again(db_session, client_as, ward)

    answer = client_as("nurse").post(f"/ward/checks/{old.check_id}/confirm", data={
        "checker_password": PASSWORD, "second_username": "nurse2", "second_password": PASSWORD})
    assert answer.status_code == 409, answer.get_data(as_text=True)
    assert "left the ward" in answer.get_data(as_text=True)
    assert "This check was for an earlier trip of this bag to the ward" in answer.get_data(as_text=True)
    db_session.expire_all()
    assert bedside.get_check(db_session, old.check_id).second_checker_id is None
    db_session.commit()
    page = client_as("nurse").get(f"/ward/checks/{old.check_id}").get_data(as_text=True)  # no form that refuses
    assert "earlier trip of this bag" in page and "second_password" not in page and "start-form" not in page
    assert db_session.scalar(select(Prescription.status).where(Prescription.patient_id == ward.patient_id,
                                                              Prescription.status == "active")) == "active"
    db_session.commit()
    # a new check of this trip is confirmed and starts the infusion
    fresh = check(db_session, ward)
    assert fresh.matches, fresh.failures
    bedside.confirm_second_person(db_session, user(db_session, "nurse"), fresh.check_id, username="nurse2",
                                  password=PASSWORD, checker_password=PASSWORD, label_key=KEY)
    db_session.commit()
    start = app.test_client().post("/api/v1/custody/infusions", headers=_api(app, "nurse"),
                                   json={"bag_id": ward.bag_id, "wristband": ward.wristband, "bag": ward.token})
    assert start.status_code == 201, start.json


# ---- labels stay on until the infusion ends (DOMAIN.md 8) ----------------------------------------------------------

def test_the_running_infusion_page_says_to_leave_the_label_on_until_the_end(app, users, db_session, client_as):
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    infusion = infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                        bag_scan=ward.token, label_key=KEY)
    volume = str(db_session.get(Bag, ward.bag_id).volume_ml)
    db_session.commit()
    nurse = client_as("nurse")
    page = nurse.get(f"/ward/infusions/{infusion.id}").get_data(as_text=True)
    assert 'id="labels-stay-on"' in page and "Leave the label on the bag until the infusion has" in page
    ended = nurse.post(f"/ward/infusions/{infusion.id}/end", data={"volume_ml": volume})
    assert ended.status_code == 302, ended.get_data(as_text=True)
    assert 'id="labels-stay-on"' not in nurse.get(f"/ward/infusions/{infusion.id}").get_data(as_text=True)


# ---- QA's assessment of a returned bag ----------------------------------------------------------------------------

def test_a_returned_bag_goes_back_only_into_a_box_still_cold_enough(app, users, db_session, client_as, monkeypatch):
    """The site's SOP made colder (site.toml: -160 °C) while the bag was out: the position it kept, in a -150 °C tank,
    no longer keeps it cold enough. The restock is refused, naming the box; once a technician has moved the returned
    bag to a -170 °C box, it goes back into stock there."""
    ward = prescribed_bag(db_session, state="received")
    handover.return_bag(db_session, user(db_session, "nurse"), ward.bag_id, reason="infusion postponed: fever")
    first = db_session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == ward.bag_id))
    prescriptions.cancel(db_session, user(db_session, "clinician"), first, "infusion postponed a week", password=PASSWORD)
    cold_box = box(db_session, temperature=-170)
    db_session.commit()
    colder = dataclasses.replace(site_config(), storage_temperature_max_c=Decimal("-160"))
    monkeypatch.setattr(returns, "site_config", lambda: colder)

    qa = client_as("qa")
    refused = qa.post(f"/ward/returned/{ward.bag_id}", data=RESTOCK)
    assert refused.status_code == 409, refused.get_data(as_text=True)
    assert "that box is stored at -150.0 °C" in refused.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Bag, ward.bag_id).status == "returned"
    assert db_session.scalar(select(func.count()).select_from(ReturnAssessment)) == 0
    db_session.commit()

    storage.store_bag(db_session, user(db_session, "technician"), ward.bag_id, cold_box, 1,
                      reason="the -150 tank is above the site's new -160 limit")
    db_session.commit()
    assert qa.post(f"/ward/returned/{ward.bag_id}", data=RESTOCK).status_code == 302
    db_session.expire_all()
    bag = db_session.get(Bag, ward.bag_id)
    assert (bag.status, bag.box_id, bag.position) == ("stored", cold_box, 1)


# ---- recall: what to do with each affected bag (DOMAIN.md 8) --------------------------------------------------------

def test_the_recall_says_what_to_do_with_a_bag_returned_from_the_ward(app, users, db_session, client_as):
    """A bag back from the ward, waiting for QA's assessment, is not "in stock": the recall's line for it says so, and
    the restock is refused while the recall holds it."""
    ward = prescribed_bag(db_session, state="received")
    handover.return_bag(db_session, user(db_session, "nurse"), ward.bag_id, reason="infusion postponed: fever")
    first = db_session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == ward.bag_id))
    prescriptions.cancel(db_session, user(db_session, "clinician"), first, "infusion postponed a week", password=PASSWORD)
    started = recall_services.start_recall(db_session, user(db_session, "qa"), scope="lot", target_id=ward.lot_id,
                                           reason="supplier notice: medium endotoxin", password=PASSWORD)
    db_session.commit()
    page = client_as("qa").get(f"/recalls/{started.recall_id}").get_data(as_text=True)
    assert "ON HOLD, returned from the ward (not in stock)" in page and "QA discards it (Returned bags)" in page
    refused = client_as("qa2").post(f"/ward/returned/{ward.bag_id}", data=RESTOCK)
    assert refused.status_code == 409 and "has been RECALLED" in refused.get_data(as_text=True)


# ---- boundary instants (pinned: no change) --------------------------------------------------------------------------

def test_a_bag_is_expired_at_its_expiry_instant_and_past_its_post_thaw_limit_only_after_it(app, users, db_session):
    """Expiry: the bag may not be given from its expiry instant on (as the stock offers it only before: lots.queries
    .available_bags). Post-thaw: "given within 60 minutes" includes the 60th minute, one microsecond after it is a STOP
    (the label page says the same: labelling.services)."""
    ward = prescribed_bag(db_session)  # thawed now
    bag = db_session.get(Bag, ward.bag_id)
    thawed = db_session.scalar(select(CustodyEvent.occurred_at).where(CustodyEvent.bag_id == bag.id,
                                                                      CustodyEvent.kind == "thawed"))
    deadline = thawed + product_of(db_session.get(Lot, bag.lot_id)).post_thaw_limit
    tick = timedelta(microseconds=1)

    def codes(now: Any) -> set[str]:
        return {f.code for f in evaluate(db_session, ward.wristband, ward.token, KEY, now=now).failures}

    assert codes(deadline) == set() and codes(deadline + tick) == {"post_thaw"}
    assert "bag_expired" not in codes(bag.expires_at - tick) and "bag_expired" in codes(bag.expires_at)


# ---- dose outside the prescription: a bag of the course that can never be given (DOMAIN.md 8) -----------------------

def test_a_course_whose_bag_was_recalled_stops_its_other_bags_at_the_bedside(app, users, db_session):
    """A course of three bags from two lots (62.5 kg at 2 x10^6/kg: lot A's one bag, which expires first, then two of
    lot B, the second a partial draw). Lot A is recalled: its bag will never be given (a recalled lot is recalled for
    good), so lot B's bags give 75 x10^6 cells, 1.2 x10^6/kg: a dose outside the prescription. The bedside check of
    a lot B bag said MATCHES (only a bag discarded or returned counted as lost); it says STOP, as for those."""
    tech, clin, nurse = user(db_session, "technician"), user(db_session, "clinician"), user(db_session, "nurse")
    the_donor = donor(db_session, tech)
    lot_a = lot_with_bags(db_session, tech, the_donor, bags=1, expires_in_days=100)
    lot_b = lot_with_bags(db_session, tech, the_donor, bags=3)
    row = patient(db_session, clin)
    prescriptions.prescribe(db_session, clin, PASSWORD, row.id)
    allocated = set(db_session.scalars(select(Allocation.active_bag_id).where(Allocation.patient_id == row.id)))
    assert allocated == {lot_a[0].id, lot_b[0].id, lot_b[1].id}
    bag = lot_b[0]
    handover.dispatch(db_session, tech, bag.id, courier="Fast Courier", shipper="Dry shipper DS-3",
                      temperature_logger_id="TL-0042")
    handover.receive(db_session, nurse, bag.id, location="Ward 3")
    handover.thaw(db_session, nurse, bag.id, location="Ward 3")
    # the recall reaches the bag once thawed (before, the dispatch and the thaw refuse it: test_thaw_course_guard)
    recall_services.start_recall(db_session, user(db_session, "qa"), scope="lot", target_id=lot_a[0].lot_id,
                                 reason="supplier notice: medium endotoxin", password=PASSWORD)
    db_session.commit()

    answer = app.test_client().post("/api/v1/custody/scan-verify", headers=_api(app, "nurse"),
                                    json={"wristband": row.wristband_id, "bag": token_of(bag)})
    assert answer.status_code == 200 and answer.json["result"] == "STOP", answer.json
    assert [f["code"] for f in answer.json["failures"]] == ["course_short"]
    words = answer.json["failures"][0]["message"]
    assert f"bag {parse_din(lot_a[0].din).display}" in words and "its lot has been RECALLED" in words and "1.2 x10^6/kg" in words


def test_the_position_a_returned_bag_kept_cannot_be_taken_while_it_waits_for_qa(app, users, db_session, client_as):
    """Pinned (no change): the kept position stays the returned bag's, so its restock never lands on another bag."""
    ward = prescribed_bag(db_session, state="received")
    handover.return_bag(db_session, user(db_session, "nurse"), ward.bag_id, reason="infusion postponed: fever")
    first = db_session.scalar(select(Allocation.prescription_id).where(Allocation.bag_id == ward.bag_id))
    prescriptions.cancel(db_session, user(db_session, "clinician"), first, "infusion postponed a week", password=PASSWORD)
    tech = user(db_session, "technician")
    newcomer = lot_with_bags(db_session, tech, donor(db_session, tech), bags=1, placed=False)[0]
    kept = db_session.get(Bag, ward.bag_id)
    box_id, position = kept.box_id, kept.position
    db_session.commit()
    taken = app.test_client().post(f"/api/v1/bags/{newcomer.id}/storage", headers=_api(app, "technician"),
                                   json={"box_id": box_id, "position": position})
    assert taken.status_code == 409 and f"occupied by bag {din_shown(kept)}" in taken.json["detail"], taken.json
    assert client_as("qa").post(f"/ward/returned/{ward.bag_id}", data=RESTOCK).status_code == 302
    db_session.expire_all()
    assert (db_session.get(Bag, ward.bag_id).box_id, db_session.get(Bag, ward.bag_id).position) == (box_id, position)
    assert db_session.get(Bag, newcomer.id).box_id is None


def test_the_prescription_page_says_a_bag_of_a_recalled_lot_will_never_be_given(app, users, db_session, client_as):
    """The bedside counts a course bag of a recalled lot as lost; the prescription page (and the dose sheet, from the
    same outcomes) said nothing of it, as if it were still to give."""
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    the_donor = donor(db_session, tech)
    lot_a = lot_with_bags(db_session, tech, the_donor, bags=1, expires_in_days=100)
    lot_with_bags(db_session, tech, the_donor, bags=3)
    row = patient(db_session, clin)
    rx = prescriptions.prescribe(db_session, clin, PASSWORD, row.id)
    recall_services.start_recall(db_session, user(db_session, "qa"), scope="lot", target_id=lot_a[0].lot_id,
                                 reason="supplier notice: medium endotoxin", password=PASSWORD)
    rx_id = rx.id
    db_session.commit()
    page = client_as("clinician").get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True)
    assert "NOT GIVEN: its lot was RECALLED: it will never be given, do not give it" in page
