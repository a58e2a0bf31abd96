"""A signature on the release review page vouches only for what that page showed QA, on SQLite and PostgreSQL
(review finding, Part 11): each signature form carries a fingerprint of the page (release.release.page_fingerprint)
and the signature is refused, 409, nothing signed, if a result was corrected or a deviation recorded since.

`seen(client, lot_id)` is the helper the other web tests use to post a signature form as the page would."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from mscbatch.lots.models import Deviation, Lot, ProcessStep
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import DeviationAssessment, LotDisposition, OosInvestigation, ReleaseResult
from mscbatch.signatures.models import Signature
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, user

CHANGED = "The lot&#39;s record changed since you opened this page ("
RATIONALE = "Settle plates and the sterility result of the lot are clean: no impact on the bags."


def seen(client: Any, lot_id: int) -> dict[str, str]:
    """The fingerprint the lot's review page gives its signature forms, as the page posts it ({} if it has none)."""
    page = client.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    found = re.search(r'name="seen" value="([^"]*)"', page)
    return {"seen": found.group(1)} if found else {}


def seen_of_deviation(client: Any, deviation_id: int) -> dict[str, str]:
    """The fingerprint of the review page of the deviation's lot (its assessment form is on that page)."""
    with client.application.extensions["mscbatch.db"].new_session() as session:
        lot_id = session.scalar(select(Deviation.lot_id).where(Deviation.id == deviation_id))
    return seen(client, lot_id) if lot_id is not None else {}


def seen_of_oos(client: Any, oos_id: int) -> dict[str, str]:
    """The fingerprint of the review page of the investigation's lot (its close form is on that page)."""
    with client.application.extensions["mscbatch.db"].new_session() as session:
        lot_id = session.scalar(select(OosInvestigation.lot_id).where(OosInvestigation.id == oos_id))
    return seen(client, lot_id) if lot_id is not None else {}


def _ready(app: Any, monkeypatch: Any) -> int:
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id)
    return lot_id


def _counts(app: Any, lot_id: int) -> tuple[str, int, int, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return (session.get(Lot, lot_id).status,
                session.scalar(select(func.count()).select_from(Signature)),
                session.scalar(select(func.count()).select_from(LotDisposition)),
                session.scalar(select(func.count()).select_from(DeviationAssessment)))


def _endotoxin(app: Any, lot_id: int) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(ReleaseResult.id).where(ReleaseResult.lot_id == lot_id,
                                                            ReleaseResult.test_id == "endotoxin"))


def _deviation(app: Any, client: Any, lot_id: int, severity: str, description: str) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        step_id = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id).limit(1))
    recorded = client.post(f"/lots/{lot_id}/deviations", data={
        "deviation-step_id": step_id, "deviation-severity": severity, "deviation-description": description})
    assert recorded.status_code == 302, recorded.get_data(as_text=True)[:2000]
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(Deviation.id).where(Deviation.description == description))


def test_a_result_corrected_after_qa_opened_the_page_is_not_signed_for(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _ready(app, monkeypatch)
    qa, tech = client_as("qa"), client_as("technician")
    shown = seen(qa, lot_id)
    assert shown["seen"]
    corrected = tech.post(f"/release/results/{_endotoxin(app, lot_id)}/correct", data={
        "value": "0.49", "unit": "EU/mL", "reason": "Transcription error: the plate read 0.49"})
    assert corrected.status_code == 302
    before = _counts(app, lot_id)
    refused = qa.post(f"/release/lots/{lot_id}/release", data={"action": "release", "release-password": PASSWORD,
                                                                 **shown})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409, text[:3000]
    assert CHANGED + "its results or verdicts changed): review it again; nothing was signed" in text
    assert _counts(app, lot_id) == before and before[0] == "quarantine"
    # the page shown again with the refusal shows 0.49: signed from it, the release vouches for what QA saw
    assert "0.49" in text
    signed = qa.post(f"/release/lots/{lot_id}/release", data={"action": "release", "release-password": PASSWORD,
                                                                **seen(qa, lot_id)})
    assert signed.status_code == 302 and _counts(app, lot_id)[0] == "released"


def test_a_minor_deviation_recorded_meanwhile_is_not_weighed_by_a_signature_that_never_showed_it(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    lot_id = _ready(app, monkeypatch)
    qa = client_as("qa")
    shown = seen(qa, lot_id)
    _deviation(app, client_as("technician"), lot_id, "minor", "Incubator door left ajar 1 minute at P1")
    before = _counts(app, lot_id)
    for action, extra in (("release", {}), ("reject", {"release-justification": "Mycoplasma positive: unfit"}),
                          ("conditional", {"release-conditional_tests": "sterility",
                                           "release-justification": "Patient cannot wait 14 days"})):
        refused = qa.post(f"/release/lots/{lot_id}/release", data={"action": action, "release-password": PASSWORD,
                                                                     **extra, **shown})
        assert refused.status_code == 409, (action, refused.get_data(as_text=True)[:3000])
        assert CHANGED + "its deviations or their assessments changed)" in refused.get_data(as_text=True)
    assert _counts(app, lot_id) == before


def test_a_form_without_the_fingerprint_signs_nothing(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _ready(app, monkeypatch)
    before = _counts(app, lot_id)
    refused = client_as("qa").post(f"/release/lots/{lot_id}/release", data={"action": "release",
                                                                              "release-password": PASSWORD})
    assert refused.status_code == 409
    assert "The form does not say which record of the lot the page showed you" in refused.get_data(as_text=True)
    assert _counts(app, lot_id) == before


def test_a_deviation_assessment_is_refused_when_the_results_changed_since_the_page(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _ready(app, monkeypatch)
    tech, qa = client_as("technician"), client_as("qa")
    deviation_id = _deviation(app, tech, lot_id, "critical", "Biosafety cabinet airflow alarm during P2")
    shown = seen(qa, lot_id)
    assert tech.post(f"/release/results/{_endotoxin(app, lot_id)}/correct", data={
        "value": "0.49", "unit": "EU/mL", "reason": "Transcription error"}).status_code == 302
    before = _counts(app, lot_id)
    form = {"assess-outcome": "no_impact_release", "assess-rationale": RATIONALE, "assess-password": PASSWORD}
    refused = qa.post(f"/release/deviations/{deviation_id}/assess", data={**form, **shown})
    assert refused.status_code == 409 and CHANGED in refused.get_data(as_text=True)
    assert _counts(app, lot_id) == before
    assert qa.post(f"/release/deviations/{deviation_id}/assess",
                   data={**form, **seen(qa, lot_id)}).status_code == 302
    assert _counts(app, lot_id)[3] == before[3] + 1


def test_the_service_without_a_page_reads_the_current_record(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    """The services' `seen` is None for callers with no page (the demo, in-process callers): not checked."""
    from mscbatch.release import release

    lot_id = _ready(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
        assert session.get(Lot, lot_id).status == "released"
