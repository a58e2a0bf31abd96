"""The DMSO limit per kg per day (DOMAIN.md 6: keep below 1 g DMSO per kg per day) is held over any 24 HOURS before
the planned infusion, not the site's calendar day: a course stopped after a bag was given, then a repeat course
counted only the new course's DMSO. Now the DMSO given in the 24 hours before the planned infusion (each infusion's
volume given; while it runs, the volume its prescription draws from the bag) is added.

62.5 kg at 2 x10^6/kg from bags of 50 x10^6 cells in 200 mL at 10 % DMSO: a course is 2 whole bags + 100 mL, 500 mL
= 55 g = 0.88 g/kg (below 1 g/kg). A first bag given whole is 22 g: 77 g = 1.232 g/kg in 24 hours (refused); given
only 50 mL it is 5.5 g: 60.5 g = 0.968 g/kg (allowed, the sum shown); the partial draw of 100 mL still running is
11 g: 66 g = 1.056 g/kg (refused, not the whole bag's 77 g)."""
from __future__ import annotations

import io
import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from html import unescape

from pypdf import PdfReader
from sqlalchemy import func, select, update

from mscbatch.audit.models import AuditEvent
from mscbatch.custody import bedside, handover, infusions
from mscbatch.custody.models import Infusion
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import Prescription
from mscbatch.site import site_config, site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, token_of

REASON = "repeat course: pump failure after the first bag, decided with the investigator"
REFUSED = ("DMSO would be {total} g in 24 hours: {given} g already given {window} (started {at}) + 55.00 g in this "
           "course = {per_kg} g/kg, not below the limit of 1 g/kg/day")
NOW = "in the last 24 hours"


def _refused(at: str, window: str = NOW, given: str = "22.00") -> str:
    total = Decimal(given) + 55
    return REFUSED.format(total=f"{total:.2f}", given=given, window=window, at=at,
                          per_kg=f"{(total / Decimal('62.5')).quantize(Decimal('0.001')):f}")


def _later(started: datetime, given: str = "22.00") -> str:
    end = (started.astimezone(UTC) + timedelta(hours=24)).astimezone(started.tzinfo)  # elapsed hours, as at a clock change
    if end.second or end.microsecond:  # said to the minute, never before the end: the next whole minute
        end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return ("Plan this course later: DMSO counts for 24 hours from the start of its infusion, so from "
            f"{end:%Y-%m-%d %H:%M} none of the {given} g already given counts")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _api(app):  # type: ignore[no-untyped-def]
    return app.test_client(), {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}


def _in_two_days() -> datetime:
    """A planned infusion more than 24 hours after anything given today, whatever the time the test runs."""
    return datetime.combine(site_today() + timedelta(days=2), time(10), site_config().tz)


def _stopped_after_first_bag(session, *, volume_ml: str | None = "200",  # type: ignore[no-untyped-def]
                             partial: bool = False) -> tuple[int, str, datetime]:
    """A patient whose first course was stopped after its first bag was infused (`volume_ml` given; None: the
    infusion still runs); `partial`: that bag is the course's partial draw (100 mL of its 200 mL). Returns the patient
    id and the start of that infusion on the site's clock (HH:MM, and as a datetime)."""
    tech, clin, nurse = user(session, "technician"), user(session, "clinician"), user(session, "nurse")
    lot_with_bags(session, tech, donor(session, tech), bags=6, cells=50_000_000, volume_ml="200")
    row = patient(session, clin)
    rx = prescriptions.prescribe(session, clin, PASSWORD, row.id)
    assert rx.dmso_g == 55  # 500 mL at 10 % x 1.10 g/mL: 0.88 g/kg, below the limit on its own
    draw = next(d for d in rx.calculation["draws"] if d["partial"] == partial)
    assert Decimal(draw["volume_ml"]) == (100 if partial else 200)
    bag = session.get(Bag, int(draw["bag_id"]))
    handover.dispatch(session, tech, bag.id, courier="C", shipper="S", temperature_logger_id="T")
    handover.receive(session, nurse, bag.id, scan=token_of(bag))
    handover.thaw(session, nurse, bag.id, scan=token_of(bag))
    check = bedside.bedside_check(session, nurse, wristband=row.wristband_id, bag_scan=token_of(bag), label_key=KEY)
    assert check.matches, check.failures
    bedside.confirm_second_person(session, nurse, check.check_id, username="nurse2", password=PASSWORD,
                                  checker_password=PASSWORD, label_key=KEY)
    infusion = infusions.start_infusion(session, nurse, bag.id, wristband=row.wristband_id, bag_scan=token_of(bag),
                                        label_key=KEY)
    if volume_ml is not None:
        infusions.end_infusion(session, nurse, infusion.id, volume_ml=volume_ml,
                               reason="" if volume_ml == "200" else "stopped early: pump failure")
    prescriptions.cancel(session, clin, rx.id, "pump failure, course to be redone", password=PASSWORD)
    started = session.scalar(select(Infusion.started_at).where(Infusion.id == infusion.id))
    pid = row.id
    session.commit()
    local = started.astimezone(site_config().tz)
    return pid, f"{local:%H:%M}", local


