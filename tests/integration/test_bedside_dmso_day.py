"""The DMSO limit per kg per day (DOMAIN.md 6) is held over any 24 HOURS, and the bedside check holds it: a
prescription's planned time is a "give before", so a course judged for a later day (nothing given in the 24 hours
before it) can be scanned and given NOW, after another course's bag. The bag's draw added to the DMSO the patient
received in the last 24 hours (a running infusion counts the volume its prescription draws from its bag) must stay
below the prescription's limit, or the check says STOP "dmso_24h" and the infusion start is refused. The site's
midnight resets nothing: a bag at 23:50 and another at 00:10 are 20 minutes apart.

62.5 kg, bags of 50 x10^6 cells in 200 mL at 10 % DMSO (22 g a bag). Course A: its first bag given (whole: 22 g, or
50 mL: 5.5 g), then stopped. Course B signed for two days later (2 whole bags + 100 mL: 55 g, 0.88 g/kg alone). B's
first bag given now: 22 g. B's second bag now: 22 + 22 + 22 = 66 g = 1.056 g/kg, STOP; after only 5.5 g of A, 49.5 g
= 0.792 g/kg, MATCHES. Through the scanner API and the ward page, on both databases."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from html import unescape
from typing import Any

from sqlalchemy import select, update

from mscbatch.audit.context import use_case
from mscbatch.custody import bedside, handover, infusions
from mscbatch.custody.checks import evaluate
from mscbatch.custody.models import Infusion, TwoPersonCheck
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Patient
from mscbatch.site import site_config, site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, token_of
from tests.integration.test_dmso_per_day import _stopped_after_first_bag

REASON = "repeat course: pump failure after the first bag, decided with the investigator"
OVER = ("DMSO LIMIT (24 HOURS): DMSO would be {total} g in 24 hours: {given} g already given in the last 24 hours "
        "(started {a} and {b}) + 22.00 g in this bag = {per_kg} g/kg, not below the limit of 1 g/kg/day. Do not give "
        "this bag now: call the prescriber.")


def _over(a: str, b: str, given: str = "44.00") -> str:
    total = Decimal(given) + 22
    return OVER.format(a=a, b=b, given=given, total=f"{total:.2f}",
                       per_kg=f"{(total / Decimal('62.5')).quantize(Decimal('0.001')):f}")


@dataclass
class CourseB:
    patient_id: int
    wristband: str
    a_infusion_id: int
    a_at: str  # the start of course A's bag, on the site's clock
    bags: list[int]  # course B's two whole bags, thawed, each checked (MATCHES) and confirmed
    tokens: list[str]


def _course_b_for_later(session: Any, a_ml: str | None, *, a_partial: bool = False) -> CourseB:
    pid, a_at, _started = _stopped_after_first_bag(session, volume_ml=a_ml, partial=a_partial)
    tech, clin, nurse = user(session, "technician"), user(session, "clinician"), user(session, "nurse")
    later = datetime.combine(site_today() + timedelta(days=2), time(10), site_config().tz)  # > 24 h after A's bag
    rx = prescriptions.prescribe(session, clin, PASSWORD, pid, planned_at=later, repeat_course_reason=REASON)
    assert rx.dmso_g == 55 and "dmso_given_g" in rx.calculation  # judged at its planned time: nothing given before
    assert float(rx.calculation["dmso_given_g"]) == 0
    wristband = session.get(Patient, pid).wristband_id
    bags = [session.get(Bag, int(d["bag_id"])) for d in rx.calculation["draws"] if not d["partial"]][:2]
    for bag in bags:
        handover.dispatch(session, tech, bag.id, courier="C", shipper="S", temperature_logger_id="T")
        handover.receive(session, nurse, bag.id, scan=token_of(bag))
        handover.thaw(session, nurse, bag.id, scan=token_of(bag))
        check = bedside.bedside_check(session, nurse, wristband=wristband, bag_scan=token_of(bag), label_key=KEY)
        if a_ml is None:  # course A's bag still running: one bag at a time (s41), nothing else wrong
            assert [f.code for f in check.failures] == ["other_running"], check.failures
            continue
        assert check.matches, check.failures  # only course A's bag given: 22 + 22 g = 0.704 g/kg
        bedside.confirm_second_person(session, nurse, check.check_id, username="nurse2", password=PASSWORD,
                                      checker_password=PASSWORD, label_key=KEY)
    a_infusion = session.scalar(select(Infusion.id).where(Infusion.patient_id == pid))
    made = CourseB(pid, wristband, a_infusion, a_at, [b.id for b in bags], [token_of(b) for b in bags])
    session.commit()
    return made


def _give_first_of_b(session: Any, course: CourseB, volume_ml: str | None = "200") -> str:
    """Course B's first bag started now (and ended with `volume_ml`, None: still running); its start (HH:MM)."""
    nurse = user(session, "nurse")
    infusion = infusions.start_infusion(session, nurse, course.bags[0], wristband=course.wristband,
                                        bag_scan=course.tokens[0], label_key=KEY)
    if volume_ml is not None:
        infusions.end_infusion(session, nurse, infusion.id, volume_ml=volume_ml,
                               reason="" if volume_ml == "200" else "stopped early: reaction")
    started = session.scalar(select(Infusion.started_at).where(Infusion.id == infusion.id))
    session.commit()
    return f"{started.astimezone(site_config().tz):%H:%M}"


