"""Session 45 (Part 11 review): the donor details' correction form is not offered for a donor whose screening QA
signed. The link was hidden, but the form's own address showed an editable form whose save was then refused
(409): an editable form for a locked record. It now goes back to the donor page, saying why."""
# ruff: noqa: F811 (db_session is the imported fixture, named as a parameter by each test)
from __future__ import annotations

import html as html_text

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from tests.integration.lot_factories import approved_adipose_donor
from tests.integration.test_donors import db_session  # noqa: F401 (db_session: fixture)


def test_the_correction_form_of_a_signed_donor_sends_back_to_its_page_with_the_reason(app, users, client_as,
                                                                                      db_session):
    donor_id = approved_adipose_donor(db_session)
    db_session.rollback()
    tech = client_as("technician")  # its sign-in is audited: counted after it
    events = db_session.scalar(select(func.count()).select_from(AuditEvent))
    db_session.rollback()
    response = tech.get(f"/donors/{donor_id}/edit")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/donors/{donor_id}")
    page = html_text.unescape(tech.get(f"/donors/{donor_id}").get_data(as_text=True))
    assert "is locked: QA signed 'Donor eligibility approved'" in page
    assert "Its details can no longer be corrected." in page
    assert 'class="donor-form"' not in page
    assert db_session.scalar(select(func.count()).select_from(AuditEvent)) == events  # a look changes nothing


def test_a_donor_still_in_screening_keeps_its_correction_form(app, users, client_as, db_session):
    from tests.integration.test_donors import screened_donor

    donor_id = screened_donor(db_session, "marrow_ssc_bm")
    db_session.rollback()
    response = client_as("technician").get(f"/donors/{donor_id}/edit")
    assert response.status_code == 200
    assert 'class="donor-form"' in response.get_data(as_text=True)
