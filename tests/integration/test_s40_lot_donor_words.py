"""Donor words on the lot page (QA review s40, point 7): a positive entered by mistake is not simply "corrected by the
technician" (one recorded after QA's approval is corrected only by QA, signed; a technician is refused), and a
RELEASED lot whose donor was reopened does not say "release impossible until approved" but that its bags must not
be given until QA clears the donor again."""
from __future__ import annotations

import html
from typing import Any

from mscbatch.audit.context import use_case
from mscbatch.donors import services
from mscbatch.lots.models import Lot
from tests.integration.lot_factories import approved_adipose_donor, cryopreserved_lot
from tests.integration.test_donors import TODAY, db_session, user  # noqa: F401 (fixture)


def _released_lot(session: Any) -> tuple[int, int]:
    """A cryopreserved lot put in "released" directly (the release signing is not what is tested here)."""
    donor_id = approved_adipose_donor(session)
    lot_id, _bags = cryopreserved_lot(session, donor_id)
    with use_case(session, user(session, "qa"), "released (test set-up)"):
        session.get(Lot, lot_id).status = "released"
    session.rollback()
    return donor_id, lot_id


def test_s40_a_released_lot_of_a_reopened_donor_says_its_bags_must_not_be_given(app, users, client_as,
                                                                                  db_session):  # noqa: F811
    donor_id, lot_id = _released_lot(db_session)
    services.record_result(db_session, user(db_session, "technician"), donor_id, marker="cmv_igm", result="negative",
                           sample_date=TODAY, lab_reference="LATE-CMV")  # new information: approval reopened
    db_session.commit()
    page = html.unescape(client_as("qa").get(f"/lots/{lot_id}").get_data(as_text=True))
    assert 'id="pending-flag"' in page
    assert "the bags of this released lot must not be given until QA clears the donor again" in page
    assert "release impossible until approved" not in page


def test_s40_the_lot_page_says_who_corrects_a_late_positive(app, users, client_as, db_session):  # noqa: F811
    donor_id, lot_id = _released_lot(db_session)
    services.record_result(db_session, user(db_session, "technician"), donor_id, marker="anti_hiv_1_2",
                           result="positive", sample_date=TODAY, lab_reference="LATE-HIV")
    db_session.commit()
    page = html.unescape(client_as("qa").get(f"/lots/{lot_id}").get_data(as_text=True))
    assert 'id="ineligible-flag"' in page
    assert "a result recorded after QA's approval only by QA, signed (Correct (QA, signed); a technician is refused)" \
        in page
    assert "the technician corrects that result with a reason" not in page
