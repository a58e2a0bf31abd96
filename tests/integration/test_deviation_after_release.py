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
from mscbatch.release.models import DISPOSITION_KINDS, DeviationAssessment, ReleaseResult
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import verify as verify_signature
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen, seen_of_deviation


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
    return client.post(f"/release/deviations/{deviation_id}/assess", data={**form, **seen_of_deviation(client, deviation_id)})


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


# ---- no release signature while a deviation awaits QA's assessment ----------------------------------------------

TANK = "LN2 tank level alarm: bags above -135 C for 3 h"


def _conditional_with_late_deviation(app, monkeypatch) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A lot conditionally released (sterility incubating), a critical deviation recorded on it afterwards, then a
    passing sterility result: only QA's completion signature is left. (lot id, deviation id)"""
    from mscbatch.site import site_today

    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        tech, qa = user(session, "technician"), user(session, "qa")
        enter_panel(session, tech, lot_id, skip=("sterility",))
        release.release_lot(session, qa, lot_id, PASSWORD, conditional_tests=["sterility"],
                            justification="sterility incubating, patient scheduled")
        step_id = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id).limit(1))
        deviation = steps.record_deviation(session, tech, lot_id, step_id, severity="critical", description=TANK)
        results.enter_result(session, tech, lot_id, results.ResultEntry(
            test_id="sterility", value="negative", unit="", analyst="A", tested_on=site_today()))
        return lot_id, deviation.id


def test_completion_is_refused_while_a_deviation_awaits_assessment_and_allowed_once_assessed(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    """Review finding: the completion signature became the lot's last release signature, and a deviation recorded
    before it but after the conditional release fell off the dashboard with no assessment, ever."""
    from mscbatch.release.queries import deviations_after_release

    lot_id, deviation_id = _conditional_with_late_deviation(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        with pytest.raises(Conflict) as refused:
            release.complete_conditional_release(session, user(session, "qa2"), lot_id, PASSWORD)
        message = str(refused.value)
        assert message.startswith("Completion refused: ") and f"deviation {deviation_id} (critical" in message
        assert TANK in message and "awaits QA's assessment: assess it first on the lot's review page" in message
        assert session.get(Lot, lot_id).status == "conditional_release"
        assert [d.id for d, _lot in deviations_after_release(session, lot_id)] == [deviation_id]  # still waiting
        assert session.scalar(select(func.count()).select_from(Signature).where(
            Signature.meaning == DISPOSITION_KINDS["completion"])) == 0
        assess_deviation(session, user(session, "qa"), deviation_id, outcome="no_impact", password=PASSWORD,
                         rationale="Temperature log of the bags stayed below -150 C: unaffected.")
        release.complete_conditional_release(session, user(session, "qa2"), lot_id, PASSWORD)
        assert session.get(Lot, lot_id).status == "released"
        assert session.scalar(select(DeviationAssessment.deviation_id)) == deviation_id


def test_the_review_page_lists_the_waiting_deviation_among_the_blockers_and_refuses_the_signature(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, deviation_id = _conditional_with_late_deviation(app, monkeypatch)
    qa = client_as("qa2")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    blockers = page[page.index('id="blocking"'):page.index('id="results"')]
    assert f"deviation {deviation_id} (critical" in blockers and "awaits QA&#39;s assessment" in blockers
    signed = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id), "action": "complete", "release-password": PASSWORD})
    assert signed.status_code == 409
    assert "Completion refused: deviation" in signed.get_data(as_text=True)
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).status == "conditional_release"
