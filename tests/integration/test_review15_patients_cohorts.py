"""Review 15 of trial patients: an SLE-UC escalation decision back-dated to a day before the first cohort had been
infused and observed for the protocol's 10 days was signed, its record then saying the next dose level was chosen
before the toxicity it rests on could have been seen (seed 001: tolerance during the injection and the 10 days after)."""
from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from mscbatch.custody import bedside, handover, infusions
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.models import EscalationDecisionRecord
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_custody_support import KEY, token_of
from tests.integration.test_review4_patients_support import backdate_infusions

SLE = "protocol-sle-uc"


def _decide(client, decided_on):  # type: ignore[no-untyped-def]
    return client.post(f"/patients/cohorts/{SLE}/decision", data={
        "stage_id": "adapted", "chosen_cells_per_kg": "4000000", "decided_on": decided_on.isoformat(),
        "toxicity_review": "CTCAE review of patients 1-5: no excessive toxicity", "password": PASSWORD})


def _five_infused(db_session) -> list[int]:  # type: ignore[no-untyped-def]
    """The first SLE-UC cohort: 5 patients at 2 x10^6/kg, each infused (today)."""
    tech, clin, nurse = user(db_session, "technician"), user(db_session, "clinician"), user(db_session, "nurse")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=20, cells=70_000_000)
    pids = []
    for _ in range(5):
        row = patient(db_session, clin)
        pids.append(row.id)
        rx = prescriptions.prescribe(db_session, clin, PASSWORD, row.id)
        bag = db_session.get(Bag, int(rx.calculation["draws"][0]["bag_id"]))
        handover.dispatch(db_session, tech, bag.id, courier="C", shipper="S", temperature_logger_id="T")
        handover.receive(db_session, nurse, bag.id, scan=token_of(bag))
        handover.thaw(db_session, nurse, bag.id, scan=token_of(bag))
        check = bedside.bedside_check(db_session, nurse, wristband=row.wristband_id, bag_scan=token_of(bag),
                                      label_key=KEY)
        bedside.confirm_second_person(db_session, nurse, check.check_id, username="nurse2", password=PASSWORD,
                                      checker_password=PASSWORD, label_key=KEY)
        infusions.start_infusion(db_session, nurse, bag.id, wristband=row.wristband_id, bag_scan=token_of(bag),
                                 label_key=KEY)
    return pids


def test_a_decision_cannot_be_dated_before_the_first_cohort_was_observed(app, users, db_session, client_as):
    pids = _five_infused(db_session)
    backdate_infusions(db_session, days=20, patient_ids=pids[:4])  # patients 1-4 observed long ago
    backdate_infusions(db_session, days=11, patient_ids=pids[4:])  # patient 5 observed since yesterday
    db_session.commit()
    clinician = client_as("clinician")

    # the fifth patient was infused 11 days ago: a week ago they were within their 10 days of observation
    refused = _decide(clinician, site_today() - timedelta(days=7))
    body = refused.get_data(as_text=True)
    assert refused.status_code == 409, body
    assert f"The decision cannot be dated {site_today() - timedelta(days=7)}" in body
    assert "only 4 of the 5 patients of stage &#39;initial&#39; have been infused and observed for 10 days" in body
    assert db_session.scalar(select(EscalationDecisionRecord)) is None
    db_session.rollback()

    # two weeks before today: the fifth patient was not even infused yet
    assert _decide(clinician, site_today() - timedelta(days=14)).status_code == 409
    assert db_session.scalar(select(EscalationDecisionRecord)) is None
    db_session.rollback()

    # dated today (or on a day the cohort had been observed), the decision is signed
    accepted = _decide(clinician, site_today() - timedelta(days=0))
    assert accepted.status_code == 302, accepted.get_data(as_text=True)
    assert db_session.scalar(select(EscalationDecisionRecord.decided_on)) == site_today()


def test_two_clinicians_signing_the_decision_at_once_record_one_and_the_other_is_told(app, users, db_session,
                                                                                      client_as):
    """On PostgreSQL both found no decision recorded and the second hit the unique index: a server error."""
    backdate_infusions(db_session, days=11, patient_ids=_five_infused(db_session))
    db_session.commit()
    clients = [client_as("clinician") for _ in range(4)]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def attempt(n: int) -> None:
        barrier.wait()
        statuses.append(_decide(clients[n], site_today()).status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(statuses) == [302, 409, 409, 409], statuses
    assert len(db_session.scalars(select(EscalationDecisionRecord)).all()) == 1
    db_session.rollback()
