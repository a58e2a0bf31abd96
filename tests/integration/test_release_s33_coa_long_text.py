"""The certificate of analysis of a lot whose OOS investigation was written at length: no field limits the text of
an investigation (nor a justification, nor a rationale), and a table row taller than a page made ReportLab refuse to
lay the certificate out, a server error instead of the certificate. The row goes on over the next page, whole."""
from __future__ import annotations

import io

from pypdf import PdfReader

from mscbatch.release import oos
from mscbatch.release.demo import enter_panel
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, user


def test_an_oos_investigation_longer_than_a_page_is_printed_whole_on_the_certificate(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = seed_quarantine_lot(app, monkeypatch)
    investigation = "Investigation: " + " ".join(f"finding{i}" for i in range(900)) + " END-OF-INVESTIGATION"
    session = app.extensions["mscbatch.db"].new_session()
    try:
        enter_panel(session, user(session, "technician"), lot_id, {"cd105": ("94.6", "%")})
        [opened] = oos.open_oos_of(session, lot_id)
        monkeypatch.setattr(oos, "INVESTIGATION_MAX_CHARS", 100_000)  # a record written before the limit
        oos.confirm_oos(session, user(session, "qa"), opened.id, investigation, PASSWORD)
    finally:
        session.close()

    pdf = client_as("qa").get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.status_code == 200
    text = " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages).split())
    assert "finding0" in text and "finding899" in text and "END-OF-INVESTIGATION" in text
    assert "REJECTED: not for clinical use" in text
