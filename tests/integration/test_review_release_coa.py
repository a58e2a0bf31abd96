"""Safety review of QA release (DOMAIN.md sections 5 and 9): a certificate of analysis of a lot that is not released
says so at the top, whatever signatures its record holds. The "Not signed: this lot is not released." line was
printed only when the record had no signature at all, so a quarantined lot whose OOS QA had closed (or for which a
clinician had signed a request for exceptional use) printed "all blocking tests pass" and a table of QA signatures,
with nothing saying it was not released."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.release.models import OosInvestigation, ReleaseResult
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot
from tests.integration.test_s37_release_seen import seen

COMMON = {"analyst": "Tom QC", "tested_on": site_today().isoformat()}


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _certificate(client, lot_id: int) -> str:  # type: ignore[no-untyped-def]
    pdf = client.get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.status_code == 200
    return " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages).split())


def _enter(client, lot_id: int, test_id: str, value: str, unit: str) -> None:  # type: ignore[no-untyped-def]
    response = client.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": test_id, "result-value": value, "result-unit": unit,
        **{f"result-{k}": v for k, v in COMMON.items()}})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]


def test_the_certificate_of_a_quarantined_lot_whose_oos_qa_closed_says_it_is_not_released(app, client_as, lot_id):
    from mscbatch.release.demo import PASSING_PANEL

    tech, qa = client_as("technician"), client_as("qa")
    for test_id, (value, unit) in PASSING_PANEL.items():
        _enter(tech, lot_id, test_id, "90" if test_id == "viability" else value, unit or "none")  # the form's "no unit"
    # viability 90 % passes; the endotoxin is entered failing, then retested
    _enter(tech, lot_id, "endotoxin", "0.8", "EU/mL")
    _enter(tech, lot_id, "endotoxin", "0.1", "EU/mL")
    session = app.extensions["mscbatch.db"].new_session()
    oos_id = session.scalar(select(OosInvestigation.id))
    retest_id = session.scalar(select(ReleaseResult.id).where(ReleaseResult.test_id == "endotoxin")
                               .order_by(ReleaseResult.id.desc()).limit(1))
    session.close()
    response = qa.post(f"/release/oos/{oos_id}", data={
        "oos-investigation": "Pipetting error in the LAL plate shown by the positive control.",
        "oos-retest_result_id": str(retest_id), "oos-assignable_cause": "analyst_error", "oos-password": PASSWORD,
        **seen(qa, lot_id)})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]

    text = _certificate(qa, lot_id)
    assert "Status quarantine" in text
    assert "OOS invalidated (laboratory error, valid retest)" in text  # QA's signature is on the record ...
    assert "NOT RELEASED: the lot is in quarantine; no signature on this certificate releases it" in text  # ... not a release
    assert text.index("NOT RELEASED") < text.index("Overall verdict")  # at the top


def test_the_certificate_of_a_lot_without_any_signature_says_it_is_not_released(client_as, lot_id):
    text = _certificate(client_as("qa"), lot_id)
    assert "NOT RELEASED: the lot is in quarantine" in text and "Not signed: this lot is not released." in text
