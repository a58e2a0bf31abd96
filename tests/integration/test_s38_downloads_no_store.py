"""Security review (session 38): the downloads a signed-in user takes (a dose sheet with the patient's initials and
wristband, a certificate of analysis, a recall report, the audit trail's CSV) were sent without Cache-Control, so a
shared ward tablet's browser could keep them on disk after sign-out. Every response but the static files and the
favicon now says no-store."""
from __future__ import annotations

from sqlalchemy import select

from mscbatch.demo import seed_demo
from mscbatch.lots.models import Lot
from mscbatch.patients.models import Prescription
from mscbatch.recall.models import Recall
from mscbatch.release.demo import DEMO_PASSWORD
from tests.conftest import login


def _ids(app):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        seed_demo(session, hash_profile="fast")
        session.rollback()
        return (session.scalar(select(Lot.id).where(Lot.status == "released").order_by(Lot.id)),
                session.scalar(select(Prescription.id).order_by(Prescription.id)),
                session.scalar(select(Recall.id).order_by(Recall.id)))
    finally:
        session.close()


def test_s38_every_download_of_a_signed_in_user_says_no_store(app):  # type: ignore[no-untyped-def]
    lot_id, prescription_id, recall_id = _ids(app)
    qa, clinician = app.test_client(), app.test_client()
    assert login(qa, "qa", DEMO_PASSWORD).status_code == 302
    assert login(clinician, "clinician", DEMO_PASSWORD).status_code == 302
    for client, path in ((qa, f"/release/lots/{lot_id}/certificate.pdf"), (qa, f"/recalls/{recall_id}/report.pdf"),
                         (qa, "/audit/events.csv"),
                         (clinician, f"/patients/prescriptions/{prescription_id}/dose-sheet.pdf")):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert response.headers.get("Cache-Control") == "no-store", (path, response.headers.get("Cache-Control"))


def test_s38_static_files_stay_cacheable(app):  # type: ignore[no-untyped-def]
    response = app.test_client().get("/static/css/mscbatch.css")
    assert response.status_code == 200
    assert response.headers.get("Cache-Control") != "no-store"