def _written(app, pid: int) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        return (list(session.scalars(select(Prescription.status).where(Prescription.patient_id == pid)
                                     .order_by(Prescription.id))),
                session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def _hidden(page: str) -> dict[str, str]:
    return {k: page.split(f'name="{k}" type="hidden" value="')[1].split('"')[0]
            for k in ("level", "bag_ids", "weight_id")}


def test_a_repeat_course_within_24_hours_is_refused_when_the_dmso_is_not_below_the_limit(
        app, users, db_session, client_as):
    pid, at, started = _stopped_after_first_bag(db_session)
    words, later_words = _refused(at), _later(started)

    # the dose page: the dry run (judged now) is refused with both parts, says to plan it later, offers no signature
    clinician = client_as("clinician")
    html = clinician.get(f"/patients/{pid}/dose").get_data(as_text=True)
    page = _text(html)
    assert f"Refused: {words}." in page, page[page.find("Refused"):][:400]
    assert f"{later_words}: choose a later planned infusion date above." in page, page[page.find("Refused"):][:600]
    assert 'id="plan-later"' in html and "Sign the prescription" not in page

    # the signing form posted with the bags of a later day's dry run, for now or today: 422 naming the planned date
    # (the advice is to plan it later), nothing written
    later_day = (site_today() + timedelta(days=2)).isoformat()
    other_day = clinician.get(f"/patients/{pid}/dose", query_string={"planned_on": later_day}).get_data(as_text=True)
    assert "Sign the prescription" in other_day
    tonight = f"in the 24 hours before {site_today()} 23:59"  # a planned day is judged at its end, 23:59
    for planned_on, window in (("", NOW), (site_today().isoformat(), tonight)):
        before = _written(app, pid)
        assert before[0] == ["stopped"]
        refused = clinician.post(f"/patients/{pid}/prescriptions", data={
            **_hidden(other_day), "planned_on": planned_on, "repeat_course_reason": REASON, "password": PASSWORD})
        body = _text(refused.get_data(as_text=True))
        assert refused.status_code == 422, body[:2000]
        message = f"Dose refused: {_refused(at, window)}. Nothing was signed. {later_words}."
        assert message in body, body[body.find("Dose refused"):][:600]
        assert _written(app, pid) == before

    # the JSON API: the dry run says why; the signature is refused with 422 naming planned_at; nothing written
    api, headers = _api(app)
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["allowed"] is False and dry["refusal_code"] == "dmso_limit"
    assert dry["refusal_reason"] == words, dry["refusal_reason"]
    assert dry["refusal_later"] == later_words, dry  # the API client is told to plan it later, as the page says
    later = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers,
                     json={"planned_at": _in_two_days().isoformat()}).get_json()
    assert later["allowed"] is True, later
    body = {"dose_level_cells_per_kg": later["calculation"]["dose_level_cells_per_kg"],
            "weight_id": later["weight_id"], "bag_ids": [int(d["bag_id"]) for d in later["calculation"]["draws"]],
            "repeat_course_reason": REASON, "password": PASSWORD}
    before = _written(app, pid)
    by_api = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json=body)
    problem = by_api.get_json()
    assert by_api.status_code == 422, problem
    assert problem["detail"] == f"Dose refused: {words}. Nothing was signed. {later_words}.", problem["detail"]
    assert list(problem["errors"]) == ["planned_at"], problem
    assert _written(app, pid) == before

    # the same course planned more than 24 hours after the bag given is not affected: nothing counts before it
    assert Decimal(later["calculation"]["dmso_given_g"]) == 0 and Decimal(later["calculation"]["dmso_g"]) == 55
    assert later["calculation"]["dmso_window_end"] == _in_two_days().isoformat()
    signed = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers,
                      json={**body, "planned_at": _in_two_days().isoformat()})
    assert signed.status_code == 201, signed.get_json()
    rx_id = signed.get_json()["id"]
    assert _written(app, pid)[0] == ["stopped", "active"]
    sheet = _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert "DMSO 55.00 g = 0.8800 g/kg (limit 1 g/kg/day)" in sheet, sheet[sheet.find("DMSO"):][:200]
    assert "already given" not in sheet


