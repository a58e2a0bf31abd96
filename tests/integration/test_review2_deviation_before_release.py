"""A major or critical deviation recorded before release needs QA's own signed assessment before the lot is
released, on SQLite and PostgreSQL (review finding: QA's release signature only "weighed" it; EU GMP Annex 16
1.7.17 and Part I 1.4(xiv) ask for it to be investigated to a level that supports the release decision).
Minor deviations stay weighed by the release signature."""
from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader
from sqlalchemy import func, select

from mscbatch.lots.models import Deviation, Lot, ProcessStep
from mscbatch.release import results
from mscbatch.release.demo import enter_panel
from mscbatch.release.deviations import ASSESSED_BEFORE_RELEASE_MEANING
from mscbatch.release.models import DeviationAssessment, LotDisposition
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import verify as verify_signature
from mscbatch.site import site_today
from tests.conftest import PASSWORD, add_user, api_token_for
from tests.integration.test_release_support import (
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
    user,
)
from tests.integration.test_s37_release_seen import seen, seen_of_deviation

CRITICAL = "Biosafety cabinet airflow alarm during the P2 medium change; work went on for 4 minutes"
MINOR = "Incubator door left ajar 1 minute at P1"
RATIONALE = "Settle plates and the sterility result of the lot are clean; the alarm lasted 4 min: no impact."


def _lot_with_deviation(app: Any, monkeypatch: Any, client: Any, severity: str, description: str,
                        skip: tuple[str, ...] = (), cord: bool = False) -> tuple[int, int]:
    """A quarantined lot with every test passing (but `skip`), and a deviation recorded through the lot page by
    `client`. `cord`: the demo UC-MSC lot, which a lupus patient can receive (an exceptional release's patient)."""
    lot_id = seed_quarantine_lot(app, monkeypatch)
    if cord:
        with app.extensions["mscbatch.db"].new_session() as session:
            lot_id = cord_quarantine_lot(session)
    with app.extensions["mscbatch.db"].new_session() as session:
        step_id = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id).limit(1))
    recorded = client.post(f"/lots/{lot_id}/deviations", follow_redirects=True, data={
        "deviation-step_id": step_id, "deviation-severity": severity, "deviation-description": description})
    assert recorded.status_code == 200, recorded.get_data(as_text=True)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, skip=skip)
        return lot_id, session.scalar(select(Deviation.id).where(Deviation.description == description))


def _assess(client: Any, deviation_id: int, **data: str) -> Any:
    form = {"assess-outcome": "no_impact_release", "assess-rationale": RATIONALE, "assess-password": PASSWORD}
    form.update({f"assess-{k}": v for k, v in data.items()})
    return client.post(f"/release/deviations/{deviation_id}/assess", data={**form, **seen_of_deviation(client, deviation_id)})


def _release(client: Any, lot_id: int, action: str = "release", **data: Any) -> Any:
    return client.post(f"/release/lots/{lot_id}/release", data={**seen(client, lot_id), "action": action, "release-password": PASSWORD,
                                                                  **data})


def _section(page: str, start: str, end: str) -> str:
    return page[page.index(start):page.index(end)]


def _status(app: Any, lot_id: int) -> str:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.get(Lot, lot_id).status


def _signed_dispositions(app: Any, lot_id: int) -> list[str]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return list(session.scalars(select(LotDisposition.kind).where(
            LotDisposition.lot_id == lot_id, LotDisposition.signed_at.is_not(None)).order_by(LotDisposition.id)))


def test_release_is_refused_while_a_critical_deviation_waits_and_signed_once_qa_assessed_no_impact(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    tech = client_as("technician")
    lot_id, deviation_id = _lot_with_deviation(app, monkeypatch, tech, "critical", CRITICAL, skip=("sterility",))
    qa = client_as("qa")
    board = _section(qa.get("/release").get_data(as_text=True), 'id="before-release"', 'id="after-release"')
    assert CRITICAL in board and "critical" in board

    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    blockers = _section(page, 'id="blocking"', 'id="results"')
    assert f"deviation {deviation_id} (critical, recorded" in blockers and "Deviations to assess" in blockers
    to_assess = _section(page, 'id="deviations-to-assess"', 'id="oos"')
    assert CRITICAL in to_assess and "Sign the assessment" in to_assess
    assert "No impact on the lot&#39;s quality: release may proceed" in to_assess
    assert "The lot is rejected" in to_assess and "The lot is recalled" not in to_assess

    api = app.test_client().get(f"/api/v1/release/lots/{lot_id}",
                                headers={"Authorization": f"Bearer {api_token_for(app, 'qa')}"})
    assert api.status_code == 200
    assert any(f"deviation {deviation_id} (critical" in r for r in api.get_json()["refusals_for_you"])

    conditional = _release(qa, lot_id, "conditional", **{"release-conditional_tests": "sterility",
                                                           "release-justification": "patient scheduled tomorrow"})
    assert conditional.status_code == 409
    text = conditional.get_data(as_text=True)
    assert f"Release refused: deviation {deviation_id} (critical, recorded" in text
    assert "needs QA&#39;s own signed assessment before release: assess it under &#34;Deviations to assess&#34;" in text
    with app.extensions["mscbatch.db"].new_session() as session:
        results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
            test_id="sterility", value="negative", unit="", analyst="Tom QC", tested_on=site_today()))
    refused = _release(qa, lot_id)
    assert refused.status_code == 409
    assert f"Release refused: deviation {deviation_id} (critical, recorded" in refused.get_data(as_text=True)
    assert _status(app, lot_id) == "quarantine" and _signed_dispositions(app, lot_id) == []

    assessed = _assess(qa, deviation_id)
    assert assessed.status_code == 302, assessed.get_data(as_text=True)
    assert CRITICAL not in _section(qa.get("/release").get_data(as_text=True), 'id="before-release"',
                                    'id="after-release"')
    with app.extensions["mscbatch.db"].new_session() as session:
        assessment = session.scalar(select(DeviationAssessment).where(DeviationAssessment.deviation_id == deviation_id))
        assert assessment.outcome == "no_impact_release" and assessment.locked_at is not None
        signature = session.scalar(select(Signature).where(Signature.entity_type == DeviationAssessment.__tablename__))
        assert signature.meaning == ASSESSED_BEFORE_RELEASE_MEANING
        assert verify_signature(session, signature, assessment).valid
    assert _assess(qa, deviation_id).status_code == 409  # once only

    released = _release(qa, lot_id)
    assert released.status_code == 302, released.get_data(as_text=True)
    assert _status(app, lot_id) == "released" and _signed_dispositions(app, lot_id) == ["release"]
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    shown = _section(page, 'id="deviations-to-assess"', 'id="oos"')
    assert f'id="assessment-{deviation_id}"' in shown and ASSESSED_BEFORE_RELEASE_MEANING in shown
    assert 'id="deviation-assessment"' not in page  # not an after-release deviation
    pdf = qa.get(f"/release/lots/{lot_id}/certificate.pdf")
    text = " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages).split())
    assert f"{CRITICAL}. Assessed by QA (Qa" in text and f"meaning: {ASSESSED_BEFORE_RELEASE_MEANING})" in text
    assert "No impact on the lot's quality: release may proceed. Settle plates" in text
    assert "AFTER RELEASE" not in text


