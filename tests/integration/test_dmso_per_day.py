"""The DMSO limit is per kg PER DAY (DOMAIN.md 6: keep below 1 g DMSO per kg per day): a course stopped after a bag
was given, then a repeat course the same site day, counted only the new course's DMSO. Now the DMSO already
given that day (each infusion's volume given, or its whole bag while it runs, x DMSO % x 1.10 g/mL) is added.

62.5 kg at 2 x10^6/kg from bags of 50 x10^6 cells in 200 mL at 10 % DMSO: a course is 2 whole bags + 100 mL, 500 mL
= 55 g = 0.88 g/kg (below 1 g/kg). A first bag given whole is 22 g: 77 g = 1.232 g/kg that day (refused); given
only 50 mL it is 5.5 g: 60.5 g = 0.968 g/kg (allowed, the sum shown)."""
from __future__ import annotations

import io
import re
from datetime import datetime, time, timedelta
from decimal import Decimal
from html import unescape

from pypdf import PdfReader
from sqlalchemy import func, select

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
REFUSED = ("DMSO would be 77.00 g today: 22.00 g already given at {at} + 55.00 g in this course = 1.232 g/kg, "
           "not below the limit of 1 g/kg/day")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _api(app):  # type: ignore[no-untyped-def]
    return app.test_client(), {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}


def _tomorrow_at_ten() -> str:
    return datetime.combine(site_today() + timedelta(days=1), time(10), site_config().tz).isoformat()


def _stopped_after_first_bag(session, *, volume_ml: str | None = "200") -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """A patient whose first course was stopped after its first bag was infused (`volume_ml` given; None: the
    infusion still runs). Returns the patient id and the start of that infusion on the site's clock (HH:MM)."""
    tech, clin, nurse = user(session, "technician"), user(session, "clinician"), user(session, "nurse")
    lot_with_bags(session, tech, donor(session, tech), bags=6, cells=50_000_000, volume_ml="200")
    row = patient(session, clin)
    rx = prescriptions.prescribe(session, clin, PASSWORD, row.id)
    assert rx.dmso_g == 55  # 500 mL at 10 % x 1.10 g/mL: 0.88 g/kg, below the limit on its own
    bag = session.get(Bag, int(rx.calculation["draws"][0]["bag_id"]))
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
    prescriptions.cancel(session, clin, rx.id, "pump failure, course to be redone")
    started = session.scalar(select(Infusion.started_at).where(Infusion.id == infusion.id))
    pid = row.id
    session.commit()
    return pid, f"{started.astimezone(site_config().tz):%H:%M}"


