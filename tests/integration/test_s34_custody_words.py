"""S34, custody words a nurse reads against the bag in her hand, and a reaction's onset in the future.

1. A bag named in a refusal or a STOP is named as its label shows it (identifiers.din_shown, "G1234 26 000001 A",
   the boxed check character last), never by the bare 13 characters: the start of a bag already infused, a course's
   lost bag in the bedside STOP (and the thaw and dispatch that share its words), the lost bag listed at the end of
   an infusion whose course falls below its band, and the custody pages' titles (the start form's hint keeps the 14 characters to type: test_ui_review7).
2. A reaction's onset a minute ahead of the server was accepted (two minutes of slack): refused now, naming the
   field, as every other "not in the future" time of the app.
3. The confirmation of a bedside check on a bag infused or discarded meanwhile said "bag X is discarded; 'bedside
   verified' cannot be recorded now": now the ward's words.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import din_shown
from mscbatch.custody import handover, infusions, services
from mscbatch.custody.checks import evaluate
from mscbatch.custody.infusions import ReactionDetails
from mscbatch.custody.models import Infusion, InfusionReaction
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.lots.models import Bag
from mscbatch.site import site_config
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag, token_of
from tests.time_words import utc_beside


def _started(session: Any) -> tuple[Any, Infusion]:
    """A thawed bag (the first of three prescribed: 50 + 50 + 25 x10^6 for 62.5 kg), checked, confirmed, started."""
    ward = prescribed_bag(session)
    checked_and_confirmed(session, ward)
    infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                        bag_scan=ward.token, label_key=KEY)
    return ward, infusion


def _bare_not_said(words: str, bag: Bag) -> None:
    assert din_shown(bag) in words and bag.din not in words, words


# ---- 1. bags named as their labels show them ---------------------------------------------------------------------

def test_a_bag_already_infused_is_named_as_its_label_shows_it(app, users, db_session):
    ward, _infusion = _started(db_session)
    with pytest.raises(Conflict) as refused:
        infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                 bag_scan=ward.token, label_key=KEY)
    assert "is being infused now" in refused.value.message
    _bare_not_said(refused.value.message, db_session.get(Bag, ward.bag_id))


def test_the_course_stop_names_the_lost_bag_as_its_label_shows_it(app, users, db_session):
    ward = prescribed_bag(db_session)  # bag 1 thawed; bags 2 and 3 allocated in the unit
    second, third = (db_session.get(Bag, bag_id) for bag_id in ward.other_bag_ids)
    tech = user(db_session, "technician")
    handover.dispatch(db_session, tech, second.id, courier="C", shipper="S", temperature_logger_id="T")
    handover.receive(db_session, user(db_session, "nurse"), second.id)
    handover.discard(db_session, user(db_session, "nurse"), ward.bag_id, reason="bag cracked at thaw")
    verdict = evaluate(db_session, ward.wristband, token_of(second), KEY)
    assert [f.code for f in verdict.failures] == ["course_short"]
    words = verdict.failures[0].message
    lost = db_session.get(Bag, ward.bag_id)
    assert f"bag {din_shown(lost)} (50 x10^6 cells of the dose) was DISCARDED" in words
    _bare_not_said(words, lost)
    with pytest.raises(Conflict) as thaw:  # the thaw says the bedside's words
        handover.thaw(db_session, user(db_session, "nurse"), second.id)
    _bare_not_said(thaw.value.message, lost)
    with pytest.raises(Conflict) as dispatch:  # and so does the dispatch of bag 3
        handover.dispatch(db_session, tech, third.id, courier="C", shipper="S", temperature_logger_id="T")
    _bare_not_said(dispatch.value.message, lost)


def test_the_end_of_an_infusion_below_the_band_names_the_lost_bag_as_its_label_shows_it(app, users, db_session):
    ward, infusion = _started(db_session)
    lost = db_session.get(Bag, ward.other_bag_ids[0])  # bag 2 broken in the shipper, discarded on the ward
    handover.dispatch(db_session, user(db_session, "technician"), lost.id, courier="C", shipper="S",
                      temperature_logger_id="T")
    handover.receive(db_session, user(db_session, "nurse"), lost.id)
    handover.discard(db_session, user(db_session, "nurse"), lost.id, reason="bag broken in the dry shipper")
    with pytest.raises(ValidationFailed) as refused:
        infusions.end_infusion(db_session, user(db_session, "nurse"), infusion.id, volume_ml="25")
    words = refused.value.message
    assert "BELOW the prescription's band" in words and f"bag {din_shown(lost)} discarded" in words
    _bare_not_said(words, lost)


def test_the_custody_pages_name_the_bag_as_its_label_shows_it(app, users, db_session, client_as):
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    bag = db_session.get(Bag, ward.bag_id)
    shown, bare = din_shown(bag), bag.din
    infusion = infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id,
                                        wristband=ward.wristband, bag_scan=ward.token, label_key=KEY)
    infusion_id = infusion.id
    db_session.commit()
    page = client_as("nurse").get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert f"<title>Infusion of bag {shown}" in page and bare not in page.split("</title>")[0]
    patient_page = client_as("clinician").get(f"/patients/{ward.patient_id}").get_data(as_text=True)
    assert f'<span class="din">{bag.din_display} <span class="k-box">' in patient_page

    returned = prescribed_bag(db_session, state="received")
    handover.return_bag(db_session, user(db_session, "nurse"), returned.bag_id, reason="infusion postponed: fever")
    back = db_session.get(Bag, returned.bag_id)
    back_shown, back_id = din_shown(back), back.id
    db_session.commit()
    qa = client_as("qa")
    assert f'<span class="visually-hidden"> bag {back_shown}</span>' in qa.get("/ward/returned").get_data(as_text=True)
    assess = qa.get(f"/ward/returned/{back_id}").get_data(as_text=True)
    assert f"<title>Assess returned bag {back_shown}" in assess


# ---- 2. a reaction's onset is never after now --------------------------------------------------------------------

def test_an_onset_a_minute_ahead_is_refused_naming_the_field(app, users, db_session, client_as):
    _ward, infusion = _started(db_session)
    nurse, infusion_id = user(db_session, "nurse"), infusion.id
    db_session.commit()
    ahead = datetime.now(UTC) + timedelta(seconds=60)
    with pytest.raises(ValidationFailed) as refused:
        infusions.record_reaction(db_session, nurse, infusion_id, ReactionDetails(
            "Fever", 1, onset_at=ahead.astimezone(timezone(timedelta(hours=5)))))  # a scanner app's own offset
    assert refused.value.field == "onset_at" and refused.value.message.startswith("Onset: ")
    assert "cannot begin in the future" in refused.value.message
    assert f"{utc_beside(ahead)} is after now" in refused.value.message  # its UTC time, not the +05:00 one
    db_session.rollback()  # SQLite: no transaction left open while the test client writes
    # the form: the next minute in the site's local time (0 to 60 seconds ahead) is refused too
    nurse_client = client_as("nurse")
    if datetime.now(UTC).second >= 55:  # the next minute typed must still be ahead when the server reads its clock
        time.sleep(6)
    local = (datetime.now(UTC) + timedelta(minutes=1)).astimezone(site_config().tz)
    answer = nurse_client.post(f"/ward/infusions/{infusion_id}/reactions", data={
        "ctcae_term": "Fever", "grade": "1", "onset_at": local.strftime("%Y-%m-%dT%H:%M")})
    assert answer.status_code == 422 and "cannot begin in the future" in answer.get_data(as_text=True)
    assert db_session.scalar(select(InfusionReaction.id)) is None
    # now (read before the server's now) is recorded
    infusions.record_reaction(db_session, nurse, infusion_id, ReactionDetails("Fever", 1, onset_at=datetime.now(UTC)))
    assert db_session.scalar(select(InfusionReaction.id)) is not None


# ---- 3. a check's confirmation refused on a bag changed meanwhile: ward words -------------------------------------

def test_a_confirmation_on_a_bag_discarded_meanwhile_is_refused_in_ward_words(app, users, db_session):
    ward = prescribed_bag(db_session)
    nurse = user(db_session, "nurse")
    handover.discard(db_session, nurse, ward.bag_id, reason="bag cracked at thaw")
    bag = db_session.get(Bag, ward.bag_id)
    with pytest.raises(Conflict) as refused, use_case(db_session, nurse):
        services.record_event(db_session, nurse, bag, "bedside_verified")
    words = refused.value.message
    assert words.startswith(f"The bedside check of bag {din_shown(bag)} cannot be confirmed. It was DISCARDED")
    assert "bedside verified" not in words and "is discarded;" not in words
