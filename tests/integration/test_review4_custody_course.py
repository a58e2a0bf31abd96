"""Review 4, custody: the course of a prescription judged as a whole, not bag by bag.

1. Ending an infusion: two bags each 9.6 % short (inside the per-bag tolerance) give 17.6 % less than the target,
   below the prescription's band: the end asks why and the record is flagged (infusion, patient and lot pages).
2. The bedside check: a bag of the course discarded on the ward (cracked at thaw) leaves the others unable to give
   the band: they STOP, saying what was lost and what the rest would give against the prescribed level.
3. The scan API gives give_ml only with a MATCHES (null on a STOP)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from mscbatch.core.dosing import CourseBag, course_dose
from mscbatch.core.identifiers import parse_din
from mscbatch.custody import handover
from mscbatch.custody.models import CustodyEvent
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Prescription
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import token_of


def _to_ward(session: Any, bag: Bag, *, thaw: bool = True) -> None:
    tech, nurse = user(session, "technician"), user(session, "nurse")
    handover.dispatch(session, tech, bag.id, courier="C", shipper="S", temperature_logger_id="T")
    handover.receive(session, nurse, bag.id, scan=token_of(bag))
    if thaw:
        handover.thaw(session, nurse, bag.id, scan=token_of(bag))


@dataclass(frozen=True)
class Course:
    patient_id: int
    wristband: str
    prescription_id: int
    calculation: dict[str, Any]
    bags: list[tuple[int, str, str]]  # (bag id, label token, DIN), in the prescription's order
    lot_id: int


def _course(session: Any, *, bags: int, cells: int, thaw: bool = True) -> Course:
    """A 62.5 kg patient at 2 x10^6/kg (target 125 x10^6, band 112.5-137.5 x10^6), prescribed from a lot of `bags`
    bags of `cells` cells in 25 mL; every prescribed bag on the ward."""
    tech, clin = user(session, "technician"), user(session, "clinician")
    made = lot_with_bags(session, tech, donor(session, tech), bags=bags, cells=cells, volume_ml="25")
    row = patient(session, clin)
    rx = prescriptions.prescribe(session, clin, PASSWORD, row.id)
    out = []
    for draw in rx.calculation["draws"]:
        bag = session.get(Bag, int(draw["bag_id"]))
        _to_ward(session, bag, thaw=thaw)
        out.append((bag.id, token_of(bag), bag.din))
    course = Course(row.id, row.wristband_id, rx.id, rx.calculation, out, made[0].lot_id)
    session.rollback()  # SQLite: no transaction left open while the test client writes
    return course


def _api(app: Any) -> tuple[Any, dict[str, str]]:
    return app.test_client(), {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}


def _start(client: Any, headers: dict[str, str], wristband: str, bag_id: int, token: str) -> int:
    scan = client.post("/api/v1/custody/scan-verify", headers=headers, json={"wristband": wristband, "bag": token})
    assert scan.get_json()["matches"], scan.get_json()
    confirm = client.post(f"/api/v1/custody/checks/{scan.get_json()['check_id']}/confirm", headers=headers,
                          json={"username": "nurse2", "password": PASSWORD, "checker_password": PASSWORD})
    assert confirm.status_code == 200, confirm.get_json()
    started = client.post("/api/v1/custody/infusions", headers=headers,
                          json={"bag_id": bag_id, "wristband": wristband, "bag": token})
    assert started.status_code == 201, started.get_json()
    return int(started.get_json()["id"])


def _ended_details(session: Any, bag_id: int) -> dict[str, Any]:
    details = json.loads(session.scalar(select(CustodyEvent.details_json).where(
        CustodyEvent.bag_id == bag_id, CustodyEvent.kind == "infusion_ended")))
    session.rollback()
    return details


# ---- 1. the course's total at the end of an infusion ------------------------------------------------------------

def test_two_bags_short_inside_the_tolerance_but_below_the_band_ask_why_and_are_flagged(app, users, db_session,
                                                                                          client_as):
    """Two whole bags of 57 x10^6 (114 x10^6): 22.6 of 25 mL of each (-9.6 % a bag) give 103.1 x10^6 = 1.65
    x10^6/kg, below the band's 1.8 x10^6/kg."""
    course = _course(db_session, bags=2, cells=57_000_000)
    assert Decimal(course.calculation["delivered_cells"]) == 114_000_000 and len(course.bags) == 2
    client, headers = _api(app)
    nurse = client_as("nurse")
    for bag_id, token, _din in course.bags:
        infusion_id = _start(client, headers, course.wristband, bag_id, token)
        refused = client.post(f"/api/v1/custody/infusions/{infusion_id}/end", headers=headers,
                              json={"volume_ml": "22.6"})
        assert refused.status_code == 422, refused.get_json()
        words = refused.get_json()["detail"]
        assert "BELOW the prescription's band" in words and "2 x10^6/kg prescribed" in words
        assert "no less than 1.8 x10^6/kg" in words and "LESS than the" not in words  # the bag alone is within
        web = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "22.6"})
        assert web.status_code == 422 and "BELOW the prescription&#39;s band" in web.get_data(as_text=True)
        ended = client.post(f"/api/v1/custody/infusions/{infusion_id}/end", headers=headers,
                            json={"volume_ml": "22.6", "reason": "line primed with the cells, not flushed"})
        assert ended.status_code == 200, ended.get_json()
        details = _ended_details(db_session, bag_id)
        assert details["course_below_band"] is True and "under_prescription" not in details
        assert Decimal(details["course_expected_cells"]) < Decimal(course.calculation["low_cells"])
    given = _ended_details(db_session, course.bags[1][0])["course_expected_cells"]
    assert given == "103056000"  # 2 x 57 x10^6 x 22.6 / 25 = 1.65 x10^6/kg for 62.5 kg

    record = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert 'id="course-below-band"' in record
    patient_page = client_as("clinician").get(f"/patients/{course.patient_id}").get_data(as_text=True)
    assert patient_page.count("COURSE BELOW THE PRESCRIBED DOSE") == 2
    lot_page = client_as("qa").get(f"/lots/{course.lot_id}").get_data(as_text=True)
    assert "COURSE BELOW THE PRESCRIBED DOSE" in lot_page


