"""A deviation recorded after a lot was released reaches QA, and the signed record's evidence does not grow
(review finding: a critical deviation recorded on a released lot stayed silent, and the certificate then printed
it under the release signature as if QA had weighed it)."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from mscbatch.errors import Conflict
from mscbatch.lots import steps
from mscbatch.lots.models import Deviation, Lot, ProcessStep
from mscbatch.recall.models import BagHold, Recall
from mscbatch.release import release, results
from mscbatch.release.demo import enter_panel
from mscbatch.release.deviations import assess_deviation
from mscbatch.release.models import DeviationAssessment, ReleaseResult
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import verify as verify_signature
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


# ---- QA's signed assessment of a deviation recorded after release -------------------------------------------

LATE = "Culture medium lot used past its expiry, found at the monthly review"


def _late_deviation(app, monkeypatch, client_as) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A released lot, and a critical deviation a technician records on it afterwards: (lot id, deviation id)."""
    lot_id, step_id = _released(app, monkeypatch)
    answer = client_as("technician").post(f"/lots/{lot_id}/deviations", data={
        "deviation-step_id": step_id, "deviation-severity": "critical", "deviation-description": LATE})
    assert answer.status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        return lot_id, session.scalar(select(Deviation.id).where(Deviation.description == LATE))


def _assess(client, deviation_id: int, **data: str):  # type: ignore[no-untyped-def]
    form = {"assess-outcome": "no_impact", "assess-rationale": "The medium was tested in use: sterile, "
            "endotoxin below limit; the bags are unaffected.", "assess-password": PASSWORD}
    form.update({f"assess-{k}": v for k, v in data.items()})
    return client.post(f"/release/deviations/{deviation_id}/assess", data=form)


def _after_release_section(qa) -> str:  # type: ignore[no-untyped-def]
    board = qa.get("/release").get_data(as_text=True)
    return board[board.index('id="after-release"'):board.index('id="expiring"')]


def test_qa_signs_that_a_late_deviation_leaves_the_lot_in_use_and_it_leaves_the_dashboard(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, deviation_id = _late_deviation(app, monkeypatch, client_as)
    qa = client_as("qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert 'id="deviation-assessment"' in page and "Sign the assessment" in page
    assert "Incubator door alarm" not in page[page.index('id="deviation-assessment"'):page.index('id="oos"')]

    done = _assess(qa, deviation_id)
    assert done.status_code == 302
    assert LATE not in _after_release_section(qa)
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert f'id="assessment-{deviation_id}"' in page and "No impact on the released bags" in page
    assert "Deviation after release assessed" in page and "Sign the assessment" not in page
    with app.extensions["mscbatch.db"].new_session() as session:
        assessment = session.scalar(select(DeviationAssessment).where(DeviationAssessment.deviation_id == deviation_id))
        assert assessment.locked_at is not None and assessment.severity == "critical"
        signature = session.scalar(select(Signature).where(Signature.entity_type == "release_deviation_assessment"))
        assert verify_signature(session, signature, assessment).valid
        assert session.get(Lot, lot_id).status == "released"
    assert _assess(qa, deviation_id).status_code == 409  # once only
    pdf = qa.get(f"/release/lots/{lot_id}/certificate.pdf")
    text = " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages).split())
    assert f"AFTER RELEASE, not weighed by the release signature: {LATE}. Assessed by QA (Qa" in text
    assert "No impact on the released bags: the lot stays in use. The medium was tested in use" in text


def test_qa_can_recall_the_lot_for_a_late_deviation_in_the_same_signed_step(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, deviation_id = _late_deviation(app, monkeypatch, client_as)
    qa = client_as("qa")
    done = _assess(qa, deviation_id, outcome="recall", rationale="Expired medium: potency and sterility not assured.")
    assert done.status_code == 302
    followed = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert "RECALLED" in followed and "The lot is recalled" in followed
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).status == "recalled"
        recall = session.scalar(select(Recall).where(Recall.lot_id == lot_id))
        assert recall is not None and LATE in recall.reason
        assert session.scalar(select(func.count()).select_from(BagHold).where(BagHold.recall_id == recall.id)) > 0


def test_an_assessment_is_refused_with_the_field_and_the_rule_and_writes_nothing(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, deviation_id = _late_deviation(app, monkeypatch, client_as)
    qa = client_as("qa")
    no_reason = _assess(qa, deviation_id, rationale="ok")
    assert no_reason.status_code == 422 and "Rationale: say why" in no_reason.get_data(as_text=True)
    no_outcome = _assess(qa, deviation_id, outcome="")
    assert no_outcome.status_code == 422 and "Choose the outcome" in no_outcome.get_data(as_text=True)
    wrong = _assess(qa, deviation_id, password="not-the-password")
    assert wrong.status_code in (401, 403) and "Sign the assessment" in wrong.get_data(as_text=True)
    assert _assess(client_as("technician"), deviation_id).status_code == 403
    with app.extensions["mscbatch.db"].new_session() as session:
        early = session.scalar(select(Deviation.id).where(Deviation.description == "Incubator door alarm 2 min"))
        assert session.scalar(select(func.count()).select_from(DeviationAssessment)) == 0
    weighed = _assess(qa, early)
    assert weighed.status_code == 409 and "it was weighed by the lot" in weighed.get_data(as_text=True)
    assert LATE in _after_release_section(qa)


def test_a_qa_user_who_recorded_the_deviation_does_not_assess_it(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    from tests.conftest import add_user

    lot_id, step_id = _released(app, monkeypatch)
    add_user(app, "maker-qa", ["technician", "qa"])
    with app.extensions["mscbatch.db"].new_session() as session:
        both = user(session, "maker-qa")
        deviation = steps.record_deviation(session, both, lot_id, step_id, severity="major", description=LATE)
        with pytest.raises(Conflict, match="segregation of duties"):
            assess_deviation(session, both, deviation.id, outcome="no_impact", password=PASSWORD,
                             rationale="Checked the medium certificate: within its use period.")
        assert session.scalar(select(func.count()).select_from(DeviationAssessment)) == 0
        assert assess_deviation(session, user(session, "qa"), deviation.id, outcome="no_impact", password=PASSWORD,
                                rationale="Checked the medium certificate: within its use period.").locked_at


def test_two_qa_people_assessing_at_once_give_one_assessment_and_one_refusal(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    """Both read the deviation as waiting before either writes (the rendezvous): the deviation's row lock makes
    the second wait for the first's commit and refuse (409); without it PostgreSQL's UNIQUE answered a 500."""
    from mscbatch.release import deviations
    from tests.reliability.races import Rendezvous, kinds, race

    _lot_id, deviation_id = _late_deviation(app, monkeypatch, client_as)
    meet, waiting = Rendezvous(guarded=True), deviations.deviations_after_release

    def read_then_meet(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = waiting(*args, **kwargs)
        meet()
        return found

    monkeypatch.setattr(deviations, "deviations_after_release", read_then_meet)
    outcomes = race(app, lambda session, n: user(session, ("qa", "qa2")[n]),
                    lambda session, signer: deviations.assess_deviation(
                        session, signer, deviation_id, outcome="no_impact", password=PASSWORD,
                        rationale="Medium certificate checked: within its use period.").id)
    assert kinds(outcomes) == ["ok", "refused"], outcomes
    assert "assessed already" in str(next(r for kind, r in outcomes if kind == "refused"))
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(func.count()).select_from(DeviationAssessment)) == 1