def _written(app, pid: int) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        return (list(session.scalars(select(Prescription.status).where(Prescription.patient_id == pid)
                                     .order_by(Prescription.id))),
                session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def _hidden(page: str) -> dict[str, str]:
    return {k: page.split(f'name="{k}" type="hidden" value="')[1].split('"')[0]
            for k in ("level", "bag_ids", "weight_id")}


def test_a_repeat_course_the_same_day_is_refused_when_the_days_dmso_is_not_below_the_limit(
        app, users, db_session, client_as):
    pid, at = _stopped_after_first_bag(db_session)
    words = REFUSED.format(at=at)

    # the dose page: the dry run is refused with both parts of the day's DMSO, and offers no signature
    clinician = client_as("clinician")
    page = _text(clinician.get(f"/patients/{pid}/dose").get_data(as_text=True))
    assert f"Refused: {words}." in page, page[page.find("Refused"):][:400]
    assert "Sign the prescription" not in page

    # the signing form posted with the bags of another day's dry run, for today: 422 naming the rule, nothing written
    tomorrow = (site_today() + timedelta(days=1)).isoformat()
    other_day = clinician.get(f"/patients/{pid}/dose", query_string={"planned_on": tomorrow}).get_data(as_text=True)
    for planned_on in ("", site_today().isoformat()):
        before = _written(app, pid)
        assert before[0] == ["stopped"]
        refused = clinician.post(f"/patients/{pid}/prescriptions", data={
            **_hidden(other_day), "planned_on": planned_on, "repeat_course_reason": REASON, "password": PASSWORD})
        body = _text(refused.get_data(as_text=True))
        assert refused.status_code == 422, body[:2000]
        assert (f"Dose refused: {words}. Nothing was signed (plan this course for another day: the limit is per "
                "day).") in body, body[body.find("Dose refused"):][:400]
        assert _written(app, pid) == before

    # the JSON API: the dry run says why; the signature is refused with 422 naming the rule; nothing written
    api, headers = _api(app)
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["allowed"] is False and dry["refusal_code"] == "dmso_limit"
    assert dry["refusal_reason"] == words, dry["refusal_reason"]
    later = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers,
                     json={"planned_at": _tomorrow_at_ten()}).get_json()
    assert later["allowed"] is True, later
    body = {"dose_level_cells_per_kg": later["calculation"]["dose_level_cells_per_kg"],
            "weight_id": later["weight_id"], "bag_ids": [int(d["bag_id"]) for d in later["calculation"]["draws"]],
            "repeat_course_reason": REASON, "password": PASSWORD}
    before = _written(app, pid)
    by_api = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json=body)
    problem = by_api.get_json()
    assert by_api.status_code == 422, problem
    assert words in problem["detail"] and "dose_level_cells_per_kg" in problem["errors"], problem
    assert _written(app, pid) == before

    # the same course planned for ANOTHER day is not affected: nothing was given that day
    assert Decimal(later["calculation"]["dmso_given_today_g"]) == 0 and Decimal(later["calculation"]["dmso_g"]) == 55
    signed = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers,
                      json={**body, "planned_at": _tomorrow_at_ten()})
    assert signed.status_code == 201, signed.get_json()
    rx_id = signed.get_json()["id"]
    assert _written(app, pid)[0] == ["stopped", "active"]
    sheet = _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert "DMSO 55.00 g = 0.8800 g/kg (limit 1 g/kg/day)" in sheet, sheet[sheet.find("DMSO"):][:200]
    assert "already given" not in sheet


def test_a_running_infusion_counts_its_whole_bag(app, users, db_session, client_as):
    pid, at = _stopped_after_first_bag(db_session, volume_ml=None)  # stopped while its first bag still runs
    api, headers = _api(app)
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["refusal_code"] == "dmso_limit", dry
    assert dry["refusal_reason"] == REFUSED.format(at=f"{at} (infusion not ended: its whole bag counted)"), dry


def test_a_same_day_course_whose_sum_stays_below_the_limit_is_signed_and_shows_the_sum(
        app, users, db_session, client_as):
    pid, at = _stopped_after_first_bag(db_session, volume_ml="50")  # 50 mL given: 5.5 g
    line = f"55.00 g + 5.50 g already given today at {at} = 0.968 g/kg (limit 1 g/kg/day)"

    api, headers = _api(app)
    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert dry["allowed"] is True, dry
    assert Decimal(dry["calculation"]["dmso_given_today_g"]) == Decimal("5.5") and dry["calculation"]["dmso_given_at"] == [at]

    clinician = client_as("clinician")
    page = clinician.get(f"/patients/{pid}/dose").get_data(as_text=True)
    shown = _text(page)
    assert f"DMSO {line}" in shown, shown[shown.find("DMSO"):][:300]
    signed = clinician.post(f"/patients/{pid}/prescriptions", data={
        **_hidden(page), "planned_on": "", "repeat_course_reason": REASON, "password": PASSWORD})
    assert signed.status_code == 302, _text(signed.get_data(as_text=True))[:2000]
    rx_id = int(signed.headers["Location"].rstrip("/").split("/")[-1])
    assert _written(app, pid)[0] == ["stopped", "active"]

    on_sheet = f"55.00 g + 5.50 g already given on {site_today()} at {at} = 0.968 g/kg (limit 1 g/kg/day)"
    sheet = _text(clinician.get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True))
    assert f"DMSO {on_sheet}" in sheet, sheet[sheet.find("DMSO"):][:300]
    pdf = clinician.get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf")
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages))
    assert f"DMSO {on_sheet}" in text, text[text.find("DMSO"):][:300]
