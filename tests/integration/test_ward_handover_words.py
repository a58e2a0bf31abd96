"""Ward hand-overs (review): a bag no longer prescribed is not thawed; a step out of order is refused in a nurse's
words, not the state machine's; a bag checked at the bedside while still frozen is not offered Start."""
from __future__ import annotations

import pytest

from mscbatch.core.states import BAG
from mscbatch.custody import handover, infusions
from mscbatch.custody.ward_words import STEPS, ward_refusal
from mscbatch.errors import Conflict
from mscbatch.lots.models import Bag
from mscbatch.patients.withdrawal import withdraw
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, check, checked_and_confirmed, prescribed_bag

JARGON = ("it cannot go to", "is dispatched;", "is received;", "is thawed;", "a final state")


# ---- 2. a bag whose prescription was withdrawn is not thawed ------------------------------------------------------

@pytest.mark.parametrize("state", ["received", "dispatched"])
def test_a_bag_of_a_withdrawn_patient_is_not_thawed_but_returned(app, users, db_session, state):
    ward = prescribed_bag(db_session, state=state)
    withdraw(db_session, user(db_session, "clinician"), PASSWORD, ward.patient_id, reason="consent withdrawn")
    nurse = user(db_session, "nurse")
    with pytest.raises(Conflict, match="DO NOT THAW .*no longer prescribed for anyone.*return it to the cell therapy "
                                       "unit"):
        handover.thaw(db_session, nurse, ward.bag_id, location="Ward 3")
    db_session.rollback()
    assert db_session.get(Bag, ward.bag_id).status == state  # still frozen: it can go back to stock
    handover.return_bag(db_session, nurse, ward.bag_id, reason="patient withdrawn from the trial")
    assert db_session.get(Bag, ward.bag_id).status == "returned"


# ---- 3. refusals in a nurse's words --------------------------------------------------------------------------------

def test_every_ward_step_refused_by_the_bag_state_is_said_in_nurse_words():
    for current in BAG.states:
        for target in STEPS:
            if target in BAG.transitions[current]:
                continue  # allowed (or refused for the role only): not a sequence refusal
            words = ward_refusal("X999926000005", current, target)
            assert words is not None, (current, target)
            assert "X999926000005" in words and not any(j in words for j in JARGON), words


def test_other_refused_moves_keep_the_generic_words():
    assert ward_refusal("X", "dispatched", "dispatched") is None
    assert ward_refusal("X", "received", "stored") is None


def test_thaw_before_receipt_says_receive_it_first(app, users, db_session):
    ward = prescribed_bag(db_session, state="dispatched")
    with pytest.raises(Conflict) as refused:
        handover.thaw(db_session, user(db_session, "nurse"), ward.bag_id)
    assert "Its arrival on the ward has not been recorded: receive it first" in refused.value.message
    assert not any(j in refused.value.message for j in JARGON)


def test_a_thawed_bag_cannot_be_returned_and_is_discarded_instead(app, users, db_session):
    ward = prescribed_bag(db_session)
    with pytest.raises(Conflict) as refused:
        handover.return_bag(db_session, user(db_session, "nurse"), ward.bag_id, reason="not needed")
    assert "A thawed bag cannot go back to the unit" in refused.value.message
    assert "discard it on the ward page" in refused.value.message


def test_receipt_of_a_bag_not_sent_says_the_unit_has_not_sent_it(app, users, db_session):
    ward = prescribed_bag(db_session, state="allocated")
    with pytest.raises(Conflict) as refused:
        handover.receive(db_session, user(db_session, "nurse"), ward.bag_id)
    assert "The unit has not recorded sending this bag" in refused.value.message


def test_the_ward_page_says_the_refusal_in_nurse_words(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="dispatched")
    page = client_as("nurse").post("/ward/event", data={"bag": ward.token, "action": "thaw"})
    html = page.get_data(as_text=True)
    assert page.status_code == 409 and "receive it first" in html and "it cannot go to" not in html


# ---- 4. a bag checked while still frozen ----------------------------------------------------------------------------

def test_a_frozen_bag_matches_with_a_thaw_note_and_its_start_is_refused_in_plain_words(app, users, db_session):
    ward = prescribed_bag(db_session, state="received")
    result = check(db_session, ward)
    assert result.matches and any(note.startswith("Still frozen: thaw this bag") for note in result.notes)
    checked_and_confirmed(db_session, ward)
    with pytest.raises(Conflict, match="Thaw the bag first"):
        infusions.start_infusion(db_session, user(db_session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                 bag_scan=ward.token, label_key=KEY)
    db_session.rollback()
    assert db_session.get(Bag, ward.bag_id).status == "received"


def test_a_thawed_bag_has_no_frozen_note(app, users, db_session):
    result = check(db_session, prescribed_bag(db_session))
    assert result.matches and not any("frozen" in note for note in result.notes)


def test_the_confirmed_check_of_a_frozen_bag_offers_no_start(app, users, db_session, client_as):
    ward = prescribed_bag(db_session, state="received")
    check_id = checked_and_confirmed(db_session, ward)
    html = client_as("nurse").get(f"/ward/checks/{check_id}").get_data(as_text=True)
    assert "Two-person check confirmed" in html and "Still frozen" in html
    assert 'id="start-infusion"' not in html and 'id="thaw-first"' in html
    handover.thaw(db_session, user(db_session, "nurse"), ward.bag_id, location="Ward 3")
    html = client_as("nurse").get(f"/ward/checks/{check_id}").get_data(as_text=True)
    assert 'id="start-infusion"' in html
