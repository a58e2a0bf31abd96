"""S38, trial pharmacist: the bedside check STOPs a bag that would take the course ABOVE its prescription's band.

62.5 kg at 2 x10^6/kg: target 125 x10^6, band 112.5-137.5 x10^6; three bags of 50 x10^6 in 25 mL, prescribed
50 + 50 + 25 (12.5 mL of the last). The partial bag given whole (25 mL, 50 x10^6, recorded with its reason) leaves
room for one whole bag (100 x10^6); the next one would give 150 x10^6 (+20 %): DOMAIN.md 8, hard stop "dose outside
the prescription", at the check, its confirmation and the start."""
from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD
from tests.integration.test_review4_custody_course import _api, _course, _start

OVER = ("DO NOT GIVE: with this bag the patient would receive 150 x10^6 cells (2.4 x10^6/kg), above the "
        "prescription's upper limit of 137.5 x10^6 (2.2 x10^6/kg)")


def _partial_given_whole(db_session: Any, app: Any) -> tuple[Any, Any, dict[str, str], list[tuple[int, str, str]]]:
    course = _course(db_session, bags=3, cells=50_000_000)
    partial = [d for d in course.calculation["draws"] if d["partial"]]
    assert len(partial) == 1 and str(partial[0]["volume_ml"]) in ("12.5", "12.50")
    by_id = {bag_id: (bag_id, token, din) for bag_id, token, din in course.bags}
    first = by_id[int(partial[0]["bag_id"])]
    rest = [bag for bag in course.bags if bag[0] != first[0]]
    client, headers = _api(app)
    infusion_id = _start(client, headers, course.wristband, first[0], first[1])
    ended = client.post(f"/api/v1/custody/infusions/{infusion_id}/end", headers=headers,
                        json={"volume_ml": "25", "reason": "whole bag hung by mistake instead of 12.5 mL"})
    assert ended.status_code == 200, ended.get_json()
    return course, client, headers, rest


def _scan(client: Any, headers: dict[str, str], wristband: str, token: str) -> dict[str, Any]:
    return client.post("/api/v1/custody/scan-verify", headers=headers,
                       json={"wristband": wristband, "bag": token}).get_json()


def test_s38_a_bag_that_would_take_the_course_above_its_band_stops(app, users, db_session, client_as):
    course, client, headers, (second, third) = _partial_given_whole(db_session, app)
    answer = _scan(client, headers, course.wristband, second[1])
    assert answer["matches"], answer  # 50 given + 50 = 100 x10^6: not above the band's 137.5
    infusion_id = _start(client, headers, course.wristband, second[0], second[1])
    assert client.post(f"/api/v1/custody/infusions/{infusion_id}/end", headers=headers,
                       json={"volume_ml": "25", "reason": "given over 1 h as prescribed (test)"}).status_code == 200
    answer = _scan(client, headers, course.wristband, third[1])
    assert answer["result"] == "STOP" and [f["code"] for f in answer["failures"]] == ["course_over"], answer
    words = answer["failures"][0]["message"]
    assert words.startswith(OVER) and words.endswith("Call the prescriber.")
    assert "100 x10^6 already given by 2 bags of this course, and 50 x10^6 in this bag" in words
    assert answer["give_ml"] is None
    page = client_as("nurse").post("/ward/check", data={"wristband": course.wristband, "bag": third[1]},
                                   follow_redirects=True).get_data(as_text=True)
    assert ">STOP<" in page and 'data-code="course_over"' in page and "DO NOT GIVE: with this bag" in page


def test_s38_the_start_and_the_confirmation_judge_the_course_again(app, users, db_session, client_as):
    """Bags 2 and 3 both checked while only the partial bag had been given (100 x10^6 each way): MATCHES. Bag 3
    confirmed too; bag 2 then given: bag 3's start is refused. A check of bag 3 scanned before bag 2 was given and
    confirmed after it is refused."""
    course, client, headers, (second, third) = _partial_given_whole(db_session, app)
    third_check = _scan(client, headers, course.wristband, third[1])
    assert third_check["matches"], third_check
    assert client.post(f"/api/v1/custody/checks/{third_check['check_id']}/confirm", headers=headers,
                       json={"username": "nurse2", "password": PASSWORD, "checker_password": PASSWORD}
                       ).status_code == 200
    unconfirmed = _scan(client, headers, course.wristband, third[1])  # a second check, left unsigned
    assert unconfirmed["matches"], unconfirmed
    infusion_id = _start(client, headers, course.wristband, second[0], second[1])
    assert client.post(f"/api/v1/custody/infusions/{infusion_id}/end", headers=headers,
                       json={"volume_ml": "25", "reason": "given over 1 h as prescribed (test)"}).status_code == 200
    confirm = client.post(f"/api/v1/custody/checks/{unconfirmed['check_id']}/confirm", headers=headers,
                          json={"username": "nurse2", "password": PASSWORD, "checker_password": PASSWORD})
    assert confirm.status_code in (409, 422) and "DO NOT GIVE: with this bag" in str(confirm.get_json()), \
        confirm.get_json()
    start = client.post("/api/v1/custody/infusions", headers=headers,
                        json={"bag_id": third[0], "wristband": course.wristband, "bag": third[1]})
    assert start.status_code == 409 and OVER in start.get_json()["detail"], start.get_json()


def test_s38_a_running_bag_counts_as_prescribed(app, users, db_session, client_as):
    """While bag 2 runs (counted at its 50 x10^6), bag 3 already STOPs."""
    course, client, headers, (second, third) = _partial_given_whole(db_session, app)
    _start(client, headers, course.wristband, second[0], second[1])
    answer = _scan(client, headers, course.wristband, third[1])
    # also the s41 STOP for a bag started while another runs; the running bag still counts in course_over
    assert [f["code"] for f in answer["failures"]] == ["other_running", "course_over"], answer
