"""Release through the web pages and the JSON API, the certificate of analysis, and concurrent releases,
on SQLite and PostgreSQL (issue 5)."""
from __future__ import annotations

import io
import threading

import pytest
from sqlalchemy import func, select

from mscbatch.release.demo import enter_panel
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen

COMMON = {"analyst": "Tom QC", "tested_on": site_today().isoformat(), "instrument": "FC-1", "reagent_lot": "AB-1"}
PANEL = {"cd73": "99", "cd90": "98.5", "cd105": "97", "cd45": "0.5", "cd34": "0.2", "cd14": "0.3", "cd79a": "0.1",
         "hla_dr": "0.4"}


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _enter_rest_as_technician(app, lot_id):  # type: ignore[no-untyped-def]
    session = app.extensions["mscbatch.db"].new_session()
    try:
        enter_panel(session, user(session, "technician"), lot_id, skip=("cd73",))
    finally:
        session.close()


def test_the_flow_panel_is_entered_at_once_through_the_page_with_an_attachment(client_as, lot_id):
    client = client_as("technician")
    data = {f"panel-{k}": v for k, v in {**PANEL, **COMMON}.items()}
    data["panel-attachment"] = (io.BytesIO(b"marker,percent\nCD73,99\n"), "export.csv", "text/csv")
    response = client.post(f"/release/lots/{lot_id}/panel", data=data, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    page = client.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert "export.csv" in page and "97" in page


def test_104_percent_is_refused_on_the_page_naming_the_field_and_nothing_is_written(client_as, lot_id):
    client = client_as("technician")
    data = {f"panel-{k}": v for k, v in {**PANEL, "cd90": "104", **COMMON}.items()}
    response = client.post(f"/release/lots/{lot_id}/panel", data=data)
    assert response.status_code == 422
    assert "CD90: 104 % is impossible" in response.get_data(as_text=True)
    api = client.get(f"/release/lots/{lot_id}")
    assert "Tom QC" not in api.get_data(as_text=True)


def test_a_wrong_unit_is_refused_by_the_api_as_a_problem_naming_the_field(app, client_as, lot_id):
    token = api_token_for(app, "technician")
    response = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers={
        "Authorization": f"Bearer {token}"}, json={"test_id": "viability", "value": "92", "unit": "cells",
                                                     "analyst": "A", "tested_on": site_today().isoformat()})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert "unit" in response.get_json()["errors"]


def test_qa_reviews_and_signs_the_release_then_downloads_a_certificate_with_every_test(app, client_as, lot_id):
    from pypdf import PdfReader

    client = client_as("technician")
    client.post(f"/release/lots/{lot_id}/panel", data={f"panel-{k}": v for k, v in {**PANEL, **COMMON}.items()})
    _enter_rest_as_technician(app, lot_id)
    session = app.extensions["mscbatch.db"].new_session()
    from mscbatch.release.models import ReleaseResult

    viability = session.scalar(select(ReleaseResult.id).where(ReleaseResult.test_id == "viability"))
    session.close()
    corrected = client.post(f"/release/results/{viability}/correct", data={"value": "91", "unit": "%", "reason": ""})
    assert corrected.status_code == 422  # a correction needs a reason
    client.post(f"/release/results/{viability}/correct", data={"value": "91", "unit": "%", "reason": "typo"})
    qa = client_as("qa")
    assert "Nothing blocks the release" in qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    refused = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release", "release-password": "nope"})
    assert refused.status_code == 401
    signed = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "release", "release-password": PASSWORD})
    assert signed.status_code == 302
    token = api_token_for(app, "clinician")
    state = app.test_client().get(f"/api/v1/release/lots/{lot_id}", headers={"Authorization": f"Bearer {token}"})
    assert state.get_json()["release"]["released"] is True and state.get_json()["overall"] == "ready"
    nurse = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}  # the ward reads a bag's state, not results
    assert app.test_client().get(f"/api/v1/release/lots/{lot_id}/results", headers=nurse).status_code == 403
    pdf = qa.get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.mimetype == "application/pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    for name in ("CD73", "CD105", "HLA-DR", "Viability", "Sterility", "Endotoxin", "Karyotype", "Mycoplasma",
                 "Potency", "PASS", "INFORMATIVE", "msc_default version 1", "Released for clinical use", "Qa,"):
        assert name in text.replace("\n", " ") or name.rstrip(",") in text, name
    assert "91 *" in text  # changed after first entry


def test_the_qa_dashboard_lists_open_oos(client_as, app, lot_id):
    client = client_as("technician")
    client.post(f"/release/lots/{lot_id}/panel", data={f"panel-{k}": v for k, v in {**PANEL, "cd105": "94.6",
                                                                                      **COMMON}.items()})
    page = client_as("qa").get("/release").get_data(as_text=True)
    assert "CD105 failed" in page


def test_twenty_concurrent_releases_of_one_lot_give_exactly_one_release_and_one_signature(app, lot_id):
    from mscbatch.audit.models import AuditEvent
    from mscbatch.errors import DomainError
    from mscbatch.release import release
    from mscbatch.signatures.models import Signature

    session = app.extensions["mscbatch.db"].new_session()
    enter_panel(session, user(session, "technician"), lot_id)
    session.close()
    outcomes: list[str] = []
    barrier = threading.Barrier(20)

    def attempt(n: int) -> None:
        own = app.extensions["mscbatch.db"].new_session()
        try:
            signer = user(own, "qa" if n % 2 else "qa2")
            own.rollback()
            barrier.wait()
            release.release_lot(own, signer, lot_id, PASSWORD)
            outcomes.append("released")
        except DomainError as error:
            outcomes.append(error.message)
        finally:
            own.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert outcomes.count("released") == 1, outcomes
    assert all("already released" in o for o in outcomes if o != "released")
    session = app.extensions["mscbatch.db"].new_session()
    assert session.scalar(select(func.count()).select_from(Signature).where(
        Signature.meaning == "Released for clinical use")) == 1
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.entity_type == "lot", AuditEvent.field == "status", AuditEvent.new_value == "released")) == 1
    session.close()
