"""S41, a nurse-reviewer on a ward tablet: (1) a running infusion the ward must stop now is said in a red banner at the
top of the ward page (patient, bag, a link to its infusion page) and "STOP" leads the page's title, in the page and in
the list's refresh; (2) a reaction of grade 3 or higher recorded on a running infusion says STOP THE INFUSION NOW and
call the clinician, in large words, leads to the End form, and flags the infusion on the ward list and banner (grade
5: it must be ended; it is not ended by the reaction, whose record has no volume); (3) the infusion page says the
least time to run it over before Save is refused, and the reason's field has a short label that its refusal names."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from mscbatch.custody import infusions
from mscbatch.custody.models import Infusion
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Patient
from mscbatch.site import local_parts
from tests.integration.test_s39_infusion_stop_watch import _recall, _running

pytestmark = pytest.mark.usefixtures("users")

REFRESH = "/ward/running"


def _text(html: str) -> str:
    """The words as read: tags out, spaces folded, none before a comma, colon or full stop."""
    return re.sub(r" ([,:.])", r"\1", " ".join(re.sub(r"<[^>]+>", " ", html).split()))


def _banner(page: str) -> str:
    found = re.search(r'<div id="running-banner".*?</div>', page, re.S)
    assert found, page[:3000]
    return found.group(0)


def _title(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.S)
    assert found
    return found.group(1).strip()


def _names(app: Any, ward: Any) -> tuple[str, str]:
    """The patient's code and the bag as the pages show it (DIN and check character)."""
    from mscbatch.web.templating import din_shown

    with app.extensions["mscbatch.db"].new_session() as session:
        bag = session.get(Bag, ward.bag_id)
        return session.get(Patient, ward.patient_id).code, _text(str(din_shown(bag)))


def _react(client: Any, infusion_id: int, grade: int) -> Any:
    return client.post(f"/ward/infusions/{infusion_id}/reactions",
                       data={"ctcae_term": "Infusion related reaction", "grade": str(grade),
                             "description": "rigors, hypotension"})


def _row(app: Any, infusion_id: int) -> Infusion:
    with app.extensions["mscbatch.db"].new_session() as session:
        row = session.get(Infusion, infusion_id)
        session.expunge_all()
        return row


def test_s41_no_banner_while_nothing_must_stop(app, client_as):  # type: ignore[no-untyped-def]
    _ward, _infusion_id = _running(app)
    page = client_as("nurse").get("/ward").get_data(as_text=True)
    banner = _banner(page)
    assert " hidden" in banner.split(">")[0] and 'role="alert"' not in banner
    assert "STOP" not in _text(banner)
    assert _title(page).startswith("Ward scanning")


def test_s41_a_recalled_running_bag_is_named_in_a_banner_at_the_top_and_in_the_title(app, client_as):  # type: ignore[no-untyped-def]
    ward, infusion_id = _running(app)
    code, bag = _names(app, ward)
    nurse = client_as("nurse")
    _recall(app, ward)
    page = nurse.get("/ward").get_data(as_text=True)
    assert _title(page).startswith("STOP · Ward scanning")
    banner = _banner(page)
    assert page.index('id="running-banner"') < page.index("<h1>Ward scanning</h1>")  # at the top, not below the fold
    assert page.count('id="running-banner"') == 1  # the list in the page does not carry it again
    assert 'role="alert"' in banner.split(">")[0]
    words = _text(banner)
    assert "STOP THE INFUSION NOW" in words and f"Patient {code}, bag {bag}" in words and "RECALLED" in words
    assert f'href="/ward/infusions/{infusion_id}"' in banner
    # the refresh's answer carries the banner too (js/ward-running.js puts it at the top)
    listed = nurse.get(REFRESH).get_data(as_text=True)
    assert f"Patient {code}, bag {bag}" in _text(_banner(listed))
    # QA reads the ward page too: the banner tells it to tell the nurse (QA may not open infusion pages)
    qa_page = client_as("qa").get("/ward").get_data(as_text=True)
    assert "STOP THE INFUSION NOW" in _text(_banner(qa_page))


