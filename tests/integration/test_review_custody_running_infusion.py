"""Safety review of custody: a recall that arrives while a bag is being infused. The nurse stays at the bedside
on the infusion page; it said nothing, and the contaminated product kept running into the patient until someone
phoned. Any mismatch suspends the infusion (DOMAIN.md 8): the page now says STOP at once."""
from __future__ import annotations

from mscbatch.custody import infusions
from mscbatch.custody.models import Infusion
from mscbatch.recall import services as recalls
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag


def _running(app):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    ward = prescribed_bag(session)
    checked_and_confirmed(session, ward)
    infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband, bag_scan=ward.token,
                                        label_key=KEY)
    infusion_id = infusion.id
    session.close()
    return ward, infusion_id


def test_a_running_infusion_of_a_lot_recalled_since_its_start_says_stop_on_the_infusion_page(app, users, client_as):
    ward, infusion_id = _running(app)
    nurse = client_as("nurse")
    before = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert "STOP THE INFUSION" not in before
    session = app.extensions["mscbatch.db"].new_session()
    recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                         reason="late positive sterility culture", password=PASSWORD)
    session.close()
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert "STOP THE INFUSION NOW" in page and "RECALLED" in page


def test_an_ended_infusion_does_not_say_stop(app, users, client_as):
    ward, infusion_id = _running(app)
    session = app.extensions["mscbatch.db"].new_session()
    infusions.end_infusion(session, user(session, "nurse"), infusion_id, volume_ml="25")
    recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                         reason="late positive sterility culture", password=PASSWORD)
    assert session.get(Infusion, infusion_id).ended_at is not None
    session.close()
    page = client_as("nurse").get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert "STOP THE INFUSION" not in page


def test_a_running_infusion_of_an_expired_lot_recalled_since_says_stop(app, users, client_as):
    """A lot marked expired while one of its bags runs (an infusion started before the expiry may finish), then
    recalled: the lot stays "expired" (expired is final) and the running bag, infused, is not held, so neither the
    lot's status nor a hold said RECALLED, and the page kept silent. The recall covering the lot now says STOP."""
    from mscbatch.audit.context import use_case
    from mscbatch.lots.models import Lot

    ward, infusion_id = _running(app)
    session = app.extensions["mscbatch.db"].new_session()
    with use_case(session, user(session, "qa"), "test set-up: the lot passed its expiry during the infusion"):
        session.get(Lot, ward.lot_id).status = "expired"
    session.commit()
    page = client_as("nurse").get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert "STOP THE INFUSION" not in page  # an expiry alone does not stop a bag already running
    recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                         reason="late positive sterility culture", password=PASSWORD)
    assert session.get(Lot, ward.lot_id).status == "expired"
    session.close()
    page = client_as("nurse").get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert "STOP THE INFUSION NOW" in page and "RECALLED" in page
