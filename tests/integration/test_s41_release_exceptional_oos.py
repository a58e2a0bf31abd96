"""An exceptionally released lot's OOS is confirmed without a recall (s41).

Before: QA's countersignature of an exceptional release (exceptional use of an OOS batch for one named patient,
documented and signed: DOMAIN.md section 5, EU GMP Part IV 11.5) left the lot's OOS open for good, and its only
honest conclusion, "confirmed", recalled the released lot ("Confirm OOS and recall the lot (sign)"), putting the
named patient's bags on hold. Now the OOS the lot was released for is confirmed as "confirmed — lot supplied under
exceptional release N for patient X", signed with that reference, audited, and the lot stays released for its
patient; the OOS leaves the dashboard's open investigations.
"""
from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.lots.models import Lot
from mscbatch.recall.models import Recall
from mscbatch.release import oos as oos_service
from mscbatch.release.models import LotDisposition, OosInvestigation
from mscbatch.release.queries import release_state
from mscbatch.signatures.services import signatures_of, verify
from tests.conftest import PASSWORD
from tests.integration.test_review4_release_exceptional import _ask, _countersign, _oos_lot
from tests.integration.test_s37_release_seen import seen

INVESTIGATION = "Viability 65 % confirmed by the phase II investigation; no laboratory cause found."


def _released_exceptionally(app: Any, monkeypatch: Any, client_as: Any) -> tuple[int, int]:
    lot_id = _oos_lot(app, monkeypatch)
    assert _ask(client_as("clinician"), lot_id, "SLE-UC-101").status_code == 302
    qa = client_as("qa")
    with app.extensions["mscbatch.db"].new_session() as session:
        request_id = session.scalar(select(LotDisposition.id).where(LotDisposition.lot_id == lot_id))
    answer = _countersign(qa, lot_id, request_id)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:1500]
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).status == "released"
        oos_id = session.scalar(select(OosInvestigation.id).where(OosInvestigation.lot_id == lot_id,
                                                                 OosInvestigation.status == "open"))
    assert oos_id is not None, "the countersignature leaves the OOS open"
    assert f"/release/lots/{lot_id}#oos" in open_part_of(qa.get("/release").get_data(as_text=True))
    return lot_id, request_id


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_qa_confirms_the_oos_of_an_exceptional_release_without_recalling_it(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, request_id = _released_exceptionally(app, monkeypatch, client_as)
    qa2 = client_as("qa2")
    page = html.unescape(qa2.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert "Confirm OOS: lot supplied under exceptional release, no recall (sign)" in page
    assert "Confirm OOS and recall the lot" not in page
    with app.extensions["mscbatch.db"].new_session() as session:
        oos_id = session.scalar(select(OosInvestigation.id).where(OosInvestigation.lot_id == lot_id))
    answer = qa2.post(f"/release/oos/{oos_id}", data={"action": "confirm", "oos-investigation": INVESTIGATION,
                                                       "oos-password": PASSWORD, **seen(qa2, lot_id)})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:2000]
    told = _text(qa2.get(answer.headers["Location"]).get_data(as_text=True))
    ref = f"exceptional release {request_id} for patient SLE-UC-101"
    assert f"Confirmed — lot supplied under {ref}" in told and "not recalled" in told
    assert "RECALLED" not in told
    with app.extensions["mscbatch.db"].new_session() as session:
        lot = session.get(Lot, lot_id)
        closed = session.get(OosInvestigation, oos_id)
        assert lot.status == "released"
        assert release_state(session, lot).patient_code == "SLE-UC-101"
        assert session.scalars(select(Recall)).all() == []
        assert (closed.status, closed.conclusion) == ("confirmed", oos_service.CONFIRMED_SUPPLIED)
        assert closed.investigation == INVESTIGATION
        (signature,) = signatures_of(session, closed)
        assert signature.meaning == f"OOS confirmed: lot supplied under {ref}"
        assert verify(session, signature, closed)
        events = session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "release_oos",
                                                          AuditEvent.entity_id == str(oos_id),
                                                          AuditEvent.field == "conclusion")).all()
        assert [e.new_value for e in events] == [oos_service.CONFIRMED_SUPPLIED]
        assert f"lot supplied under {ref}" in (events[0].reason or "")
        assert events[0].old_value in (None, "")
    page = _text(qa2.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert f"Conclusion: Confirmed — lot supplied under {ref}" in page
    dashboard = qa2.get("/release").get_data(as_text=True)
    before = open_part_of(dashboard)
    assert f"/release/lots/{lot_id}#oos" not in before, before
    # the certificate says the conclusion in the same words, not a bare "confirmed"
    import io

    from pypdf import PdfReader

    pdf = qa2.get(f"/release/lots/{lot_id}/certificate.pdf")
    certificate = " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert f"Confirmed — lot supplied under {ref}" in certificate, certificate


def open_part_of(dashboard: str) -> str:
    """The dashboard's "Open OOS investigations" section."""
    return dashboard.split('id="open-oos"', 1)[1].split("</section>", 1)[0]


def test_the_exceptional_conclusion_is_for_the_oos_it_was_released_for_only(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    """A lot without an exceptional release still recalls on confirmation (the conditional release's late OOS), and
    the service decides as the button says."""
    from tests.integration.test_release_support import sterility_failed_late

    lot_id = sterility_failed_late(app, monkeypatch)
    qa2 = client_as("qa2")
    page = html.unescape(qa2.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert "Confirm OOS and recall the lot (sign)" in page
    with app.extensions["mscbatch.db"].new_session() as session:
        found = session.scalar(select(OosInvestigation).where(OosInvestigation.lot_id == lot_id))
        assert oos_service.exceptional_release_for(session, found) is None


def test_a_second_confirmation_is_refused(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, _request_id = _released_exceptionally(app, monkeypatch, client_as)
    with app.extensions["mscbatch.db"].new_session() as session:
        oos_id = session.scalar(select(OosInvestigation.id).where(OosInvestigation.lot_id == lot_id))
        from tests.integration.test_release_support import user

        oos_service.confirm_oos(session, user(session, "qa2"), oos_id, INVESTIGATION, PASSWORD)
        try:
            oos_service.confirm_oos(session, user(session, "qa2"), oos_id, INVESTIGATION, PASSWORD)
        except Exception as error:  # noqa: BLE001
            assert "already closed (confirmed)" in str(error)
        else:
            raise AssertionError("a closed OOS was confirmed twice")