@pytest.mark.parametrize("grade", [3, 4])
def test_s41_a_serious_reaction_on_a_running_infusion_says_stop_and_flags_the_ward(app, client_as, grade):  # type: ignore[no-untyped-def]
    ward, infusion_id = _running(app)
    code, bag = _names(app, ward)
    nurse = client_as("nurse")
    recorded = _react(nurse, infusion_id, grade)
    assert recorded.status_code == 302 and recorded.headers["Location"].endswith(f"/ward/infusions/{infusion_id}#reaction-stop")
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    flashed = _text(page)
    assert "Reaction recorded. STOP THE INFUSION NOW and call the clinician." in flashed
    assert "report it as a serious adverse event" in flashed
    section = re.search(r'<section[^>]*id="reaction-stop".*?</section>', page, re.S)
    assert section, page[:3000]
    words = _text(section.group(0))
    assert "STOP THE INFUSION NOW and call the clinician" in words and f"A grade {grade} reaction was recorded" in words
    assert 'href="#end"' in section.group(0)  # the End form, the next step
    assert 'id="end-plain" class="button big primary"' in page
    assert _row(app, infusion_id).ended_at is None  # interrupting is the nurse's act: the pump, then the End form

    ward_page = nurse.get("/ward").get_data(as_text=True)
    assert _title(ward_page).startswith("STOP · ")
    assert f"Patient {code}, bag {bag}: Grade {grade} reaction: stop the infusion." in _text(_banner(ward_page))
    listed = nurse.get(REFRESH).get_data(as_text=True)
    row = re.search(rf'<tr id="running-{infusion_id}" class="running-stop-row">(.*?)</tr>', listed, re.S)
    assert row and f"Grade {grade} reaction: stop the infusion, call the clinician." in _text(row.group(1))

    # ended: the STOP, the banner and the flag go
    ended = nurse.post(f"/ward/infusions/{infusion_id}/end",
                       data={"volume_ml": "10", "reason": f"stopped for a grade {grade} infusion reaction"})
    assert ended.status_code == 302
    after = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert 'id="reaction-stop"' not in after and 'id="serious-reaction-' in after  # the reaction stays flagged
    assert "STOP" not in _text(_banner(nurse.get("/ward").get_data(as_text=True)))


def test_s41_a_mild_reaction_does_not_say_stop(app, client_as):  # type: ignore[no-untyped-def]
    _ward, infusion_id = _running(app)
    nurse = client_as("nurse")
    recorded = _react(nurse, infusion_id, 2)
    assert recorded.headers["Location"].endswith("#reactions")
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert "Reaction recorded. Tell the clinician." in _text(page) and 'id="reaction-stop"' not in page
    assert "STOP" not in _text(_banner(nurse.get("/ward").get_data(as_text=True)))


def test_s41_grade_5_says_the_infusion_must_be_ended_and_stays_until_it_is(app, client_as):  # type: ignore[no-untyped-def]
    _ward, infusion_id = _running(app)
    clinician = client_as("clinician")
    recorded = _react(clinician, infusion_id, 5)
    assert recorded.status_code == 302
    page = clinician.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    words = _text(page)
    assert "It must be ended: record the volume given (End infusion)." in words  # the confirmation
    assert "A grade 5 reaction (death) was recorded. The infusion must be ended" in words  # the page's STOP
    assert _row(app, infusion_id).ended_at is None  # not ended by the reaction: the volume given is the nurse's to record
    assert "Grade 5 reaction (death): end the infusion." in _text(_banner(clinician.get("/ward").get_data(as_text=True)))


def test_s41_a_serious_reaction_on_an_ended_infusion_says_no_stop(app, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    _ward, infusion_id = _running(app)
    nurse = client_as("nurse")
    real = infusions.utcnow
    monkeypatch.setattr(infusions, "utcnow", lambda: real() + timedelta(hours=1))
    assert nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "25"}).status_code == 302
    monkeypatch.setattr(infusions, "utcnow", lambda: real() + timedelta(hours=2))
    recorded = _react(nurse, infusion_id, 4)
    assert recorded.headers["Location"].endswith("#reactions")
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert "Reaction recorded. Tell the clinician. Grade 3 or higher" in _text(page)
    assert 'id="reaction-stop"' not in page


@pytest.mark.infusion_duration
def test_s41_the_infusion_page_says_the_least_time_before_save(app, client_as):  # type: ignore[no-untyped-def]
    _ward, infusion_id = _running(app)
    nurse = client_as("nurse")
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    started = _row(app, infusion_id).started_at
    local, utc = local_parts(started + timedelta(minutes=24))  # this bag's share: 25 of 62.5 mL over 1 h
    said = re.search(r'<dd id="infusion-run-over">(.*?)</dd>', page, re.S)
    assert said, page[:3000]
    assert _text(said.group(1)) == f"at least 24 min: not before {local.split(' ', 1)[1]} ({utc})"
    assert '<label for="reason">Why (if different)</label>' in page
    assert "slow IV infusion: at least 24 min" in page  # the longer words, as the field's hint

    refused = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "25"})
    shown = refused.get_data(as_text=True)
    assert refused.status_code == 422
    summary = re.search(r'<div class="error-summary".*?</div>', shown, re.S)
    assert summary and 'href="#reason"' in summary.group(0)
    assert _text(summary.group(0)).count("Why (if different)") == 1  # named once, short
    assert "If the volume given differs" not in shown