def _nurse(app: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}


def _scan(app: Any, course: CourseB) -> dict[str, Any]:
    answer = app.test_client().post("/api/v1/custody/scan-verify", headers=_nurse(app),
                                    json={"wristband": course.wristband, "bag": course.tokens[1]})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()  # type: ignore[no-any-return]


def _start(app: Any, course: CourseB) -> Any:
    return app.test_client().post("/api/v1/custody/infusions", headers=_nurse(app), json={
        "bag_id": course.bags[1], "wristband": course.wristband, "bag": course.tokens[1]})


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _infusions_of(app: Any, bag_id: int) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return len(session.scalars(select(Infusion.id).where(Infusion.bag_id == bag_id)).all())


def test_a_bag_over_the_dmso_of_the_last_24_hours_stops_at_the_bedside_and_at_the_start(
        app, users, db_session, client_as):
    course = _course_b_for_later(db_session, a_ml="200")
    b_at = _give_first_of_b(db_session, course)
    words = _over(course.a_at, b_at)

    # the start on the check confirmed before B's first bag was given: the check run again says STOP
    started = _start(app, course)
    assert started.status_code == 409, started.get_json()
    assert started.get_json()["detail"] == f"STOP, do not start: {words}", started.get_json()["detail"]
    assert _infusions_of(app, course.bags[1]) == 0

    # the scanner API: STOP with its own code, nothing that reads as an instruction to give
    answer = _scan(app, course)
    assert answer["result"] == "STOP" and answer["matches"] is False
    assert answer["failures"] == [{"code": "dmso_24h", "message": words}], answer["failures"]
    assert answer["notes"] == [] and answer["give_ml"] is None
    with app.extensions["mscbatch.db"].new_session() as session:
        record = session.get(TwoPersonCheck, answer["check_id"])
        assert record.result == "stop" and record.patient_id == course.patient_id
        assert json.loads(record.failures_json) == [{"code": "dmso_24h", "message": words}]
        assert json.loads(record.notes_json) == []

    # the ward page, as a nurse: STOP, the words, no volume to give, no form to confirm or start
    page = client_as("nurse").post("/ward/check", data={"wristband": course.wristband, "bag": course.tokens[1]},
                                   follow_redirects=True)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and ">STOP<" in html
    assert 'data-code="dmso_24h"' in html and words in _text(html), _text(html)[:3000]
    assert 'id="give-volume"' not in html and "second-person" not in html and 'id="start-form"' not in html


def test_a_bag_below_the_dmso_of_the_last_24_hours_matches_and_starts(app, users, db_session, client_as):
    course = _course_b_for_later(db_session, a_ml="50")  # 5.5 g of course A: 49.5 g = 0.792 g/kg
    _give_first_of_b(db_session, course)
    answer = _scan(app, course)
    assert answer["result"] == "MATCHES", answer["failures"]
    assert float(answer["give_ml"]) == 200
    page = client_as("nurse").post("/ward/check", data={"wristband": course.wristband, "bag": course.tokens[1]},
                                   follow_redirects=True)
    assert page.status_code == 200 and ">MATCHES<" in page.get_data(as_text=True)
    started = _start(app, course)
    assert started.status_code == 201, started.get_json()
    assert _infusions_of(app, course.bags[1]) == 1


def _started_at(app: Any, infusion_id: int, at: datetime) -> None:
    with app.extensions["mscbatch.db"].engine.begin() as connection:  # written here: a start is always "now"
        connection.execute(update(Infusion.__table__).where(Infusion.__table__.c.id == infusion_id)
                           .values(started_at=at))


def _b_infusion(session: Any, course: CourseB) -> int:
    return session.scalar(select(Infusion.id).where(Infusion.bag_id == course.bags[0]))  # type: ignore[no-any-return]


def test_the_site_midnight_resets_nothing_23_50_then_00_10_stops(app, users, db_session):
    """Course A's bag at 23:40 and course B's first at 23:50 the evening before; B's second scanned at 00:10: 66 g in
    30 minutes, STOP (the calendar-day rule saw nothing given "today" and said MATCHES)."""
    course = _course_b_for_later(db_session, a_ml="200")
    _give_first_of_b(db_session, course)
    tz = site_config().tz
    ten_past = datetime.combine(site_today(), time(0, 10), tz)
    b_infusion = _b_infusion(db_session, course)
    db_session.commit()  # no transaction of this session open across the writes below (SQLite's snapshot)
    _started_at(app, course.a_infusion_id, ten_past - timedelta(minutes=30))
    _started_at(app, b_infusion, ten_past - timedelta(minutes=20))
    result = evaluate(db_session, course.wristband, course.tokens[1], KEY, now=ten_past)
    assert [f.code for f in result.failures] == ["dmso_24h"], result.failures
    assert result.failures[0].message == _over("yesterday 23:40", "yesterday 23:50"), result.failures[0].message


