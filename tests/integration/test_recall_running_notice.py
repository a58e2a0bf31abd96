"""A recall reaching a bag still being infused says so on the prescribing clinician's home page, STOP first. Before,
the home page said "bag ... of lot ... was infused on <its start>" for an infusion still running (started, no end
recorded), followed by the generic advice to follow the patient up: read as an infusion over, it was not stopped.
Now the bag's words are "IS BEING INFUSED NOW (started <site time> (<UTC>)): STOP THE INFUSION NOW and follow the
patient up", under the ward's STOP banner; once the infusion is ended, "was infused on <its start>" as before."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest

from mscbatch.core.identifiers import din_shown
from mscbatch.custody import infusions
from mscbatch.custody.models import Infusion
from mscbatch.lots.models import Bag, Lot
from mscbatch.site import local_and_utc
from tests.conftest import PASSWORD
from tests.integration.test_custody_support import Ward, ward_bag
from tests.integration.test_recall_completion import start

pytestmark = pytest.mark.usefixtures("users")


def _words(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _notices(home: str) -> str:
    """The home page's section of recalls reaching the clinician's patients, as read (tags out)."""
    at = home.index('id="recall-notices"')
    return _words(home[at:home.index("</section>", at)])


def _started_through_the_ward(nurse: Any, ward: Ward) -> str:
    """The two-person check, its confirmation and the start, as the ward's pages do them: the infusion's page URL."""
    page = nurse.post("/ward/check", data={"wristband": ward.wristband, "bag": ward.token},
                      follow_redirects=True).get_data(as_text=True)
    assert ">MATCHES<" in page
    check_id = int(page.split("/ward/checks/")[1].split("/confirm")[0])
    assert nurse.post(f"/ward/checks/{check_id}/confirm", data={"second_username": "nurse2",
                                                                 "second_password": PASSWORD,
                                                                 "checker_password": PASSWORD}).status_code == 303
    started = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": ward.wristband, "bag": ward.token})
    assert started.status_code == 302 and "/ward/infusions/" in started.headers["Location"]
    return started.headers["Location"]


def test_a_recalled_bag_still_running_says_stop_now_on_the_prescribers_home_page(app, client_as):
    ward = ward_bag(app)
    nurse = client_as("nurse")
    infusion_url = _started_through_the_ward(nurse, ward)
    infusion_id = int(infusion_url.rsplit("/", 1)[-1])
    with app.extensions["mscbatch.db"].new_session() as session:
        bag = session.get(Bag, ward.bag_id)
        din, lot_number = din_shown(bag), session.get(Lot, ward.lot_id).lot_number
        started = local_and_utc(session.get(Infusion, infusion_id).started_at)
    recall_id = start(client_as("qa"), "lot", "#" + str(ward.lot_id))

    clinician = client_as("clinician")
    home = clinician.get("/").get_data(as_text=True)
    said = _notices(home)
    assert (f"Recall R-{recall_id}: for your patient" in said and
            f"bag {din} of lot {lot_number} IS BEING INFUSED NOW (started {started}): STOP THE INFUSION NOW and "
            "follow the patient up." in said), said
    assert "was infused on" not in said and "not infused" not in said
    # the ward's alarm, its words first in the item, with the way to the infusion's page
    item = home[home.index(f'data-recall="{recall_id}"'):]
    banner = item[:item.index("</div>")]
    assert 'class="stop-banner" role="alert"' in banner and "STOP THE INFUSION NOW" in banner
    assert f'href="/ward/infusions/{infusion_id}"' in banner
    assert item.index('class="stop-banner"') < item.index("IS BEING INFUSED NOW")

    # ended (on the system's STOP, with the volume given): an infusion that is over, said as before, no alarm
    ended = nurse.post(f"{infusion_url}/end", data={"volume_ml": "5", "stopped": "1"})
    assert ended.status_code == 302, ended.get_data(as_text=True)[:2000]
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Infusion, infusion_id).volume_reason == infusions.STOPPED_BY_SYSTEM
    home = clinician.get("/").get_data(as_text=True)
    said = _notices(home)
    assert f"bag {din} of lot {lot_number} was infused on {started}." in said, said
    assert "IS BEING INFUSED NOW" not in said and "STOP THE INFUSION NOW" not in said
    assert 'class="stop-banner"' not in home


def test_a_bag_only_sent_and_one_infused_before_keep_their_words(app, client_as):
    """No infusion running: no alarm, and a bag sent but not given still says so."""
    ward = ward_bag(app, state="received")
    recall_id = start(client_as("qa"), "lot", "#" + str(ward.lot_id))
    home = client_as("clinician").get("/").get_data(as_text=True)
    said = _notices(home)
    assert f"Recall R-{recall_id}" in said and "was sent to the ward (not infused)" in said
    assert "IS BEING INFUSED NOW" not in said and 'class="stop-banner"' not in home
