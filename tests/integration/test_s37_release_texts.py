"""Release review findings, on SQLite and PostgreSQL: signed texts over 2000 characters refused naming the field
and the limit, nothing signed or written; instants said in the site's local time with UTC beside them; an in-process
lot is said still in process, not "already" in process."""
from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.lots.models import Deviation, Lot, ProcessStep
from mscbatch.release import release, results
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import DeviationAssessment, LotDisposition, ReleaseResult
from mscbatch.signatures.models import Signature
from mscbatch.site import local_and_utc, site_today
from tests.conftest import PASSWORD
from tests.integration.test_release_support import cord_quarantine_lot, seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen

HUGE = "x" * 100_000
LIMIT = "at most 2000 characters (100000 given); shorten it."


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _counts(app: Any) -> tuple[int, int, int, list[Any]]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return (session.scalar(select(func.count()).select_from(Signature)),
                session.scalar(select(func.count()).select_from(LotDisposition)),
                session.scalar(select(func.count()).select_from(DeviationAssessment)),
                sorted(session.execute(select(Lot.id, Lot.status)).all()))


def _enter(app: Any, lot_id: int, test_id: str, value: str, unit: str) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
            test_id=test_id, value=value, unit=unit, analyst="Tom QC", tested_on=site_today())).id


def _deviation(app: Any, client: Any, lot_id: int, severity: str = "critical") -> Deviation:
    with app.extensions["mscbatch.db"].new_session() as session:
        step_id = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id).limit(1))
    assert client.post(f"/lots/{lot_id}/deviations", data={
        "deviation-step_id": step_id, "deviation-severity": severity,
        "deviation-description": "Biosafety cabinet airflow alarm during P2"}).status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        found = session.scalar(select(Deviation).where(Deviation.lot_id == lot_id))
        session.expunge(found)
        return found


def _refused(response: Any, words: str) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code == 422, text[:3000]
    assert words in text, text[:3000]


def test_a_100000_character_text_is_refused_on_the_release_form_naming_the_field(app, client_as, lot_id):
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id, skip=("sterility",))
    qa = client_as("qa")
    before = _counts(app)
    post = lambda **data: qa.post(f"/release/lots/{lot_id}/release", data={  # noqa: E731
        "release-password": PASSWORD, **seen(qa, lot_id), **data})
    _refused(post(action="reject", **{"release-justification": HUGE}), f"Reason for the rejection: {LIMIT}")
    _refused(post(action="conditional", **{"release-conditional_tests": "sterility", "release-justification": HUGE}),
             f"Justification: {LIMIT}")
    _refused(post(action="conditional", **{"release-conditional_tests": "sterility",
                                           "release-justification": "Patient cannot wait 14 days",
                                           "release-count_justification": HUGE}),
             f"Justification of the viable cell count above the harvest: {LIMIT}")
    assert _counts(app) == before
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    for field in ("release-justification",):  # (the count's own field shows only for a count above the harvest)
        found = re.search(r'<textarea[^>]*\bid="' + field + r'"[^>]*>', page)
        assert found and 'maxlength="2000"' in found.group(0), field
    # 2000 characters with line breaks the browser sends as CR LF: each counts once, as the browser counted it
    rejected = post(action="reject", **{"release-justification": ("y" * 99 + "\r\n") * 20})
    assert rejected.status_code == 302, rejected.get_data(as_text=True)[:3000]


def test_a_100000_character_rationale_is_refused_and_nothing_is_signed(app, client_as, lot_id):
    deviation = _deviation(app, client_as("technician"), lot_id)
    qa = client_as("qa")
    before = _counts(app)
    _refused(qa.post(f"/release/deviations/{deviation.id}/assess", data={
        "assess-outcome": "no_impact_release", "assess-rationale": HUGE, "assess-password": PASSWORD,
        **seen(qa, lot_id)}), f"Rationale: {LIMIT} Nothing was signed.")
    assert _counts(app) == before


def test_a_100000_character_correction_reason_is_refused_and_nothing_is_written(app, client_as, lot_id):
    result_id = _enter(app, lot_id, "viability", "90", "%")
    _refused(client_as("technician").post(f"/release/results/{result_id}/correct", data={
        "value": "91", "unit": "%", "reason": HUGE}), f"Reason for the correction: {LIMIT}")
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(ReleaseResult, result_id).value == "90"


def test_a_100000_character_clinical_justification_is_refused(app, client_as, lot_id):
    with app.extensions["mscbatch.db"].new_session() as session:
        uc_id = cord_quarantine_lot(session)
    before = _counts(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        with pytest.raises(Exception) as refused:
            release.request_exceptional_release(session, user(session, "clinician"), uc_id, "P-001", HUGE, PASSWORD)
    assert f"Clinical justification: {LIMIT}" in str(refused.value)
    assert getattr(refused.value, "status", None) == 422
    assert _counts(app) == before


def test_the_deviation_blocker_and_the_retest_choice_say_local_time_with_utc(app, client_as, lot_id):
    deviation = _deviation(app, client_as("technician"), lot_id)
    failing = _enter(app, lot_id, "viability", "61", "%")
    retest = _enter(app, lot_id, "viability", "92", "%")
    with app.extensions["mscbatch.db"].new_session() as session:
        entered = session.get(ReleaseResult, retest).entered_at
    page = client_as("qa").get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert f"deviation {deviation.id} (critical, recorded {local_and_utc(deviation.recorded_at)}: " in page
    assert f'<option value="{retest}">92 % ({local_and_utc(entered)})</option>' in page
    assert failing


def test_already_released_says_local_time_and_an_in_process_lot_is_still_in_process(app, client_as, lot_id):
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id)
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
        lot = session.get(Lot, lot_id)
        when, number = local_and_utc(lot.status_changed_at), lot.lot_number
        in_process = session.scalar(select(Lot).where(Lot.status == "in_process"))
        assert in_process is not None
        in_process_id, in_process_number = in_process.id, in_process.lot_number
    qa2 = client_as("qa2")
    again = qa2.post(f"/release/lots/{lot_id}/release", data={"action": "release", "release-password": PASSWORD,
                                                                **seen(qa2, lot_id)})
    assert again.status_code == 409
    assert f"Lot {number} is already released by Qa" in again.get_data(as_text=True)
    assert f" at {when}: it cannot be released now." in again.get_data(as_text=True)
    early = qa2.post(f"/release/lots/{in_process_id}/release", data={
        "action": "release", "release-password": PASSWORD, **seen(qa2, in_process_id)})
    assert early.status_code == 409
    assert (f"Lot {in_process_number} is still in process (not yet in quarantine): it cannot be released now. "
            "Nothing was signed.") in early.get_data(as_text=True)
