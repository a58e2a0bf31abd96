"""Tablet walkthrough, session 33: the page of a returned bag on hold (a recall) or expired offered "Back into
stock" as if it could be, and said no only once QA had read the logger, written the rationale and signed. It says
so at the top now, in the words of the refusal."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from mscbatch.database import utcnow
from mscbatch.lots.models import Bag
from tests.integration.test_return_assessment import returned


def test_the_page_of_an_expired_returned_bag_says_it_cannot_go_back_before_anything_is_typed(app, users, db_session,
                                                                                              client_as):
    ward = returned(db_session)
    qa = client_as("qa")
    assert 'id="unfit"' not in qa.get(f"/ward/returned/{ward.bag_id}").get_data(as_text=True)  # fit: no warning
    with db_session.begin():
        db_session.execute(update(Bag.__table__).where(Bag.__table__.c.id == ward.bag_id)
                           .values(expires_at=utcnow() - timedelta(minutes=1)))
    page = qa.get(f"/ward/returned/{ward.bag_id}").get_data(as_text=True)
    warning = page.split('id="unfit"', 1)[1].split("</p>", 1)[0]
    assert "Cannot go back into stock:" in warning and "it expired on" in warning and "Discard it." in warning
    assert page.index('id="unfit"') < page.index('id="assess-form"')  # before the form, not after signing