def test_the_window_is_the_24_hours_before_the_planned_infusion(app, users, db_session):
    """Across midnight: the bag given just before the site's midnight counts for a course planned for the next day
    (the calendar-day rule counted nothing); given 24 hours and a minute before the planned time, it no longer counts."""
    pid, _at, _started = _stopped_after_first_bag(db_session)
    api, headers = _api(app)
    tz = site_config().tz
    planned = datetime.combine(site_today() + timedelta(days=2), time(0, 10), tz)

    def given_at(moment: datetime) -> dict:  # type: ignore[type-arg]
        with app.extensions["mscbatch.db"].engine.begin() as connection:  # a start is always "now": moved here
            connection.execute(update(Infusion.__table__).where(Infusion.__table__.c.patient_id == pid)
                               .values(started_at=moment))
        return api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers,  # type: ignore[no-any-return]
                        json={"planned_at": planned.isoformat()}).get_json()

    before_midnight = planned - timedelta(minutes=20)  # the evening before, 23:50 (not today: written with its day)
    dry = given_at(before_midnight)
    assert dry["refusal_code"] == "dmso_limit", dry
    window = f"in the 24 hours before {planned:%Y-%m-%d %H:%M}"
    assert dry["refusal_reason"] == _refused(f"{before_midnight:%Y-%m-%d %H:%M}", window), dry["refusal_reason"]

    # elapsed time, taken in UTC: on the day of a clock change, 24 hours before is not the same wall-clock time
    planned_utc = planned.astimezone(UTC)
    assert given_at(planned_utc - timedelta(hours=24, minutes=-1))["refusal_code"] == "dmso_limit"  # 23 h 59 min before
    for outside in (planned_utc - timedelta(hours=24), planned_utc - timedelta(hours=24, minutes=1)):
        dry = given_at(outside)
        assert dry["allowed"] is True, dry
        assert Decimal(dry["calculation"]["dmso_given_g"]) == 0


def test_a_running_partial_draw_counts_the_volume_its_prescription_draws(app, users, db_session, client_as):
    """The course's partial bag (100 mL of its 200 mL) still running counts 11 g, not its whole bag's 22 g."""
    pid, at, started = _stopped_after_first_bag(db_session, volume_ml=None, partial=True)
    api, headers = _api(app)
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["refusal_code"] == "dmso_limit", dry
    running = f"{at}, not ended: its prescribed 100 mL counted"
    assert dry["refusal_reason"] == _refused(running, given="11.00"), dry["refusal_reason"]


def test_a_running_whole_bag_counts_its_whole_bag(app, users, db_session, client_as):
    pid, at, _started = _stopped_after_first_bag(db_session, volume_ml=None)  # stopped while its first bag runs
    api, headers = _api(app)
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["refusal_code"] == "dmso_limit", dry
    assert dry["refusal_reason"] == _refused(f"{at}, not ended: its whole bag counted"), dry


