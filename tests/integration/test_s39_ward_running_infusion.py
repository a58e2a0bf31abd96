"""Review s39 (a ward nurse on a tablet): a bag being infused is "infused", no longer out on the ward, and dropped off
the ward page's list, so that a running infusion, above all one whose bag was recalled since, had no way back from the
ward page to its infusion page and its STOP THE INFUSION NOW. And an older bedside check page of that bag said "STOP.
Do not give this bag ... BEING INFUSED NOW ... Never start a bag twice" with the recall third, never "stop the running
infusion", and had no link to it. Both now lead with it, by the infusion page's own rule (custody.checks.stop_running)."""
from __future__ import annotations

import re

import pytest

from mscbatch.custody import infusions
from mscbatch.custody.models import Infusion
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Patient
from mscbatch.recall import services as recalls
from mscbatch.site import local_parts
from tests.conftest import PASSWORD
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _running(app):  # type: ignore[no-untyped-def]
    """A bag checked, confirmed and being infused: (ward, check id, infusion id), the session closed."""
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        check_id = checked_and_confirmed(session, ward)
        infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        return ward, check_id, infusion.id


def _recall(app, ward) -> None:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        recalls.start_recall(session, user(session, "qa"), scope="lot", target_id=ward.lot_id,
                             reason="late positive sterility culture", password=PASSWORD)


def _row(page: str, infusion_id: int) -> str:
    found = re.search(rf'<tr id="running-{infusion_id}"[^>]*>(.*?)</tr>', page, re.S)
    assert found, page[:4000]
    return found.group(1)


def _text(html: str) -> str:
    """What is read: the tags and the icons hidden from screen readers (aria-hidden) left out."""
    html = re.sub(r'<(\w+)[^>]*aria-hidden="true"[^>]*>.*?</\1>', " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_ward_page_lists_a_running_infusion_and_says_stop_it_once_its_lot_is_recalled(app, client_as):
    ward, _, infusion_id = _running(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        bag, code = session.get(Bag, ward.bag_id), session.get(Patient, ward.patient_id).code
        started = session.get(Infusion, infusion_id).started_at
        shown = f"{bag.din[:5]} {bag.din[5:7]} {bag.din[7:]} {bag.check_character}"
    nurse = client_as("nurse")
    page = nurse.get("/ward").get_data(as_text=True)
    row = _row(page, infusion_id)
    local, utc = local_parts(started)
    assert shown in row and code in row and local in row and utc in row  # started: local time, UTC beneath
    assert f'href="/ward/infusions/{infusion_id}"' in row
    assert "STOP" not in row and "Running." in _text(row)
    assert f'id="on-ward-{ward.bag_id}"' not in page  # no longer out on the ward: infused

    _recall(app, ward)
    page = nurse.get("/ward").get_data(as_text=True)
    row = _row(page, infusion_id)
    words = _text(row)
    assert "STOP THE INFUSION NOW" in words and "RECALLED" in words  # in words, not in colour alone
    assert f'href="/ward/infusions/{infusion_id}"' in row and "stop it" in words
    # the same words as the infusion page's, by the same rule
    infusion_page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    reasons = re.search(r'<ul class="failures" id="stop-reasons">(.*?)</ul>', infusion_page, re.S)
    assert reasons and all(_text(r) in words for r in re.findall(r"<li>(.*?)</li>", reasons.group(1)))
    # it comes before the bags out of the unit: the first thing the ward page lists
    assert page.index(f'id="running-{infusion_id}"') < page.index('id="h-on-ward"')


def test_an_ended_infusion_leaves_the_ward_list(app, client_as):
    ward, _, infusion_id = _running(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        infusions.end_infusion(session, user(session, "nurse"), infusion_id, volume_ml="25")
    page = client_as("nurse").get("/ward").get_data(as_text=True)
    assert f'id="running-{infusion_id}"' not in page and "No infusion is running now." in page


def test_the_old_check_page_of_a_running_recalled_bag_leads_with_stop_the_infusion_now(app, client_as):
    ward, check_id, infusion_id = _running(app)
    _recall(app, ward)
    response = client_as("nurse").get(f"/ward/checks/{check_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    content = page[page.index("<main"):]
    unflashed = re.sub(r'<div class="flash flash-success"[^>]*>.*?</div>', "", content, flags=re.S)  # "Signed in"
    assert _text(unflashed).startswith("STOP THE INFUSION NOW"), _text(unflashed)[:300]  # the page's first words
    lead = re.search(r'<section[^>]*id="running-lead".*?</section>', content, re.S)
    assert lead, content[:3000]
    assert content.index('id="running-lead"') < content.index('id="verdict"')  # before "STOP. Do not give this bag"
    assert content.index("STOP THE INFUSION NOW") < content.index("Never start a bag twice")
    words = _text(lead.group(0))
    assert "STOP THE INFUSION NOW" in words and "RECALLED" in words
    assert f'href="/ward/infusions/{infusion_id}"' in lead.group(0)
    assert "<title>STOP THE INFUSION NOW" in page
    assert 'data-focus-on-load' in lead.group(0) and page.count("data-focus-on-load") == 1


def test_the_old_check_page_of_a_running_bag_says_it_is_being_infused_with_a_link(app, client_as):
    ward, check_id, infusion_id = _running(app)
    page = client_as("nurse").get(f"/ward/checks/{check_id}").get_data(as_text=True)
    content = page[page.index("<main"):]
    lead = re.search(r'<section[^>]*id="running-lead".*?</section>', content, re.S)
    assert lead, content[:3000]
    words = _text(lead.group(0))
    assert "This bag is being infused now" in words and "STOP THE INFUSION" not in words
    assert f'href="/ward/infusions/{infusion_id}"' in lead.group(0)
    # the first words are the running infusion, not "never start a bag twice"
    assert content.index('id="running-lead"') < content.index("Never start a bag twice")