def test_qa_rejects_the_lot_for_a_major_deviation_in_the_same_signed_step(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, deviation_id = _lot_with_deviation(app, monkeypatch, client_as("technician"), "major", CRITICAL)
    qa = client_as("qa")
    recall = _assess(qa, deviation_id, outcome="recall")  # a lot in quarantine is rejected, not recalled
    assert recall.status_code == 422 and "This lot is not released yet: choose" in recall.get_data(as_text=True)
    done = _assess(qa, deviation_id, outcome="reject", rationale="Open work for 4 minutes: sterility not assured.")
    assert done.status_code == 302, done.get_data(as_text=True)
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert "The lot is rejected" in page
    assert _status(app, lot_id) == "rejected" and _signed_dispositions(app, lot_id) == ["rejection"]
    with app.extensions["mscbatch.db"].new_session() as session:
        rejection = session.scalar(select(LotDisposition).where(LotDisposition.lot_id == lot_id))
        assert CRITICAL in rejection.justification and "sterility not assured" in rejection.justification
        assert session.scalar(select(DeviationAssessment.outcome)) == "reject"


def test_the_recorder_of_the_deviation_does_not_assess_it(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    add_user(app, "maker-qa", ["technician", "qa"])
    maker = client_as("maker-qa")
    lot_id, deviation_id = _lot_with_deviation(app, monkeypatch, maker, "critical", CRITICAL)
    refused = _assess(maker, deviation_id)
    assert refused.status_code == 409 and "segregation of duties" in refused.get_data(as_text=True)
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(func.count()).select_from(DeviationAssessment)) == 0
    assert _release(client_as("qa"), lot_id).status_code == 409  # still waiting
    assert _assess(client_as("qa"), deviation_id).status_code == 302  # another QA person does
    assert _release(client_as("qa"), lot_id).status_code == 302


def test_a_minor_deviation_is_weighed_by_the_release_signature_alone(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, deviation_id = _lot_with_deviation(app, monkeypatch, client_as("technician"), "minor", MINOR)
    qa = client_as("qa")
    assert MINOR not in _section(qa.get("/release").get_data(as_text=True), 'id="before-release"',
                                 'id="after-release"')
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert 'id="deviations-to-assess"' not in page and 'id="ready"' in page
    weighed = _assess(qa, deviation_id)
    assert weighed.status_code == 409 and "it was weighed by the lot" in weighed.get_data(as_text=True)
    assert _release(qa, lot_id).status_code == 302
    assert _status(app, lot_id) == "released"


def test_an_exceptional_release_also_waits_for_the_assessment(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    """The clinician weighed the OOS result for the patient, not the deviation: QA assesses it before countersigning."""
    lot_id, deviation_id = _lot_with_deviation(app, monkeypatch, client_as("technician"), "critical", CRITICAL,
                                               skip=("viability",), cord=True)
    with app.extensions["mscbatch.db"].new_session() as session:
        code = lupus_patient_code(session)  # a registered patient who can receive the lot (release.patient_refusal)
        results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
            test_id="viability", value="60", unit="%", analyst="Tom QC", tested_on=site_today()))
    clinician = client_as("clinician")
    asked = clinician.post(f"/release/lots/{lot_id}/exceptional", data={
        "exceptional-patient_code": code, "exceptional-password": PASSWORD, **seen(clinician, lot_id),
        "exceptional-justification": "No other lot in time; refractory disease, significant hazard otherwise."})
    assert asked.status_code == 302, asked.get_data(as_text=True)
    qa = client_as("qa")
    with app.extensions["mscbatch.db"].new_session() as session:  # the request the page shows: QA names it
        waiting = str(session.scalar(select(LotDisposition.id).where(LotDisposition.lot_id == lot_id)))
    refused = _release(qa, lot_id, "exceptional", **{"release-request_id": waiting})
    assert refused.status_code == 409
    assert f"Exceptional release refused: deviation {deviation_id} (critical" in refused.get_data(as_text=True)
    assert _assess(qa, deviation_id).status_code == 302
    assert _release(qa, lot_id, "exceptional", **{"release-request_id": waiting}).status_code == 302
    assert _status(app, lot_id) == "released"
