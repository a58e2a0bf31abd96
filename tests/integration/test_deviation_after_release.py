"""A deviation recorded after a lot was released reaches QA, and the signed record's evidence does not grow
(review finding: a critical deviation recorded on a released lot stayed silent, and the certificate then printed
it under the release signature as if QA had weighed it)."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.errors import Conflict
from mscbatch.lots import steps
from mscbatch.lots.models import ProcessStep
from mscbatch.release import release, results
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import ReleaseResult
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, user


def _released(app, monkeypatch) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    lot_id = seed_quarantine_lot(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    tech = user(session, "technician")
    step_id = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id).limit(1))
    steps.record_deviation(session, tech, lot_id, step_id, severity="minor", description="Incubator door alarm 2 min")
    enter_panel(session, tech, lot_id)
    release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
    session.close()
    return lot_id, step_id


def test_a_deviation_after_release_is_put_before_qa_and_marked_on_the_certificate(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, step_id = _released(app, monkeypatch)
    answer = client_as("technician").post(f"/lots/{lot_id}/deviations", follow_redirects=True, data={
        "deviation-step_id": step_id, "deviation-severity": "critical",
        "deviation-description": "Culture medium lot used past its expiry, found at the monthly review"})
    assert answer.status_code == 200
    assert "is already released: QA is asked on its dashboard to assess it" in answer.get_data(as_text=True)
    qa = client_as("qa")
    board = qa.get("/release").get_data(as_text=True)
    section = board[board.index('id="after-release"'):board.index('id="expiring"')]
    assert "Culture medium lot used past its expiry" in section and "critical" in section
    assert "Incubator door alarm" not in section  # weighed by the release: not asked again
    pdf = qa.get(f"/release/lots/{lot_id}/certificate.pdf")
    text = " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages).split())
    assert "AFTER RELEASE, not weighed by the release signature: Culture medium lot used past its expiry" in text
    assert "AFTER RELEASE, not weighed by the release signature: Incubator door alarm" not in text


def test_no_attachment_is_added_to_a_result_of_a_released_lot(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    lot_id, _step = _released(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    result_id = session.scalar(select(ReleaseResult.id).where(ReleaseResult.lot_id == lot_id).limit(1))
    with pytest.raises(Conflict, match="results can no longer be entered"):
        results.attach_file(session, user(session, "technician"), result_id, "late.csv", "text/csv", b"a,b\n1,2\n")
    session.close()
