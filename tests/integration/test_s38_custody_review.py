"""S38, code review of the custody changes:

1. The protocol's infusion time (1 h) is the whole prescribed dose's: each bag of a course is given over its share of
   it (its draw against the course's draws), and only an end sooner than that share asks for a reason.
2. A bag that would take its course above the prescription's upper limit (the bedside check's course_over STOP) is
   neither dispatched nor thawed: it stays in storage / frozen, nothing recorded, in the bedside check's words.
3. The check's statement reads the course's calculation without an EXISTS of its own (_course_over needs it only
   when _course_given counted a bag given).
4. The band's upper limit is core.dosing's, beside its lower limit.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.custody import infusions
from mscbatch.custody.models import CustodyEvent, Infusion
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import token_of
from tests.integration.test_review4_custody_course import _api, _course, _start, _to_ward

pytestmark = pytest.mark.usefixtures("users")

REAL_NOW = infusions.utcnow


def _end_after(monkeypatch: Any, client: Any, headers: dict[str, str], infusion_id: int, minutes: int,
               volume: str) -> Any:
    monkeypatch.setattr(infusions, "utcnow", lambda: REAL_NOW() + timedelta(minutes=minutes))
    try:
        return client.post(f"/api/v1/custody/infusions/{infusion_id}/end", headers=headers, json={"volume_ml": volume})
    finally:
        monkeypatch.setattr(infusions, "utcnow", REAL_NOW)


def _ended_details(app: Any, infusion_id: int) -> tuple[Infusion, dict[str, Any] | None]:
    with app.extensions["mscbatch.db"].new_session() as session:
        row = session.get(Infusion, infusion_id)
        details = session.scalar(select(CustodyEvent.details_json).where(CustodyEvent.bag_id == row.bag_id,
                                                                         CustodyEvent.kind == "infusion_ended"))
        session.expunge_all()
        return row, (json.loads(details) if details else None)


@pytest.mark.infusion_duration
def test_s38_each_bag_of_a_course_is_given_over_its_share_of_the_protocol_time(app, db_session, monkeypatch):
    """Three bags prescribed 25 + 25 + 12.5 mL (62.5 mL over the protocol's 1 h): a whole bag over 24 min, the
    partial one over 12 min. A whole bag ended after 25 min and the partial one after 13 min need no reason; a whole
    bag ended after 10 min does, with its share in the words."""
    course = _course(db_session, bags=3, cells=50_000_000)
    draws = {int(d["bag_id"]): str(d["volume_ml"]) for d in course.calculation["draws"]}
    whole = [bag for bag in course.bags if not draws[bag[0]].startswith("12.5")]
    partial = next(bag for bag in course.bags if draws[bag[0]].startswith("12.5"))
    client, headers = _api(app)

    first = _start(client, headers, course.wristband, whole[0][0], whole[0][1])
    ended = _end_after(monkeypatch, client, headers, first, 25, "25")
    assert ended.status_code == 200, ended.get_json()  # 25 min for a 24 min share: no reason asked
    row, details = _ended_details(app, first)
    assert row.volume_reason is None and details is not None and "shorter_than_protocol" not in details

    second = _start(client, headers, course.wristband, whole[1][0], whole[1][1])
    refused = _end_after(monkeypatch, client, headers, second, 10, "25")
    assert refused.status_code == 422, refused.get_json()
    words = refused.get_json()["errors"]["reason"][0]
    assert "The infusion lasted 10 min " in words
    assert "the protocol gives this bag (25 of 62.5 mL of the course) over 24 min (the course over 1 h): say why" \
        in words, words
    row, details = _ended_details(app, second)
    assert row.ended_at is None and details is None  # nothing written
    monkeypatch.setattr(infusions, "utcnow", lambda: REAL_NOW() + timedelta(minutes=10))
    given = client.post(f"/api/v1/custody/infusions/{second}/end", headers=headers,
                        json={"volume_ml": "25", "reason": "pump set too fast (test)"})
    monkeypatch.setattr(infusions, "utcnow", REAL_NOW)
    assert given.status_code == 200, given.get_json()
    _, details = _ended_details(app, second)
    assert details["shorter_than_protocol"] is True and details["bag_expected_s"] == 24 * 60
    assert details["protocol_hours"] == "1"

    third = _start(client, headers, course.wristband, partial[0], partial[1])
    ended = _end_after(monkeypatch, client, headers, third, 13, "12.5")
    assert ended.status_code == 200, ended.get_json()  # 13 min for the partial bag's 12 min share


def test_s38_a_bag_that_is_the_whole_course_is_given_over_the_whole_time():
    from decimal import Decimal

    alone = infusions.BagTime(Decimal("1.5"), Decimal("25"), Decimal("25.00"))
    assert alone.expected == timedelta(hours=1, minutes=30)
    assert alone.words() == "the protocol gives it over 1 h 30 min"
    third = infusions.BagTime(Decimal(1), Decimal("25"), Decimal("75"))
    assert third.expected == timedelta(minutes=20)
    assert third.words() == "the protocol gives this bag (25 of 75 mL of the course) over 20 min (the course over 1 h)"
    assert infusions.BagTime(Decimal(1), None, None).expected == timedelta(hours=1)  # a draw that cannot be read


# ---- 2. a bag that would take its course above the band is neither sent nor thawed -------------------------------

OVER = ("with this bag the patient would receive 150 x10^6 cells (2.4 x10^6/kg), above the prescription's upper "
        "limit of 137.5 x10^6 (2.2 x10^6/kg): 100 x10^6 already given by 2 bags of this course, and 50 x10^6 in "
        "this bag.")


def _two_given_whole(app: Any, session: Any, *, last_on_ward: bool) -> tuple[int, str, str]:
    """62.5 kg at 2 x10^6/kg from three bags of 50 x10^6 in 25 mL (12.5 mL of one prescribed): the partial bag given
    whole, and a whole bag: 100 x10^6 given. The last bag is left in the unit, or received on the ward (frozen).
    Returns (its id, its label token, the patient's wristband)."""
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech), bags=3, cells=50_000_000, volume_ml="25")
    row = patient(session, clin)
    rx = prescriptions.prescribe(session, clin, PASSWORD, row.id)
    draws = sorted(rx.calculation["draws"], key=lambda draw: not draw["partial"])  # the partial one first
    bags = [session.get(Bag, int(draw["bag_id"])) for draw in draws]
    given = [(bag.id, token_of(bag)) for bag in bags[:2]]
    for bag in bags[:2]:
        _to_ward(session, bag)
    if last_on_ward:
        _to_ward(session, bags[2], thaw=False)
    last, wristband = (bags[2].id, token_of(bags[2])), row.wristband_id
    session.rollback()  # SQLite: no transaction left open while the test client writes
    client, headers = _api(app)
    for bag_id, token in given:
        infusion_id = _start(client, headers, wristband, bag_id, token)
        assert client.post(f"/api/v1/custody/infusions/{infusion_id}/end", headers=headers,
                           json={"volume_ml": "25", "reason": "whole bag given (test)"}).status_code == 200
    return last[0], last[1], wristband


