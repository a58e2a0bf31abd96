"""Review 12, release: a result's file whose name is not Latin-1 ("CD73–CD90 panel.pdf" with an en dash, as a Mac
names a copy, or "流式报告.pdf") was kept, but its download put the name as such in the Content-Disposition header:
HTTP header values are Latin-1, and the server (werkzeug's, as `make run` serves) dropped the connection, so the
evidence attached to a release result could not be opened from the review page. The header now carries a plain ASCII
`filename` and the exact name in `filename*` (RFC 6266); an ASCII name is sent as before (SQLite and PostgreSQL)."""
from __future__ import annotations

import io
from urllib.parse import quote

import pytest
from sqlalchemy import select

from mscbatch.release.models import ResultAttachment
from mscbatch.site import site_today
from tests.integration.test_release_support import seed_quarantine_lot

PDF = b"%PDF-1.7 cytometer export"


@pytest.mark.parametrize("name,ascii_name", [
    ("CD73\u2013CD90 panel.pdf", "CD73CD90 panel.pdf"),
    ("\u6d41\u5f0f\u62a5\u544a.pdf", ".pdf"),
    ("r\u00e9sum\u00e9 \u00b5L.pdf", "resume L.pdf"),  # Latin-1 already, sent plain and exact too
])
def test_a_file_with_any_name_is_downloaded_with_its_name(app, users, client_as, monkeypatch, name, ascii_name):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    tech = client_as("technician")
    sent = tech.post(f"/release/lots/{lot_id}/results", content_type="multipart/form-data", data={
        "result-test_id": "viability", "result-value": "92.5", "result-unit": "%", "result-analyst": "Tom QC",
        "result-tested_on": site_today().isoformat(), "result-attachment": (io.BytesIO(PDF), name, "application/pdf")})
    assert sent.status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        attachment_id, kept = session.execute(select(ResultAttachment.id, ResultAttachment.filename)).one()
    assert kept == name  # kept as sent
    response = client_as("qa").get(f"/release/attachments/{attachment_id}")
    assert response.status_code == 200 and response.data == PDF
    header = response.headers["Content-Disposition"]
    header.encode("latin-1")  # what any HTTP server must be able to send (raised for the name as such)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert f'filename="{ascii_name}"' in header or f"filename={ascii_name}" in header
    assert header.startswith("attachment;") and f"filename*=UTF-8''{quote(name)}" in header


def test_an_ascii_name_is_sent_as_it_is(app, users, client_as, monkeypatch):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    sent = client_as("technician").post(f"/release/lots/{lot_id}/results", content_type="multipart/form-data", data={
        "result-test_id": "viability", "result-value": "92.5", "result-unit": "%", "result-analyst": "Tom QC",
        "result-tested_on": site_today().isoformat(),
        "result-attachment": (io.BytesIO(PDF), "CD73 panel.pdf", "application/pdf")})
    assert sent.status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        attachment_id = session.scalar(select(ResultAttachment.id))
    header = client_as("qa").get(f"/release/attachments/{attachment_id}").headers["Content-Disposition"]
    assert header == 'attachment; filename="CD73 panel.pdf"'
