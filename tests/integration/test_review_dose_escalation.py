"""Safety review of the dose escalation: the investigators' choice of the next cohort's level (SLE-UC: 1 or 4
x10^6/kg after the first 5 patients at 2 x10^6/kg) weighs the toxicity observed after those 5 infusions. It used
to be accepted as soon as 5 prescriptions were signed, before any patient had been infused: the next 5 patients
could then be prescribed 4 x10^6/kg with no toxicity data at all."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.custody import infusions
from mscbatch.patients.models import EscalationDecisionRecord
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag
from tests.integration.test_review4_patients_support import backdate_infusions

SLE = "protocol-sle-uc"


def _decide(client):  # type: ignore[no-untyped-def]
    return client.post(f"/patients/cohorts/{SLE}/decision", data={
        "stage_id": "adapted", "chosen_cells_per_kg": "4000000", "decided_on": site_today().isoformat(),
        "toxicity_review": "CTCAE review of patients 1-5: no excessive toxicity", "password": PASSWORD})


def test_the_escalation_decision_waits_until_the_first_cohort_has_been_infused(app, users, client_as):
    session = app.extensions["mscbatch.db"].new_session()
    wards = [prescribed_bag(session) for _ in range(5)]  # five patients prescribed 2 x10^6/kg, bags thawed
    for ward in wards[:4]:
        checked_and_confirmed(session, ward)
        infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband, bag_scan=ward.token, label_key=KEY)
    session.close()
    clinician = client_as("clinician")
    assert "decision required before the next patient" in clinician.get(f"/patients/cohorts/{SLE}").get_data(
        as_text=True)
    refused = _decide(clinician)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 409, body
    # SLE-UC counts a patient once their first infusion is 10 days old (observation_days, review 4)
    assert ("Only 0 of the 5 patients of stage &#39;initial&#39; have been infused and observed for 10 days after "
            "their first infusion") in body and "1 more patient(s) must first be infused" in body
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalar(select(EscalationDecisionRecord)) is None
    checked_and_confirmed(session, wards[4])
    infusions.start_infusion(session, user(session, "nurse"), wards[4].bag_id, wristband=wards[4].wristband, bag_scan=wards[4].token,
                             label_key=KEY)
    backdate_infusions(session, days=10)  # the 10 days of observation have passed
    session.close()
    accepted = _decide(clinician)
    assert accepted.status_code == 302, accepted.get_data(as_text=True)
