"""Safety review of donor eligibility (DOMAIN.md section 3): each test is a way a donor who must not be eligible
became approved, or a screening input that was a server error, reproduced through the pages QA and the lab use."""
from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from mscbatch.donors import decisions
from mscbatch.donors.models import APPROVED, INELIGIBLE, Donor, EligibilityDecision
from mscbatch.signatures.models import Signature
from tests.conftest import PASSWORD, screening_seen
from tests.integration.test_donors import TODAY, count, page_of, register_through_the_form, screen, user


def _registered(client: Any, **overrides: str) -> int:
    response = register_through_the_form(client, **overrides)
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def test_a_consent_signed_after_the_collection_excludes_the_donation_and_qa_cannot_approve_it(
        app, client_as, db_session):
    """EU 2004/23/EC Art. 13: tissue is procured only once consent is given. The adipose collection is 3 days ago;
    a consent dated yesterday does not cover it (it was judged "consent: yes" and approved)."""
    tech, qa = client_as("technician"), client_as("qa")
    donor_id = _registered(tech, consent_date=(TODAY - timedelta(days=1)).isoformat())
    screen(db_session, user(db_session, "technician"), donor_id, "adipose_at_don")
    db_session.rollback()

    html = page_of(qa, donor_id)
    assert 'id="engine-status">ineligible<' in html
    assert "after the collection on" in html and "consent must be given before the tissue is procured" in html
    response = qa.post(f"/donors/{donor_id}/decision", data={
        **screening_seen(qa, donor_id), "decision-meaning": APPROVED,
                                                             "decision-password": PASSWORD})
    assert response.status_code == 409
    assert "Eligibility cannot be approved: the screening says ineligible" in response.get_data(as_text=True)
    assert count(db_session, EligibilityDecision) == 0


def test_a_consent_signed_before_or_on_the_collection_day_still_counts(app, client_as, db_session):
    tech, qa = client_as("technician"), client_as("qa")
    collection = TODAY - timedelta(days=3)
    donor_id = _registered(tech, consent_date=collection.isoformat())
    screen(db_session, user(db_session, "technician"), donor_id, "adipose_at_don")
    db_session.rollback()
    assert f"Signed informed consent: yes, dated {collection.isoformat()}." in page_of(qa, donor_id)
    response = qa.post(f"/donors/{donor_id}/decision", data={
        **screening_seen(qa, donor_id), "decision-meaning": APPROVED,
                                                             "decision-password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


def test_a_weight_that_would_round_up_to_the_50_kg_minimum_is_refused_not_rounded(app, client_as, db_session):
    """AT-DON excludes a weight below 50 kg: 49.95 kg was kept as 50.0 and the donor judged eligible."""
    tech = client_as("technician")
    response = register_through_the_form(tech, weight_kg="49.95")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="weight_kg-error">Weight: record it to 0.1 kg as weighed (49.95 cannot be kept' in html
    assert count(db_session, Donor) == 0
    donor_id = _registered(tech, weight_kg="62.50")  # the same value with a trailing zero is fine
    assert db_session.get(Donor, donor_id).weight_kg == 62.5
    db_session.rollback()


def test_a_weight_of_nan_is_refused_naming_the_field_not_a_server_error(app, client_as, db_session):
    tech = client_as("technician")
    for typed in ("NaN", "nan", "-NaN"):
        response = register_through_the_form(tech, weight_kg=typed)
        assert response.status_code == 422, (typed, response.status_code)
        assert 'id="weight_kg-error">Weight: a number of kilograms' in response.get_data(as_text=True)
    assert count(db_session, Donor) == 0


def test_two_qa_people_signing_opposite_decisions_at_once_leave_exactly_one_decision_in_force(
        app, client_as, db_session):
    """On PostgreSQL both signatures found no decision in force and both were kept: an "ineligible" signed by one QA
    person sat beside an "approved" by the other, and the donor gate read the newest (approved)."""
    tech = client_as("technician")
    donor_id = _registered(tech)
    screen(db_session, user(db_session, "technician"), donor_id, "adipose_at_don")
    db_session.rollback()
    clients = [client_as("qa" if n % 2 else "qa2") for n in range(8)]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def attempt(n: int) -> None:
        data = ({"decision-meaning": APPROVED} if n % 2 else
                {"decision-meaning": INELIGIBLE, "decision-comment": "Travel history makes me judge it ineligible."})
        seen = screening_seen(clients[n], donor_id)  # each read the page before any signed
        barrier.wait()
        statuses.append(clients[n].post(f"/donors/{donor_id}/decision",
                                        data={**seen, **data, "decision-password": PASSWORD}).status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert statuses.count(302) == 1, statuses
    assert sorted(set(statuses)) == [302, 409], statuses
    in_force = db_session.scalars(select(EligibilityDecision).where(
        EligibilityDecision.donor_id == donor_id, EligibilityDecision.superseded_at.is_(None))).all()
    assert len(in_force) == 1
    assert db_session.scalar(select(func.count()).select_from(Signature).where(
        Signature.entity_type == "donor_eligibility_decision")) == 1
    expected = "approved" if in_force[0].meaning == APPROVED else None
    db_session.rollback()
    if expected is None:
        assert db_session.get(Donor, donor_id).status == "ineligible"
    else:
        assert decisions.donor_gate(db_session, donor_id) == "approved"
    db_session.rollback()