def test_a_course_that_stays_inside_the_band_ends_without_a_reason(app, users, db_session, client_as):
    """25 mL then 24.8 mL of the two 57 x10^6 bags: 113.5 x10^6, inside the band (>= 112.5): no reason, no flag."""
    course = _course(db_session, bags=2, cells=57_000_000)
    client, headers = _api(app)
    for (bag_id, token, _din), volume in zip(course.bags, ("25", "24.8"), strict=True):
        infusion_id = _start(client, headers, course.wristband, bag_id, token)
        ended = client.post(f"/api/v1/custody/infusions/{infusion_id}/end", headers=headers,
                            json={"volume_ml": volume})
        assert ended.status_code == 200, ended.get_json()
        assert "course_below_band" not in _ended_details(db_session, bag_id)
    page = client_as("clinician").get(f"/patients/{course.patient_id}").get_data(as_text=True)
    assert "COURSE BELOW" not in page


# ---- 2. a bag of the course lost: the others STOP --------------------------------------------------------------

STOP_WORDS = "Do not give: call the prescriber, who must stop this course and prescribe again"


def test_a_discarded_bag_of_the_course_stops_the_others_with_what_they_would_give(app, users, db_session,
                                                                                    client_as):
    """3 bags prescribed (50 + 50 + 25 x10^6 = 125 x10^6 for 62.5 kg). Bag 1 cracks at thaw and is discarded from the
    ward page: bags 2 and 3 would give 75 x10^6 = 1.2 x10^6/kg instead of 2: STOP, web and API, and no give_ml."""
    course = _course(db_session, bags=3, cells=50_000_000)
    nurse = client_as("nurse")
    discarded = nurse.post("/ward/event", data={"bag": course.bags[0][1], "action": "discard",
                                                "reason": "bag cracked at thaw"})
    assert discarded.status_code == 302
    client, headers = _api(app)
    for _bag_id, token, _din in course.bags[1:]:
        page = nurse.post("/ward/check", data={"wristband": course.wristband, "bag": token},
                          follow_redirects=True).get_data(as_text=True)
        assert ">STOP<" in page and 'data-code="course_short"' in page and 'id="give-volume"' not in page
        answer = client.post("/api/v1/custody/scan-verify", headers=headers,
                             json={"wristband": course.wristband, "bag": token}).get_json()
        assert answer["result"] == "STOP" and [f["code"] for f in answer["failures"]] == ["course_short"]
        words = answer["failures"][0]["message"]
        assert f"bag {parse_din(course.bags[0][2]).display} (50 x10^6 cells of the dose) was DISCARDED" in words
        assert "would give 1.2 x10^6/kg instead of the 2 x10^6/kg prescribed" in words
        assert STOP_WORDS in words
        assert answer["give_ml"] is None  # on a STOP nothing reads as "give this" (4)


