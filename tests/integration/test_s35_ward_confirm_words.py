"""Review s35 (nurse journey): after a wrong password for the second person, a red "Not saved" sat above a huge
green "MATCHES - This bag is for this patient" with nothing in the verdict saying that nothing was signed; the
"Read aloud" checklist named the patient's code but not the wristband ID printed on the band; the end form's label
read "Volume infused: mL"; the reaction onset's hint said "Local time" without naming the zone."""
from __future__ import annotations

import re
from html import unescape

import pytest

from mscbatch.custody import infusions
from mscbatch.patients.models import Patient
from mscbatch.site import site_config
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, ward_bag

pytestmark = pytest.mark.usefixtures("users")

NOT_CONFIRMED = "NOT CONFIRMED YET: nothing was signed."


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def _checked(app, client_as):  # type: ignore[no-untyped-def]
    ward = ward_bag(app)
    nurse = client_as("nurse")
    posted = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token})
    assert posted.status_code == 303
    url = posted.headers["Location"]
    return ward, nurse, url, int(url.rstrip("/").rsplit("/", 1)[1])


def _verdict(page: str) -> str:
    start = page.index('class="verdict verdict-matches"')
    return page[start:page.index("</section>", start)]


def test_a_refused_confirmation_says_not_confirmed_yet_in_the_verdict_itself(app, client_as):
    _ward, nurse, url, check_id = _checked(app, client_as)
    fresh = nurse.get(url).get_data(as_text=True)
    assert ">MATCHES<" in fresh and NOT_CONFIRMED not in fresh  # nothing refused yet: the usual words

    refused = nurse.post(f"/ward/checks/{check_id}/confirm", data={
        "second_username": "nurse2", "second_password": "not-the-password", "checker_password": PASSWORD})
    page = refused.get_data(as_text=True)
    assert refused.status_code in (401, 403, 409, 422) and "Not saved" in page
    verdict = _verdict(page)
    assert ">MATCHES<" in verdict  # the check's result stays
    note = re.search(r'<p class="verdict-note" id="not-confirmed-yet">(.*?)</p>', verdict, re.S)
    assert note is not None, verdict
    words = _text(note.group(1)).lstrip("\u26a0 ")
    assert words.startswith(NOT_CONFIRMED) and "The second person types their user name and password again" in words
    # right under the verdict's words, before the bag's facts
    assert verdict.index('id="not-confirmed-yet"') < verdict.index('class="facts verdict-facts"')
    assert verdict.index(">MATCHES<") < verdict.index('id="not-confirmed-yet"')

    missing = nurse.post(f"/ward/checks/{check_id}/confirm", data={"second_username": "nurse2"})
    assert missing.status_code == 422 and NOT_CONFIRMED in _text(_verdict(missing.get_data(as_text=True)))

    confirmed = nurse.post(f"/ward/checks/{check_id}/confirm", data={
        "second_username": "nurse2", "second_password": PASSWORD, "checker_password": PASSWORD},
        follow_redirects=True).get_data(as_text=True)
    assert "Two-person check confirmed" in confirmed and NOT_CONFIRMED not in confirmed


def test_the_read_aloud_checklist_gives_the_wristband_id_printed_on_the_band(app, client_as):
    ward, nurse, url, _check_id = _checked(app, client_as)
    with app.extensions["mscbatch.db"].new_session() as session:
        row = session.get(Patient, ward.patient_id)
        band, code = row.wristband_id, row.code
    page = nurse.get(url).get_data(as_text=True)
    aloud = page[page.index('id="read-aloud"'):]
    aloud = _text(aloud[:aloud.index("</div>")])
    assert f"Wristband: {band} · patient {code} (" in aloud, aloud


def _infusion(app, client_as):  # type: ignore[no-untyped-def]
    ward = ward_bag(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        checked_and_confirmed(session, ward)
        infusion_id = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                               bag_scan=ward.token, label_key=KEY).id
    return client_as("nurse"), f"/ward/infusions/{infusion_id}"


def test_the_end_form_says_volume_infused_in_ml_and_its_refusals_say_the_field_once(app, client_as):
    nurse, url = _infusion(app, client_as)
    page = nurse.get(url).get_data(as_text=True)
    assert re.search(r'<label for="volume_ml">Volume infused \(mL\)</label>', page), page[page.find('id="end"'):][:600]
    assert "Volume infused: mL" not in page

    empty = nurse.post(f"{url}/end", data={"volume_ml": ""})
    body = empty.get_data(as_text=True)
    assert empty.status_code == 422 and ">Volume infused: give the mL given.</a>" in body
    assert "Volume infused (mL)</a>" not in body
    wrong = nurse.post(f"{url}/end", data={"volume_ml": "a lot"}).get_data(as_text=True)
    assert ">Volume infused: give a number of mL, e.g. 20.5.</a>" in wrong and "Volume infused (mL)</a>" not in wrong
    assert re.search(r'<label for="volume_ml">Volume infused \(mL\)</label>', wrong)


def test_the_reaction_onset_hint_names_the_site_zone(app, client_as):
    nurse, url = _infusion(app, client_as)
    page = _text(nurse.get(url).get_data(as_text=True))
    with app.app_context():
        zone = site_config().tz.key
    assert f"Local time, {zone}. Empty: now." in page, page[page.find("Onset"):][:300]
