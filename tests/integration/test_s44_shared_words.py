"""Words one helper now gives to every place that says them (session 44): the protocol's short name on the patients
list, and the dose level refusal on the prescription form as on the dose page."""
from __future__ import annotations

import html
import re

from sqlalchemy import func, select

from mscbatch.patients.models import Prescription
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user


def _hidden(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input[^>]*?name="([^"]+)"[^>]*?type="hidden"[^>]*?value="([^"]*)"', page))


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split()))


def test_the_patients_list_names_the_protocol_as_users_see_it(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    code = patient(session, user(session, "clinician"), code="SLE-UC-101").code
    session.close()
    page = client_as("clinician").get("/patients").get_data(as_text=True)
    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{code}(?:(?!</tr>).)*</tr>", page, re.S)
    assert row, page
    cell = re.search(r'data-label="Protocol">([^<]*)<', row.group(0))
    assert cell and cell.group(1) == "SLE-UC", row.group(0)


def test_a_prescription_sent_with_a_level_that_is_not_a_number_is_refused_naming_the_levels(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech))
    pid = patient(session, clin).id
    session.close()
    client = client_as("clinician")
    form = _hidden(client.get(f"/patients/{pid}/dose").get_data(as_text=True))
    refused = client.post(f"/patients/{pid}/prescriptions", data={**form, "level": "2e6abc", "password": PASSWORD})
    assert refused.status_code == 422, refused.status_code
    assert "Dose level: 2e6abc is not one of this protocol's dose levels (1, 2, 4 x10^6 cells/kg)." in _text(refused)
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalar(select(func.count()).select_from(Prescription)) == 0  # nothing signed
    session.close()