def test_the_window_is_24_hours_to_the_minute(app, users, db_session):
    """Judged now, through the scanner: course A's bag started 24 hours and 1 minute ago no longer counts (only B's
    first bag: 44 g, MATCHES); started 23 hours 59 minutes ago it counts (66 g, STOP)."""
    course = _course_b_for_later(db_session, a_ml="200")
    b_at = _give_first_of_b(db_session, course)
    now = utcnow()

    _started_at(app, course.a_infusion_id, now - timedelta(hours=24, minutes=1))
    answer = _scan(app, course)
    assert answer["result"] == "MATCHES", answer["failures"]

    a_start = now - timedelta(hours=23, minutes=59)
    _started_at(app, course.a_infusion_id, a_start)
    answer = _scan(app, course)
    assert [f["code"] for f in answer["failures"]] == ["dmso_24h"], answer["failures"]
    local = a_start.astimezone(site_config().tz)
    a_words = f"{local:%H:%M}" if local.date() == site_today() else f"yesterday {local:%H:%M}"
    assert answer["failures"][0]["message"] == _over(a_words, b_at), answer["failures"][0]["message"]


def test_an_infusion_still_running_counts_its_whole_bag(app, users, db_session):
    course = _course_b_for_later(db_session, a_ml="200")
    b_at = _give_first_of_b(db_session, course, volume_ml=None)  # B's first bag still running
    answer = _scan(app, course)
    # and B's first bag still running is a STOP of its own (s41: one bag at a time), said first
    assert [f["code"] for f in answer["failures"]] == ["other_running", "dmso_24h"], answer["failures"]
    assert answer["failures"][1]["message"] == _over(course.a_at, f"{b_at}, not ended: its whole bag counted")

    # ended after 50 mL: 22 + 5.5 + 22 g = 0.792 g/kg, below the limit
    nurse = user(db_session, "nurse")
    running = db_session.scalar(select(Infusion.id).where(Infusion.bag_id == course.bags[0]))
    infusions.end_infusion(db_session, nurse, running, volume_ml="50", reason="stopped early: reaction")
    db_session.commit()
    assert _scan(app, course)["result"] == "MATCHES"


def test_a_running_partial_draw_counts_the_volume_its_prescription_draws(app, users, db_session):
    """Course A's partial bag (100 mL of 200 mL) still running counts 11 g: 11 + 22 + 22 = 55 g = 0.88 g/kg, MATCHES
    (counting its whole bag, 66 g = 1.056 g/kg, stopped a bag that may be given)."""
    course = _course_b_for_later(db_session, a_ml=None, a_partial=True)
    # B's first bag given whole while A's still ran: the start refuses that now (s41: one bag at a time), so it is
    # written as an older version let it be, to judge the DMSO alone
    nurse, nurse2 = user(db_session, "nurse"), user(db_session, "nurse2")
    check_id = db_session.scalar(select(TwoPersonCheck.id).where(TwoPersonCheck.bag_id == course.bags[0]))
    with use_case(db_session, nurse):
        infusion = Infusion(bag_id=course.bags[0], patient_id=course.patient_id, check_id=check_id,
                            started_at=utcnow(), started_by_id=nurse.id, second_person_id=nurse2.id)
        db_session.add(infusion)
        db_session.flush()
        infusion.ended_at, infusion.ended_by_id, infusion.volume_infused_ml = utcnow(), nurse.id, Decimal("200")
    db_session.commit()
    answer = _scan(app, course)
    # A's partial draw counted as its 100 mL (11 g): no DMSO STOP (its whole bag, 22 g, would have said dmso_24h)
    assert [f["code"] for f in answer["failures"]] == ["other_running"], answer["failures"]


def test_the_dmso_of_the_last_24_hours_is_judged_at_the_newer_weight_the_check_judges(app, users, db_session):
    """A weight recorded since the prescription at which the dose still holds: the DMSO of the last 24 hours is
    judged at it too (66 g for 67 kg = 0.985 g/kg, below the limit; at the prescription's 62.5 kg it was 1.056)."""
    course = _course_b_for_later(db_session, a_ml="200")
    _give_first_of_b(db_session, course)
    assert [f["code"] for f in _scan(app, course)["failures"]] == ["dmso_24h"]
    clinician = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    weighed = app.test_client().post(f"/api/v1/patients/{course.patient_id}/weights", headers=clinician,
                                     json={"weight_kg": "67", "measured_on": site_today().isoformat()})
    assert weighed.status_code == 201, weighed.get_json()
    answer = _scan(app, course)
    assert answer["result"] == "MATCHES", answer["failures"]
    assert any("now weighs 67 kg" in note for note in answer["notes"]), answer["notes"]
