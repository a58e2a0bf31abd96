"""Review 15 of trial patients: an SLE-UC escalation decision back-dated to a day before the first cohort had been
infused and observed for the protocol's 10 days was signed, its record then saying the next dose level was chosen
before the toxicity it rests on could have been seen (seed 001: tolerance during the injection and the 10 days after)."""
from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from mscbatch.patients.models import EscalationDecisionRecord
from mscbatch.site import site_today
from tests.integration.test_review4_patients_support import (
    backdate_infusions,
    decide_escalation,
    five_infused,
)


def test_a_decision_cannot_be_dated_before_the_first_cohort_was_observed(app, users, db_session, client_as):
    pids = five_infused(db_session)
    backdate_infusions(db_session, days=20, patient_ids=pids[:4])  # patients 1-4 observed long ago
    backdate_infusions(db_session, days=11, patient_ids=pids[4:])  # patient 5 observed since yesterday
    db_session.commit()
    clinician = client_as("clinician")

    # the fifth patient was infused 11 days ago: a week ago they were within their 10 days of observation
    refused = decide_escalation(clinician, site_today() - timedelta(days=7))
    body = refused.get_data(as_text=True)
    assert refused.status_code == 409, body
    assert f"The decision cannot be dated {site_today() - timedelta(days=7)}" in body
    assert "only 4 of the 5 patients of stage &#39;initial&#39; have been infused and observed for 10 days" in body
    assert db_session.scalar(select(EscalationDecisionRecord)) is None
    db_session.rollback()

    # two weeks before today: the fifth patient was not even infused yet
    assert decide_escalation(clinician, site_today() - timedelta(days=14)).status_code == 409
    assert db_session.scalar(select(EscalationDecisionRecord)) is None
    db_session.rollback()

    # dated today (or on a day the cohort had been observed), the decision is signed
    accepted = decide_escalation(clinician, site_today() - timedelta(days=0))
    assert accepted.status_code == 302, accepted.get_data(as_text=True)
    assert db_session.scalar(select(EscalationDecisionRecord.decided_on)) == site_today()


def test_two_clinicians_signing_the_decision_at_once_record_one_and_the_other_is_told(app, users, db_session,
                                                                                      client_as):
    """On PostgreSQL both found no decision recorded and the second hit the unique index: a server error."""
    backdate_infusions(db_session, days=11, patient_ids=five_infused(db_session))
    db_session.commit()
    clients = [client_as("clinician") for _ in range(4)]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def attempt(n: int) -> None:
        barrier.wait()
        statuses.append(decide_escalation(clients[n], site_today()).status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(statuses) == [302, 409, 409, 409], statuses
    assert len(db_session.scalars(select(EscalationDecisionRecord)).all()) == 1
    db_session.rollback()
