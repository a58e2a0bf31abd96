"""S45 (Part 11 reviewer): starting an infusion, recording a reaction and ending an infusion were audited with an
empty reason, while every other custody step says its "why" in words; and once a bag was infused, its bedside check
page showed only STOP, without the two signatures of the check it was started on, and the infusion page named the
two checkers without the time or the meaning of their signatures (Part 11 11.50). Now each of the three use cases
writes its reason on every audit event it makes, and both pages show the check's signatures (printed name, site
time with UTC, meaning), whatever the bag's state now. On SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.core.identifiers import din_shown
from mscbatch.core.numbers import plain
from mscbatch.custody import infusions
from mscbatch.custody.bedside import CHECKED_MEANING, CONFIRMED_MEANING
from mscbatch.custody.models import Infusion, TwoPersonCheck
from mscbatch.lots.models import Bag
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import allocation_given
from mscbatch.signatures.services import signatures_of
from mscbatch.site import local_and_utc
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, Ward, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _line(fragment: str) -> str:
    """A signature line as read: its tags gone (the `local` filter's spans), its spaces as one."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def _last_seq(session: Any) -> int:
    return session.scalar(select(func.max(AuditEvent.seq))) or 0


def _events_since(session: Any, seq: int) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)))


def _confirmed(app: Any) -> tuple[Ward, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        return ward, checked_and_confirmed(session, ward)  # nurse checks, nurse2 confirms


def _started_on_the_web(app: Any, client_as: Any) -> tuple[Ward, int, int, Any]:
    """A real start through the ward page: the check confirmed, then the nurse scans again and starts."""
    ward, check_id = _confirmed(app)
    nurse = client_as("nurse")
    started = nurse.post(f"/ward/bags/{ward.bag_id}/infusion", data={"wristband": ward.wristband, "bag": ward.token})
    assert started.status_code == 302, started.get_data(as_text=True)
    infusion_id = int(started.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    return ward, check_id, infusion_id, nurse


def _signature_lines(app: Any, check_id: int) -> list[str]:
    """The check's two signatures as the pages must say them: name, site time with UTC, meaning."""
    with app.extensions["mscbatch.db"].new_session() as session:
        signatures = signatures_of(session, session.get(TwoPersonCheck, check_id))
        assert [s.meaning for s in signatures] == [CHECKED_MEANING, CONFIRMED_MEANING]
        return [f"Signed: {s.printed_name}, {local_and_utc(s.signed_at)}, “{s.meaning}”" for s in signatures]


# ---- 1. the three use cases say why, on every audit event they write --------------------------------------------

def test_the_start_is_audited_with_its_reason_in_words(app):  # type: ignore[no-untyped-def]
    ward, check_id = _confirmed(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        before = _last_seq(session)
        infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        bag, patient = session.get(Bag, ward.bag_id), session.get(Patient, ward.patient_id)
        expected = (f"Infusion started: bag {din_shown(bag)} for patient {patient.code}, on confirmed bedside check "
                    f"#{check_id}")
        events = _events_since(session, before)
    touched = {(e.entity_type, e.action, e.field) for e in events}
    assert ("infusion", "insert", None) in touched and ("custody_event", "insert", None) in touched
    assert ("bag", "state", "status") in touched  # thawed -> infused
    assert [e.reason for e in events] == [expected] * len(events), [(e.entity_type, e.reason) for e in events]
    assert infusion.check_id == check_id


def test_a_reaction_and_the_end_are_audited_with_their_reasons(app):  # type: ignore[no-untyped-def]
    ward, _check_id = _confirmed(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        nurse = user(session, "nurse")
        infusion = infusions.start_infusion(session, nurse, ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        before = _last_seq(session)
        infusions.record_reaction(session, nurse, infusion.id, infusions.ReactionDetails("Fever", "2"))
        events = _events_since(session, before)
        assert {e.entity_type for e in events} == {"infusion_reaction"}
        assert [e.reason for e in events] == [f"Reaction recorded during infusion #{infusion.id}: grade 2 (moderate) "
                                              "Fever"] * len(events)

        bag = session.get(Bag, ward.bag_id)
        prescribed = allocation_given(session, bag.id).allocation.volume_ml
        before = _last_seq(session)
        why = "Pump alarm: the line was flushed and the bag run through faster"
        infusions.end_infusion(session, nurse, infusion.id, volume_ml=str(prescribed), reason=why, label_key=KEY)
        events = _events_since(session, before)
    touched = {(e.entity_type, e.field) for e in events}
    assert ("infusion", "ended_at") in touched and ("custody_event", None) in touched
    reasons = {e.reason for e in events}
    assert len(reasons) == 1, reasons
    reason = reasons.pop()
    assert reason.startswith(f"Infusion #{infusion.id} ended: {plain(prescribed)} mL of bag {din_shown(bag)} given")
    assert reason.endswith(f"Why: {why}")


def test_an_end_inside_the_prescription_says_how_it_ended(app):  # type: ignore[no-untyped-def]
    """With no reason typed (none needed), the end still says what happened."""
    ward, _check_id = _confirmed(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        nurse = user(session, "nurse")
        infusion = infusions.start_infusion(session, nurse, ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        with use_case(session, None, "test: started a day ago"):  # longer ago than the protocol's time
            infusion.started_at = infusion.started_at - timedelta(days=1)
        bag = session.get(Bag, ward.bag_id)
        prescribed = allocation_given(session, bag.id).allocation.volume_ml
        before = _last_seq(session)
        infusions.end_infusion(session, nurse, infusion.id, volume_ml=str(prescribed), label_key=KEY)
        events = _events_since(session, before)
    assert events and {e.reason for e in events} == {
        f"Infusion #{infusion.id} ended: {plain(prescribed)} mL of bag {din_shown(bag)} given."}


# ---- 2. the pages show the check's signatures after the infusion --------------------------------------------------

def test_the_check_page_shows_its_signatures_once_the_bag_is_infused(app, client_as):  # type: ignore[no-untyped-def]
    _ward, check_id, infusion_id, nurse = _started_on_the_web(app, client_as)
    lines = _signature_lines(app, check_id)
    answer = nurse.get(f"/ward/checks/{check_id}")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert ">STOP<" in page  # the bag now: never to be started again
    section = page.split('id="signed-check"', 1)[1].split("</section>", 1)[0]
    assert f"This check was used to start infusion #{infusion_id}" in _text(section)
    assert f'href="/ward/infusions/{infusion_id}"' in section
    shown = [_line(line) for line in re.findall(r'<p class="signature">(.*?)</p>', section, re.S)]
    assert shown == lines
    assert page.count('class="signature"') == 2  # once each, not also in a CONFIRMED box
    with app.extensions["mscbatch.db"].new_session() as session:
        started_at = session.get(Infusion, infusion_id).started_at
    assert local_and_utc(started_at) in _text(section) and " UTC)" in _text(section)

    # a reader of the check who may not open infusions (a clinician may: the link is there only for who may)
    clinician = client_as("clinician").get(f"/ward/checks/{check_id}")
    assert clinician.status_code in (200, 403)
    if clinician.status_code == 200:
        assert _text(clinician.get_data(as_text=True)).count("Signed: ") == 2


def test_the_check_page_still_shows_its_signatures_after_the_infusion_ended(app, client_as):  # type: ignore[no-untyped-def]
    ward, check_id, infusion_id, nurse = _started_on_the_web(app, client_as)
    with app.extensions["mscbatch.db"].new_session() as session:
        prescribed = allocation_given(session, ward.bag_id).allocation.volume_ml
    ended = nurse.post(f"/ward/infusions/{infusion_id}/end",
                       data={"volume_ml": plain(prescribed), "reason": "Given faster on the clinician's order"})
    assert ended.status_code == 302, ended.get_data(as_text=True)
    page = nurse.get(f"/ward/checks/{check_id}").get_data(as_text=True)
    section = page.split('id="signed-check"', 1)[1].split("</section>", 1)[0]
    shown = [_line(line) for line in re.findall(r'<p class="signature">(.*?)</p>', section, re.S)]
    assert shown == _signature_lines(app, check_id)
    assert f"This check was used to start infusion #{infusion_id}" in _text(section)


def test_the_infusion_page_shows_the_checks_two_signatures(app, client_as):  # type: ignore[no-untyped-def]
    _ward, check_id, infusion_id, nurse = _started_on_the_web(app, client_as)
    lines = _signature_lines(app, check_id)
    for reader in (nurse, client_as("clinician")):
        answer = reader.get(f"/ward/infusions/{infusion_id}")
        assert answer.status_code == 200
        page = answer.get_data(as_text=True)
        assert '<dd id="infusion-checkers">checked by Nurse, confirmed by Nurse2</dd>' in page
        signed = page.split('id="infusion-check-signatures"', 1)[1].split("</dd>", 1)[0]
        assert f"Bedside check #{check_id}" in _text(signed)
        shown = [_line(line) for line in re.findall(r'<p class="signature">(.*?)</p>', signed, re.S)]
        assert shown == lines
        assert all(" UTC)" in line for line in shown)