def _written(app: Any) -> tuple[int, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return (session.scalar(select(func.count()).select_from(CustodyEvent)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def _status(app: Any, bag_id: int) -> str:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.get(Bag, bag_id).status


def test_s38_a_bag_that_would_take_its_course_above_the_band_stays_in_the_unit(app, db_session):
    bag_id, _token, _wristband = _two_given_whole(app, db_session, last_on_ward=False)
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}  # made first: a token is audited
    before = _written(app)
    refused = app.test_client().post("/api/v1/custody/events", headers=headers, json={
        "kind": "dispatched", "bag_id": bag_id, "courier": "C", "shipper": "S", "temperature_logger_id": "T"})
    assert refused.status_code == 409, refused.get_json()
    detail = refused.get_json()["detail"]
    assert f"cannot leave the unit: {OVER} Keep it in storage and tell the prescriber, who must stop this course" \
        in detail, detail
    assert detail.endswith("Nothing was recorded.")
    assert _status(app, bag_id) == "allocated" and _written(app) == before


def test_s38_a_bag_that_would_take_its_course_above_the_band_is_not_thawed(app, db_session):
    bag_id, token, wristband = _two_given_whole(app, db_session, last_on_ward=True)
    client, headers = _api(app)
    bedside = client.post("/api/v1/custody/scan-verify", headers=headers, json={"wristband": wristband, "bag": token})
    said = [f["message"] for f in bedside.get_json()["failures"] if f["code"] == "course_over"]
    assert said == [f"DO NOT GIVE: {OVER} Call the prescriber."], bedside.get_json()
    before = _written(app)
    refused = client.post("/api/v1/custody/events", headers=headers, json={"kind": "thawed", "bag_id": bag_id})
    assert refused.status_code == 409, refused.get_json()
    detail = refused.get_json()["detail"]
    assert detail.startswith("DO NOT THAW bag ") and f": {OVER} Keep it frozen and call the prescriber: this course " \
        "must be stopped (and prescribed again if the patient needs more) first. To let the prescriber stop it, " \
        "return this bag" in detail, detail
    assert _status(app, bag_id) == "received" and _written(app) == before


# ---- 3 and 4 ------------------------------------------------------------------------------------------------------

def test_s38_the_course_calculation_asks_nothing_more_of_its_own():
    from mscbatch.custody.checks import _course_calculation

    sql = str(select(_course_calculation(Bag.id))).upper()
    assert "EXISTS" not in sql and "INFUSION" not in sql, sql  # _course_given's count already says a bag was given


def test_s38_the_band_upper_limit_is_core_dosings():
    from decimal import Decimal

    from mscbatch.core.dosing import course_high_cells

    assert course_high_cells({"high_cells": "137500000"}) == Decimal(137_500_000)
    assert course_high_cells({"target_cells": "125000000", "tolerance_percent": "10"}) == Decimal(137_500_000)
