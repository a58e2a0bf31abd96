"""The weight form's words (review s37, a clinician's).

- A date that does not exist typed in the browser's date input (2026-02-30, or 05/12/2026 in another order) is sent
  EMPTY by the browser: the page said only "Give the date of the measurement.", to someone who had typed one. It now
  says that the date must be a real one and how to write it (web.date_fields); typed text the server does receive
  is refused naming what was typed, as before.
- The page took "71,5" as 71.5 kg while the API refused "51,5": a comma is refused on the page too, in the API's
  words (naming the field and the rule), as in every other number field.
- A weight far from another one measured within the protocol's days was compared with "the previous weight" even
  when that weight was measured AFTER it (45 kg on day 1 beside 52 kg on day 2): it is now named by its place in time.
"""
from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from sqlalchemy import func, select

from mscbatch.patients.models import WeightMeasurement
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.patient_factories import patient, user


def _patient(app, weight: str = "62.5", weighed_days_ago: int = 1) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        row = patient(session, user(session, "clinician"), weight=weight, weighed_days_ago=weighed_days_ago)
        session.commit()
        return row.id


def _weights(app) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count()).select_from(WeightMeasurement))


def _error(html: str, field: str) -> str:
    found = re.search(rf'id="{field}-error"[^>]*>(.*?)</', html, re.S)
    assert found is not None, html[:2000]
    return unescape(found.group(1)).strip()


def test_a_date_the_browser_sent_empty_is_asked_for_with_its_format_and_that_it_must_exist(app, users, client_as):
    pid = _patient(app)
    clinician = client_as("clinician")
    before = _weights(app)
    page = clinician.post(f"/patients/{pid}/weights", data={"weight_kg": "62", "measured_on": ""})
    assert page.status_code == 422
    words = _error(page.get_data(as_text=True), "measured_on")
    assert "real date" in words and "YYYY-MM-DD (e.g. 2026-02-28)" in words, words
    for typed in ("2026-02-30", "05/12/2026"):  # received as typed (a browser without a date input): named
        page = clinician.post(f"/patients/{pid}/weights", data={"weight_kg": "62", "measured_on": typed})
        assert page.status_code == 422
        assert _error(page.get_data(as_text=True), "measured_on") == (
            f"Measured on: '{typed}' is not a date; type it as YYYY-MM-DD (e.g. 2026-02-28)")
    assert _weights(app) == before


def test_a_comma_is_refused_on_the_page_in_the_apis_words(app, users, client_as):
    pid = _patient(app)
    clinician = client_as("clinician")
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    today = site_today().isoformat()
    before = _weights(app)
    page = clinician.post(f"/patients/{pid}/weights", data={"weight_kg": "71,5", "measured_on": today,
                                                            "weight_confirmed": "y"})
    assert page.status_code == 422
    said = _error(page.get_data(as_text=True), "weight_kg")
    api = app.test_client().post(f"/api/v1/patients/{pid}/weights", headers=headers,
                                 json={"weight_kg": "71,5", "measured_on": today, "weight_confirmed": True})
    assert api.status_code == 422, api.get_json()
    assert said == api.get_json()["errors"]["weight_kg"][0], (said, api.get_json())
    assert said.startswith("Weight: '71,5' is not a plain number;") and "decimal point" in said and "no comma" in said
    assert _weights(app) == before
    ok = clinician.post(f"/patients/{pid}/weights", data={"weight_kg": "61.5", "measured_on": today})
    assert ok.status_code == 302, ok.get_data(as_text=True)
    assert _weights(app) == before + 1


def test_a_weight_measured_after_the_one_typed_is_not_called_the_previous_weight(app, users, client_as):
    pid = _patient(app, weight="52", weighed_days_ago=0)  # 52 kg measured today
    yesterday = site_today() - timedelta(days=1)
    page = client_as("clinician").post(f"/patients/{pid}/weights", data={"weight_kg": "45",
                                                                        "measured_on": yesterday.isoformat()})
    assert page.status_code == 422
    said = _error(page.get_data(as_text=True), "weight_kg")
    assert (f"45 kg measured on {yesterday} is 13.5 % below the weight measured after this one, 52 kg on "
            f"{site_today()} (more than the 10 % allowed") in said, said
    assert "previous weight" not in said


def test_an_earlier_weight_is_still_the_previous_one(app, users, client_as):
    pid = _patient(app, weight="52", weighed_days_ago=1)
    page = client_as("clinician").post(f"/patients/{pid}/weights", data={
        "weight_kg": "45", "measured_on": site_today().isoformat()})
    said = _error(page.get_data(as_text=True), "weight_kg")
    assert f"below the previous weight, 52 kg measured on {site_today() - timedelta(days=1)}" in said, said
