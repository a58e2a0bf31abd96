"""Donor review (session 38): a second familial donor registered for a recipient whose first donor was found
ineligible (a sibling, then a parent) was never the patient's donor: familial_donor_of took the first registered,
so the patient page named the ineligible sibling and the dose found no bag of the approved parent. An approved donor
now comes before one that is not, in the one-patient and the many-patient reads alike."""
from __future__ import annotations

from mscbatch.donors import decisions
from mscbatch.donors.models import APPROVED
from mscbatch.patients.queries import directed_donors_of, familial_donor_of
from tests.conftest import PASSWORD
from tests.integration.patient_factories import SSC, patient
from tests.integration.test_donors import (
    db_session,  # noqa: F401 (fixture)
    screened_donor,
    user,
)

CODE = "SSC-BM-007"


def test_s38_the_approved_familial_donor_is_the_patients_donor(app, users, db_session):  # noqa: F811
    sibling = screened_donor(db_session, "marrow_ssc_bm", recipient_code=CODE, relationship="sibling",
                             results={"anti_hiv_1_2": "positive"})
    parent = screened_donor(db_session, "marrow_ssc_bm", recipient_code=CODE, relationship="parent")
    decisions.decide(db_session, user(db_session, "qa"), parent, APPROVED, PASSWORD)
    recipient = patient(db_session, user(db_session, "clinician"), protocol_id=SSC, code=CODE)
    assert sibling < parent
    assert familial_donor_of(db_session, recipient).id == parent
    assert directed_donors_of(db_session, [recipient])[recipient.id].id == parent
    db_session.rollback()


def test_s38_with_no_approved_donor_the_first_registered_stays_the_patients_donor(app, users, db_session):  # noqa: F811
    first = screened_donor(db_session, "marrow_ssc_bm", recipient_code=CODE, relationship="sibling")
    screened_donor(db_session, "marrow_ssc_bm", recipient_code=CODE, relationship="parent")
    recipient = patient(db_session, user(db_session, "clinician"), protocol_id=SSC, code=CODE)
    assert familial_donor_of(db_session, recipient).id == first
    assert directed_donors_of(db_session, [recipient])[recipient.id].id == first
    db_session.rollback()