def test_a_course_over_the_limit_on_its_own_names_the_dose_level_and_gives_no_advice_to_wait(
        app, users, db_session, client_as):
    """Nothing given in the 24 hours before: a refusal of the course's own DMSO names dose_level_cells_per_kg, and
    the dose page does not tell to plan it later (it would not help)."""
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    bags = lot_with_bags(db_session, tech, donor(db_session, tech), bags=6, cells=50_000_000, volume_ml="200")
    row = patient(db_session, clin)
    ids = [b.id for b in bags]
    db_session.commit()
    api, headers = _api(app)
    dry = api.post(f"/api/v1/patients/{row.id}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["allowed"] is True, dry
    with app.extensions["mscbatch.db"].engine.begin() as connection:  # 12 % DMSO: 66 g = 1.056 g/kg, the course alone
        connection.execute(update(Bag.__table__).where(Bag.__table__.c.id.in_(ids))
                           .values(dmso_percent=Decimal(12)))
    body = {"dose_level_cells_per_kg": dry["calculation"]["dose_level_cells_per_kg"], "weight_id": dry["weight_id"],
            "bag_ids": [int(d["bag_id"]) for d in dry["calculation"]["draws"]], "password": PASSWORD}
    refused = api.post(f"/api/v1/patients/{row.id}/prescriptions", headers=headers, json=body)
    problem = refused.get_json()
    assert refused.status_code == 422, problem
    assert problem["detail"] == ("Dose refused: DMSO would be 66.00 g, 1.056 g/kg, not below the limit of 1 g/kg/day. "
                                 "Nothing was signed."), problem["detail"]
    assert list(problem["errors"]) == ["dose_level_cells_per_kg"], problem
    again = api.post(f"/api/v1/patients/{row.id}/dose-calculation", headers=headers, json={}).get_json()
    assert again["refusal_code"] == "dmso_limit" and again["refusal_later"] is None, again
    html = client_as("clinician").get(f"/patients/{row.id}/dose").get_data(as_text=True)
    assert "Refused: DMSO would be 66.00 g" in _text(html) and 'id="plan-later"' not in html


def test_a_course_whose_sum_stays_below_the_limit_is_signed_and_shows_the_sum(app, users, db_session, client_as):
    pid, at, started = _stopped_after_first_bag(db_session, volume_ml="50")  # 50 mL given: 5.5 g
    line = f"55.00 g + 5.50 g already given in the last 24 hours (started {at}) = 0.968 g/kg (limit 1 g/kg/day)"

    api, headers = _api(app)
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["allowed"] is True, dry
    assert Decimal(dry["calculation"]["dmso_given_g"]) == Decimal("5.5") and dry["calculation"]["dmso_given_at"] == [at]

    clinician = client_as("clinician")
    page = clinician.get(f"/patients/{pid}/dose").get_data(as_text=True)
    shown = _text(page)
    assert f"DMSO {line}" in shown, shown[shown.find("DMSO"):][:300]
    signed = clinician.post(f"/patients/{pid}/prescriptions", data={
        **_hidden(page), "planned_on": "", "repeat_course_reason": REASON, "password": PASSWORD})
    assert signed.status_code == 302, _text(signed.get_data(as_text=True))[:2000]
    rx_id = int(signed.headers["Location"].rstrip("/").split("/")[-1])
    assert _written(app, pid)[0] == ["stopped", "active"]
    with app.extensions["mscbatch.db"].new_session() as session:
        end = datetime.fromisoformat(session.get(Prescription, rx_id).calculation["dmso_window_end"])
    assert end >= started  # the moment it was judged (signed): kept with its calculation

    # the sheet is read later: the window's end and the start with their days
    on_sheet = (f"55.00 g + 5.50 g already given in the 24 hours before {end:%Y-%m-%d %H:%M} (started "
                f"{started:%Y-%m-%d %H:%M}) = 0.968 g/kg (limit 1 g/kg/day)")
    sheet = _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert f"DMSO {on_sheet}" in sheet, sheet[sheet.find("DMSO"):][:300]
    pdf = clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf")
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages))
    assert f"DMSO {on_sheet}" in text, text[text.find("DMSO"):][:300]
