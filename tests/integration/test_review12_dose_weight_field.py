"""Review 12 (DOMAIN.md section 6, dose): a prescription refused for its weight names the weight, not the dose level.

Defect fixed: patients.prescriptions._refuse answered every refusal of the calculation except DMSO with a 409 naming
`dose_level_cells_per_kg`, also a weight too old at the planned infusion (or missing): an API client marked the dose
level it had sent as wrong, while the level was right and the weight (`weight_id`, the request's own field for it) was
what a newer measurement must replace. The dose page still says the refusal in full."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from html import unescape

from mscbatch.site import site_config, site_today
from tests.integration.test_dose_rules_review7 import _headers, _setup
from tests.integration.test_review4_patients_support import dry_run_body


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_a_weight_too_old_at_the_planned_infusion_is_refused_naming_weight_id(app, users, client_as):
    pid = _setup(app, weighed_days_ago=7)  # recent today (7 days), 8 days old tomorrow
    api, headers = app.test_client(), _headers(app)
    body = dry_run_body(api, headers, pid)  # no planned day: allowed now
    tomorrow = datetime.combine(site_today() + timedelta(days=1), time(23, 59), site_config().tz).isoformat()
    refused = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json={**body, "planned_at": tomorrow})
    problem = refused.get_json()
    assert refused.status_code == 409, problem
    assert "8 days before the planned infusion" in problem["detail"], problem
    assert list(problem["errors"]) == ["weight_id"], problem
    # the dose page, signing for tomorrow, still says why
    clinician = client_as("clinician")
    page = clinician.post(f"/patients/{pid}/prescriptions", data={
        "level": "2000000", "bag_ids": ",".join(str(b) for b in body["bag_ids"]), "weight_id": str(body["weight_id"]),
        "planned_on": (site_today() + timedelta(days=1)).isoformat(), "password": body["password"]})
    assert page.status_code == 409
    assert "8 days before the planned infusion" in _text(page.get_data(as_text=True))
    # nothing was signed: the same body without the planned day is signed
    signed = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers, json=body)
    assert signed.status_code == 201, signed.get_json()


def test_a_wrong_dose_level_still_names_the_dose_level(app, users):
    pid = _setup(app)
    api, headers = app.test_client(), _headers(app)
    body = dry_run_body(api, headers, pid)
    wrong = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers,
                     json={**body, "dose_level_cells_per_kg": "4000000"})
    assert wrong.status_code == 409 and list(wrong.get_json()["errors"]) == ["dose_level_cells_per_kg"], wrong.get_json()
