"""Re-walk (session 38): a donor recall ended as invalid said "4 holds lifted" while its released lot stayed
RECALLED (a final state), so QA read the bags as usable again. The end's message now says which lots stay recalled
and that their bags cannot be given."""
from __future__ import annotations

from mscbatch.lots.models import Lot
from tests.conftest import PASSWORD
from tests.integration.test_recall_lookbacks import _infused_cord_donor
from tests.integration.test_recall_s33_lookback import _recall_the_donor


def test_s38_ending_a_recall_says_which_lots_stay_recalled(app, users, client_as):  # type: ignore[no-untyped-def]
    scene = _infused_cord_donor(app)
    recall_id = _recall_the_donor(app, scene["code"])
    with app.extensions["mscbatch.db"].new_session() as session:
        released = session.get(Lot, scene["released"])
        assert released.status == "recalled"
        number = released.lot_number
    qa = client_as("qa")
    ended = qa.post(f"/recalls/{recall_id}/end", data={"reason": "Started on the wrong report", "password": PASSWORD},
                    follow_redirects=True)
    page = ended.get_data(as_text=True)
    assert ended.status_code == 200
    assert f"Recall R-{recall_id} ended (signed); 4 bag holds lifted." in page, page[:3000]
    assert f"Lot {number} stays RECALLED: a recalled lot is never used again, and its bags cannot be given." in page
