"""Tablet walkthrough, session 33: a start refused for WRONG BAG showed "STOP - Do not give this bag" beside the
bag whose check was being started, the right bag: a tired nurse reads "do not give the right bag". The STOP screen
now shows the bag in her hand, the one not to give; the words still name both."""
from __future__ import annotations

from mscbatch.lots.models import Bag
from tests.integration.test_review4_custody_start_scan import _dins, _two_thawed_bags


def _bag_row(html: str) -> str:
    return html.split("<dt>Bag</dt>", 1)[1].split("</dd>", 1)[0]


def test_the_wrong_bag_stop_screen_shows_the_bag_in_hand(app, users, db_session, client_as):
    first, second = _two_thawed_bags(db_session)
    din_a, din_b = _dins(db_session, first, second)
    nurse = client_as("nurse")
    url = f"/ward/bags/{first.bag_id}/infusion"
    nurse.post(url, data={"wristband": first.wristband, "bag": second.token})
    html = nurse.get(url).get_data(as_text=True)
    assert ">STOP<" in html and "WRONG BAG" in html
    shown = _bag_row(html)
    bag_b = db_session.get(Bag, second.bag_id)
    db_session.rollback()
    assert din_b[-6:] in shown, shown  # the sequence: what tells two bags of one lot apart
    assert din_a[-6:] not in shown, shown  # not the checked bag: that one may still be given

    # a refusal that is not about the bag in hand (a wrong wristband) keeps the started bag on the screen
    nurse.post(url, data={"wristband": "WB-NOBODY", "bag": first.token})
    shown = _bag_row(nurse.get(url).get_data(as_text=True))
    assert din_a[-6:] in shown and bag_b.din[-6:] not in shown, shown
