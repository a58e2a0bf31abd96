"""The bedside check's page at 3 a.m.: the second person signs with the patient's and the bag's identifiers in front
of them (inside the form, not a screen higher); a scan that names no bag says the bag was not identified, not "Do
not give this bag" (which read as a bag found unfit, to be sent back); the minutes left are beside the local time
they count down to."""
from __future__ import annotations

from tests.integration.test_custody_support import ward_bag


def test_the_second_person_signs_with_both_identifiers_in_the_form(app, users, client_as):
    ward = ward_bag(app)
    page = client_as("nurse").post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                                   follow_redirects=True).get_data(as_text=True)
    form = page[page.index('id="h-second"'):page.index("</form>", page.index('id="h-second"'))]
    aloud = form[form.index('id="read-aloud"'):form.index("</div>", form.index('id="read-aloud"'))]
    assert ward.wristband and "Wristband:" in aloud and 'data-din="' in aloud
    session = app.extensions["mscbatch.db"].new_session()
    try:
        from mscbatch.lots.models import Bag
        from mscbatch.patients.models import Patient

        bag = session.get(Bag, ward.bag_id)
        patient = session.query(Patient).filter_by(wristband_id=ward.wristband).one()
        assert patient.code in aloud and bag.din in aloud and bag.check_character in aloud
    finally:
        session.close()
    assert form.index('id="read-aloud"') < form.index('name="second_username"')
    assert '<a href="#h-second">A second person must now confirm: sign below</a>' in page  # s42: in #verdict-state


def test_a_scan_that_names_no_bag_says_the_bag_was_not_identified(app, users, client_as):
    ward = ward_bag(app)
    page = client_as("nurse").post("/ward/check", data={"wristband": ward.wristband, "bag": "X99992600"},
                                   follow_redirects=True).get_data(as_text=True)
    assert ">STOP<" in page and 'id="bag-not-identified"' in page
    assert "The bag was not identified: scan its label again." in page and "Do not give this bag." not in page


def test_the_minutes_left_sit_beside_the_local_time(app, users, client_as):
    ward = ward_bag(app, state="thawed")
    page = client_as("nurse").post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                                   follow_redirects=True).get_data(as_text=True)
    give = page[page.index('id="give-before"'):page.index("</dd>", page.index('id="give-before"'))]
    assert give.index("minutes left") < give.index('class="utc hint"'), give


def test_return_and_discard_sit_with_their_reason_not_among_the_routine_steps(app, users, client_as):
    """Discarding destroys a patient's dose: its button was white among Thaw and End infusion, its required reason
    hidden in a closed panel below ("Not saved: say why..." after the tap). It is now a red button inside the panel,
    after the reason, as is Return."""
    page = client_as("nurse").get("/ward").get_data(as_text=True)
    routine = page[page.index('<div class="ward-actions">'):page.index("</div>", page.index('<div class="ward-actions">'))]
    panel = page[page.index('<details class="ward-more"'):page.index("</details>")]
    assert 'value="discard"' not in routine and 'value="return"' not in routine and 'value="thaw"' in routine
    assert panel.index('name="reason"') < panel.index('value="return"') < panel.index('value="discard"')
    assert 'class="button big danger" formaction="/ward/event" name="action" value="discard"' in panel