def test_the_course_stop_blocks_the_start_and_the_prescriber_can_stop_once_the_ward_returns_the_bags(
        app, users, db_session, client_as):
    """Bags received on the ward: bag 2 thawed, checked and confirmed; then bag 1 is found broken and discarded. Bag
    2's start is refused. The clinician's stop of the course is refused while bags 2 and 3 are on the ward, and goes
    through once the ward has discarded bag 2 (thawed) and returned bag 3."""
    course = _course(db_session, bags=3, cells=50_000_000, thaw=False)
    handover.thaw(db_session, user(db_session, "nurse"), course.bags[1][0], scan=course.bags[1][1])
    db_session.rollback()
    nurse, clinician = client_as("nurse"), client_as("clinician")
    client, headers = _api(app)
    (_first, first_token, _), (second, second_token, _) = course.bags[:2]
    scan = client.post("/api/v1/custody/scan-verify", headers=headers,
                       json={"wristband": course.wristband, "bag": second_token}).get_json()
    assert scan["matches"], scan
    assert client.post(f"/api/v1/custody/checks/{scan['check_id']}/confirm", headers=headers,
                       json={"username": "nurse2", "password": PASSWORD, "checker_password": PASSWORD}
                       ).status_code == 200
    assert nurse.post("/ward/event", data={"bag": first_token, "action": "discard",
                                           "reason": "bag broken in the dry shipper"}).status_code == 302
    start = client.post("/api/v1/custody/infusions", headers=headers,
                        json={"bag_id": second, "wristband": course.wristband, "bag": second_token})
    assert start.status_code == 409 and "THE PRESCRIBED DOSE CAN NO LONGER BE GIVEN" in start.get_json()["detail"]
    answer = client.post("/api/v1/custody/scan-verify", headers=headers,
                         json={"wristband": course.wristband, "bag": second_token}).get_json()
    assert answer["result"] == "STOP" and "course_short" in [f["code"] for f in answer["failures"]]

    url = f"/patients/prescriptions/{course.prescription_id}/cancel"
    refused = clinician.post(url, data={"password": PASSWORD, "reason": "bag 1 broken"})  # bags 2 and 3 are still on the ward
    assert refused.status_code == 409 and "Cannot cancel or stop this prescription yet" in refused.get_data(
        as_text=True)
    assert db_session.get(Prescription, course.prescription_id).status == "active"
    db_session.rollback()
    assert nurse.post("/ward/event", data={"bag": second_token, "action": "discard",
                                           "reason": "thawed; course stopped by the prescriber"}).status_code == 302
    assert nurse.post("/ward/event", data={"bag": course.bags[2][1], "action": "return",
                                           "reason": "course to be prescribed again"}).status_code == 302
    assert clinician.post(url, data={"password": PASSWORD, "reason": "bag 1 broken"}).status_code == 302
    assert db_session.get(Prescription, course.prescription_id).status == "cancelled"
    db_session.rollback()


def test_the_course_is_added_up_at_the_volumes_given():
    """core.dosing.course_dose: a bag given counts at the volume recorded (as prescribed while it runs), a bag to
    give as prescribed, a lost bag not at all."""
    dose = course_dose([
        CourseBag("A", Decimal(50_000_000), Decimal(25), "given", Decimal("22.5")),
        CourseBag("B", Decimal(50_000_000), Decimal(25), "given", None),
        CourseBag("C", Decimal(25_000_000), Decimal("12.5"), "to_give"),
        CourseBag("D", Decimal(50_000_000), Decimal(25), "lost", status="discarded")])
    assert dose.given_cells == 95_000_000 and dose.to_give_cells == 25_000_000
    assert dose.expected_cells == 120_000_000 and dose.lost_cells == 50_000_000
    assert [bag.din for bag in dose.lost] == ["D"]


def test_the_scan_api_gives_no_volume_with_a_stop(app, users, db_session):
    """The partial bag (12.5 of 25 mL) MATCHES with the 12.5 mL to give; once a weight of 55 kg is recorded (its dose
    outside the band), its STOP gives no volume: give_ml is null."""
    from mscbatch.patients import services as patient_services
    from mscbatch.site import site_today

    course = _course(db_session, bags=3, cells=50_000_000)
    client, headers = _api(app)
    partial = course.bags[-1][1]
    ok = client.post("/api/v1/custody/scan-verify", headers=headers,
                     json={"wristband": course.wristband, "bag": partial}).get_json()
    assert ok["result"] == "MATCHES" and ok["give_ml"] == "12.50"
    patient_services.record_weight(db_session, user(db_session, "clinician"), course.patient_id, weight_kg="55",
                                   measured_on=site_today(), weight_confirmed=True)
    db_session.commit()
    stop = client.post("/api/v1/custody/scan-verify", headers=headers,
                       json={"wristband": course.wristband, "bag": partial}).get_json()
    assert stop["result"] == "STOP" and [f["code"] for f in stop["failures"]] == ["weight_changed"]
    assert stop["give_ml"] is None
