"""Every signature on a lot's record is on its certificate of analysis, with its printed name, UTC date-time and
meaning (21 CFR 11.50): QA's assessment of a deviation recorded after release and the signatures of a recall
covering the lot, not only the disposition and OOS ones. And a deviation assessed after a conditional release
stays shown with its assessment once the completion signature comes after it."""
from __future__ import annotations

import io

from pypdf import PdfReader
from sqlalchemy import select

from mscbatch.lots.models import Lot
from mscbatch.recall.models import END_MEANING, Recall
from mscbatch.recall.services import START_MEANING, end_recall, start_recall
from mscbatch.release import release
from mscbatch.release.deviations import ASSESSED_MEANING, assess_deviation
from mscbatch.release.models import DeviationAssessment, LotDisposition
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import signatures_of
from mscbatch.site import local_and_utc
from tests.conftest import PASSWORD
from tests.integration.test_deviation_after_release import (
    LATE,
    TANK,
    _assess,
    _conditional_with_late_deviation,
    _late_deviation,
    _released,
)
from tests.integration.test_release_support import user


def _certificate(client, lot_id: int) -> str:  # type: ignore[no-untyped-def]
    pdf = client.get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.status_code == 200
    return " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages).split())


def _signature_table(text: str) -> str:
    return text[text.index("Electronic signatures"):]


def _row(signature: Signature) -> str:
    """A line of the certificate's signatures table: printed name, date-time (UTC), then the meaning."""
    return f"{signature.printed_name} {local_and_utc(signature.signed_at, seconds=True)} {signature.meaning}"


def _signatures(app, entity_type: str) -> list[Signature]:  # type: ignore[no-untyped-def]
    with app.extensions["mscbatch.db"].new_session() as session:
        found = list(session.scalars(select(Signature).where(Signature.entity_type == entity_type)
                                     .order_by(Signature.id)))
        session.expunge_all()
        return found


def test_the_assessment_signature_is_in_the_signatures_table_and_its_meaning_beside_the_deviation(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, deviation_id = _late_deviation(app, monkeypatch, client_as)
    qa = client_as("qa")
    assert _assess(qa, deviation_id).status_code == 302
    [signature] = _signatures(app, DeviationAssessment.__tablename__)
    assert signature.meaning == ASSESSED_MEANING
    text = _certificate(qa, lot_id)
    table = _signature_table(text)
    assert _row(signature) in table
    assert f"(deviation {deviation_id}, critical)" in table  # which record the signature is of
    assert (f"Assessed by QA ({signature.printed_name}, {local_and_utc(signature.signed_at)}, "
            f"meaning: {ASSESSED_MEANING}): No impact on the released bags") in text
    [release_signature] = _signatures(app, LotDisposition.__tablename__)
    assert _row(release_signature) in table  # the release signature stays


def test_a_recall_started_by_the_assessment_is_signed_on_the_certificate(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, deviation_id = _late_deviation(app, monkeypatch, client_as)
    qa = client_as("qa")
    assert _assess(qa, deviation_id, outcome="recall", rationale="Expired medium: sterility not assured.").status_code \
        == 302
    [recall_signature] = _signatures(app, Recall.__tablename__)
    assert recall_signature.meaning == START_MEANING
    table = _signature_table(_certificate(qa, lot_id))
    assert _row(recall_signature) in table
    assert f"recall R-{recall_signature.entity_id}" in table
    assert _row(_signatures(app, DeviationAssessment.__tablename__)[0]) in table


def test_a_donor_recall_covering_the_lot_shows_its_start_and_end_signatures(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    """A recall of the lot's donor covers the lot (recall.queries.recalls_covering); once ended (found invalid) the
    lot stays recalled, and both signatures stay on the certificate."""
    lot_id, _step = _released(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        qa = user(session, "qa")
        donor_id = session.get(Lot, lot_id).donor_id
        started = start_recall(session, qa, scope="donor", target_id=donor_id, password=PASSWORD,
                               reason="Late positive HBV NAT on the donor's archive sample")
    client = client_as("qa")
    table = _signature_table(_certificate(client, lot_id))
    [start] = _signatures(app, Recall.__tablename__)
    assert _row(start) in table and f"recall R-{started.recall_id}" in table
    with app.extensions["mscbatch.db"].new_session() as session:
        end_recall(session, user(session, "qa2"), started.recall_id, password=PASSWORD,
                   reason="Confirmatory NAT negative: false positive")
        assert session.get(Lot, lot_id).status == "recalled"
    table = _signature_table(_certificate(client, lot_id))
    start, end = _signatures(app, Recall.__tablename__)
    assert (start.meaning, end.meaning) == (START_MEANING, END_MEANING)
    assert _row(start) in table and _row(end) in table


def test_a_deviation_assessed_before_the_completion_signature_stays_shown_with_its_assessment(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    """Review finding: after the completion signature (the last release signature) the deviation recorded after
    the conditional release and assessed before the completion was no longer shown as after release, assessed."""
    lot_id, deviation_id = _conditional_with_late_deviation(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        assess_deviation(session, user(session, "qa"), deviation_id, outcome="no_impact", password=PASSWORD,
                         rationale="Temperature log of the bags stayed below -150 C: unaffected.")
        release.complete_conditional_release(session, user(session, "qa2"), lot_id, PASSWORD)
        assessment = session.scalar(select(DeviationAssessment).where(DeviationAssessment.deviation_id == deviation_id))
        [signature] = signatures_of(session, assessment)
        session.expunge_all()
    qa = client_as("qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    section = page[page.index('id="deviation-assessment"'):page.index('id="oos"')]
    assert "Deviations recorded after release" in section and TANK in section
    assert f'id="assessment-{deviation_id}"' in section and "No impact on the released bags" in section
    assert f"Signed: {signature.printed_name}" in section and f"“{ASSESSED_MEANING}”" in section
    assert "Sign the assessment" not in section
    assert f"<strong>AFTER RELEASE, assessed:</strong> critical: {TANK}" in page  # the summary too
    text = _certificate(qa, lot_id)
    assert (f"AFTER RELEASE, not weighed by the release signature: {TANK}. Assessed by QA ("
            f"{signature.printed_name}, {local_and_utc(signature.signed_at)}, meaning: {ASSESSED_MEANING})") in text
    assert _row(signature) in _signature_table(text)


def test_a_deviation_awaiting_assessment_is_listed_and_one_weighed_by_the_release_is_not(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, _deviation_id = _late_deviation(app, monkeypatch, client_as)
    qa = client_as("qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    section = page[page.index('id="deviation-assessment"'):page.index('id="oos"')]
    assert LATE in section and "Sign the assessment" in section
    assert "Incubator door alarm" not in section  # recorded before the release: weighed by its signature
    text = _certificate(qa, lot_id)
    assert f"AFTER RELEASE, not weighed by the release signature: {LATE}" in text
    assert "Assessed by QA" not in text
    assert "AFTER RELEASE, not weighed by the release signature: Incubator door alarm" not in text
