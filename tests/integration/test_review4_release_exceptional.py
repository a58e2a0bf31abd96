"""QA countersigns exactly the clinician's request for exceptional use that the review page showed (review 4).

Before: with two requests on one OOS lot, the button named the first request's patient while the approval signed
the latest request (another patient); the form named no request, and a new request was accepted while another one
waited. Now one request waits at a time (a new one withdraws the one waiting, with the reason in the audit trail),
the page shows its patient and justification beside the button, the form carries its id, and QA's signature is
refused (409, nothing signed) when that request is no longer the one waiting.
"""
from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.lots.models import Lot
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import LotDisposition
from mscbatch.release.queries import release_state
from mscbatch.signatures.services import signatures_of
from tests.conftest import PASSWORD
from tests.integration.test_release_support import (
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
    user,
)
from tests.integration.test_s37_release_seen import seen

WHY = "No alternative therapy; life-threatening flare, benefit outweighs the risk of the batch"
OTHER_WHY = "Refractory nephritis, no other lot in time: significant hazard to the patient otherwise"


def _oos_lot(app: Any, monkeypatch: Any) -> int:
    """An OOS UC-MSC lot, and the lupus patients SLE-UC-101 and SLE-UC-102 its requests name (an exceptional
    release names a registered patient whose protocol takes the lot's product: release.patient_refusal)."""
    seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        lot_id = cord_quarantine_lot(session)
        for code in ("SLE-UC-101", "SLE-UC-102"):
            lupus_patient_code(session, code=code)
        enter_panel(session, user(session, "technician"), lot_id, {"viability": ("65", "%")})  # an OOS batch
    return lot_id


def _ask(clinician: Any, lot_id: int, code: str, why: str = WHY) -> Any:
    return clinician.post(f"/release/lots/{lot_id}/exceptional", data={
        "exceptional-patient_code": code, "exceptional-justification": why, "exceptional-password": PASSWORD,
        **seen(clinician, lot_id)})


def _countersign(qa: Any, lot_id: int, request_id: Any = None) -> Any:
    data = {"action": "exceptional", "release-password": PASSWORD, **seen(qa, lot_id)}
    if request_id is not None:
        data["release-request_id"] = str(request_id)
    return qa.post(f"/release/lots/{lot_id}/release", data=data)


def _shown(page: str) -> tuple[str, int, str]:
    """(patient on the button, request id the form sends, the request block's text)."""
    button = re.search(r"Countersign exceptional release for ([A-Z0-9-]+)", page)
    sent = re.search(r'name="release-request_id" value="(\d+)"', page)
    block = re.search(r'id="exceptional-request">(.*?)</div>', page, re.S)
    assert button and sent and block, page
    return button.group(1), int(sent.group(1)), html.unescape(re.sub(r"<[^>]+>", "", block.group(1)))


def _state(app: Any, lot_id: int) -> tuple[str, str | None, list[LotDisposition]]:
    with app.extensions["mscbatch.db"].new_session() as session:
        lot = session.get(Lot, lot_id)
        rows = list(session.scalars(select(LotDisposition).where(LotDisposition.lot_id == lot_id)
                                    .order_by(LotDisposition.id)))
        session.expunge_all()
        return lot.status, release_state(session, lot).patient_code if lot else None, rows


def test_qa_countersigns_the_request_the_page_shows(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _oos_lot(app, monkeypatch)
    clinician = client_as("clinician")
    assert _ask(clinician, lot_id, "SLE-UC-101").status_code == 302
    own = html.unescape(clinician.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert "for patient SLE-UC-101 is waiting for QA's countersignature. A new request replaces it" in own
    second = _ask(clinician, lot_id, "SLE-UC-102", OTHER_WHY)  # a second patient, or a corrected code
    assert second.status_code == 302, second.get_data(as_text=True)[:1500]
    told = html.unescape(clinician.get(second.headers["Location"]).get_data(as_text=True))
    _status, _code, rows = _state(app, lot_id)
    first_id, second_id = rows[0].id, rows[1].id
    assert (f"It replaces request {first_id} for patient SLE-UC-101, which is withdrawn: QA can no longer "
            "countersign it.") in told
    qa = client_as("qa")
    page = html.unescape(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    patient, sent, block = _shown(page)
    assert (patient, sent) == ("SLE-UC-102", second_id)
    assert "for patient SLE-UC-102 only" in block and OTHER_WHY in block
    assert f"request {first_id} for exceptional use — WITHDRAWN: superseded by request {second_id}" in page
    dashboard = qa.get("/release").get_data(as_text=True)
    assert "for patient SLE-UC-102" in dashboard and "SLE-UC-101" not in dashboard
    answer = _countersign(qa, lot_id, sent)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:1500]
    status, released_for, rows = _state(app, lot_id)
    assert (status, released_for) == ("released", patient)
    assert [r.signed_at is not None for r in rows] == [False, True]
    with app.extensions["mscbatch.db"].new_session() as session:  # why the first one was withdrawn: in the trail
        reason = session.scalar(select(AuditEvent.reason).where(
            AuditEvent.entity_type == "release_disposition", AuditEvent.entity_id == str(second_id),
            AuditEvent.action == "insert"))
    assert reason is not None and f"supersedes request {first_id} for patient SLE-UC-101" in reason, reason


def test_a_request_superseded_after_qa_read_the_page_is_not_signed(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _oos_lot(app, monkeypatch)
    assert _ask(client_as("clinician"), lot_id, "SLE-UC-101").status_code == 302
    qa = client_as("qa")
    patient, read, _block = _shown(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert patient == "SLE-UC-101"
    assert _ask(client_as("clinician"), lot_id, "SLE-UC-102", OTHER_WHY).status_code == 302  # meanwhile
    refused = _countersign(qa, lot_id, read)
    assert refused.status_code == 409
    text = html.unescape(refused.get_data(as_text=True))
    assert (f"The request you countersigned (request {read}, for patient SLE-UC-101) is no longer waiting" in text
            and "for patient SLE-UC-102" in text and "Nothing was signed." in text), text
    status, released_for, rows = _state(app, lot_id)
    assert (status, released_for) == ("quarantine", None)
    assert all(r.signed_at is None for r in rows)
    with app.extensions["mscbatch.db"].new_session() as session:  # only the clinicians' signatures
        assert [len(signatures_of(session, session.get(LotDisposition, r.id))) for r in rows] == [1, 1]


def test_a_countersignature_naming_no_waiting_request_is_refused(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _oos_lot(app, monkeypatch)
    qa = client_as("qa")
    nothing = _countersign(qa, lot_id, 1)
    assert nothing.status_code == 409
    assert "There is no request 1 for exceptional release of lot" in html.unescape(nothing.get_data(as_text=True))
    assert _ask(client_as("clinician"), lot_id, "SLE-UC-101").status_code == 302
    unnamed = _countersign(qa, lot_id)  # a form that names no request
    assert unnamed.status_code == 409
    assert "The form does not say which clinician's request you countersign" in html.unescape(
        unnamed.get_data(as_text=True))
    garbage = _countersign(qa, lot_id, "1 OR 1=1")
    assert garbage.status_code == 409
    assert _state(app, lot_id)[:2] == ("quarantine", None)
    _patient, sent, _block = _shown(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert _countersign(qa, lot_id, sent).status_code == 302
    assert _state(app, lot_id)[:2] == ("released", "SLE-UC-101")
    again = _countersign(qa, lot_id, sent)  # signed already: no longer waiting
    assert again.status_code == 409 and "already released" in html.unescape(again.get_data(as_text=True))
