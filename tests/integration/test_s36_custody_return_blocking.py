"""Session 36 (custody): a nurse returning a bag the unit never sent is told where it is at once (still at the
cell therapy unit), not first asked for a reason she would type in vain."""
from __future__ import annotations

import html as markup

from tests.integration.test_custody_support import prescribed_bag


def test_a_bag_never_sent_is_told_where_it_is_before_any_reason_is_asked(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="allocated")
    db_session.commit()
    refused = client_as("nurse").post("/ward/event", data={"bag": ward.token, "action": "return"})
    page = markup.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 409, page
    assert "It is still at the cell therapy unit" in page and "Say why the bag is returned." not in page


def test_a_bag_on_the_ward_returned_without_a_reason_is_still_asked_for_it(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="received")
    db_session.commit()
    refused = client_as("nurse").post("/ward/event", data={"bag": ward.token, "action": "return"})
    assert refused.status_code == 422 and "Say why the bag is returned." in refused.get_data(as_text=True)
