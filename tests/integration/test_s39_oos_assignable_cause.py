"""An OOS is invalidated only on a documented assignable laboratory cause (FDA OOS guidance 2006, phase I
laboratory investigation; MHRA OOS guidance). One passing retest and any ten characters of text invalidated a failing
result, under the fixed signature meaning "OOS invalidated (laboratory error, valid retest)", whatever the text
said. Now the cause is chosen from a fixed list (core.oos_causes): without one the invalidation is refused (422 on
`assignable_cause`, nothing written or signed) and the OOS can only be confirmed. The cause is signed with the
investigation, shown on the review page, in the certificate's OOS table and, on the test's row of its results
table, beside the retest that replaced the failing result, and kept in the audit trail."""
from __future__ import annotations

import io
import re

import pytest
from alembic import command
from pypdf import PdfReader
from sqlalchemy import create_engine, func, inspect, select, text, update

from mscbatch.audit.models import AuditEvent
from mscbatch.core.oos_causes import ASSIGNABLE_CAUSES, NO_CAUSE_RECORDED, cause_words
from mscbatch.core.signing import content_hash
from mscbatch.database import normalise_url
from mscbatch.errors import ValidationFailed
from mscbatch.lots.models import Lot
from mscbatch.migrate import alembic_config, upgrade
from mscbatch.release import oos, results
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OOS_CONFIRMED, OOS_INVALIDATED, OOS_OPEN, OosInvestigation, ReleaseResult
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import signatures_of, verify
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, signed_in_closing, user
from tests.integration.test_s37_release_seen import seen
from tests.reliability.support import empty_database

INVESTIGATION = ("Phase I: the LAL plate's positive product control recovered 230 %; the analyst's worksheet shows "
                 "a 1:10 dilution instead of 1:40. Retest of the retained sample at 1:40: 0.12 EU/mL.")
INSTRUMENT = ASSIGNABLE_CAUSES["instrument"]


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _failing_endotoxin_and_retest(app, lot_id: int) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """A full panel whose endotoxin is 0.8 EU/mL (> 0.5: an OOS opens), then its retest 0.12: (oos, failing,
    retest) ids."""
    with app.extensions["mscbatch.db"].new_session() as session:
        tech = user(session, "technician")
        enter_panel(session, tech, lot_id, {"endotoxin": ("0.8", "EU/mL")})
        retest = results.enter_result(session, tech, lot_id, results.ResultEntry(
            test_id="endotoxin", value="0.12", unit="EU/mL", analyst="Tom QC", tested_on=site_today()))
        opened = session.scalar(select(OosInvestigation).where(OosInvestigation.lot_id == lot_id))
        return opened.id, opened.result_id, retest.id


def _state(app, oos_id: int, failing_id: int) -> tuple:  # type: ignore[no-untyped-def]
    """What a refused invalidation must leave as it was: the OOS, the failing result, the OOS's signatures."""
    with app.extensions["mscbatch.db"].new_session() as session:
        found = session.get(OosInvestigation, oos_id)
        failing = session.get(ReleaseResult, failing_id)
        signed = session.scalar(select(func.count()).select_from(Signature).where(
            Signature.entity_type == "release_oos", Signature.entity_id == str(oos_id)))
        return (found.status, found.assignable_cause, found.investigation, found.retest_result_id, found.locked_at,
                failing.invalidated_at, signed)


def test_the_cause_list_has_its_words_in_one_place():
    assert list(ASSIGNABLE_CAUSES) == ["analyst_error", "instrument", "method", "sample", "reagent", "other"]
    assert cause_words("instrument") == "Instrument or equipment failure"
    assert cause_words(None) == NO_CAUSE_RECORDED
    assert max(len(code) for code in ASSIGNABLE_CAUSES) <= OosInvestigation.__table__.c.assignable_cause.type.length


@pytest.mark.parametrize("cause", [None, "", "   ", "lab error", "Instrument or equipment failure"])
def test_the_service_refuses_an_invalidation_without_an_assignable_cause(app, lot_id, cause):
    oos_id, failing_id, retest_id = _failing_endotoxin_and_retest(app, lot_id)
    before = _state(app, oos_id, failing_id)
    assert before[0] == OOS_OPEN and before[-1] == 0
    with app.extensions["mscbatch.db"].new_session() as session:
        with pytest.raises(ValidationFailed) as refused:
            oos.invalidate_oos(session, user(session, "qa"), oos_id, retest_id, INVESTIGATION, PASSWORD,
                               assignable_cause=cause)
        assert refused.value.status == 422 and set(refused.value.errors or {}) == {"assignable_cause"}
    assert _state(app, oos_id, failing_id) == before  # nothing written, nothing signed


def test_the_service_invalidates_with_a_cause_and_signs_it(app, lot_id):
    oos_id, failing_id, retest_id = _failing_endotoxin_and_retest(app, lot_id)
    with app.extensions["mscbatch.db"].new_session() as session:
        closed = oos.invalidate_oos(session, user(session, "qa"), oos_id, retest_id, INVESTIGATION, PASSWORD,
                                    assignable_cause="instrument")
        assert (closed.status, closed.assignable_cause, closed.cause_words) == (OOS_INVALIDATED, "instrument",
                                                                                INSTRUMENT)
    with app.extensions["mscbatch.db"].new_session() as session:
        found = session.get(OosInvestigation, oos_id)
        assert found.signed_content()["assignable_cause"] == "instrument"
        [signature] = signatures_of(session, found)
        assert signature.content_sha256 == content_hash(found.signed_content())
        assert verify(session, signature, found).valid
        assert INSTRUMENT in session.get(ReleaseResult, failing_id).invalidated_reason
        # the audit trail keeps the cause, as a column of the investigation set at its closing
        assert session.scalar(select(AuditEvent.new_value).where(
            AuditEvent.entity_type == "release_oos", AuditEvent.entity_id == str(oos_id),
            AuditEvent.field == "assignable_cause")) == "instrument"
        # the signature vouches for the cause: another cause written behind the record's back breaks it
        session.execute(update(OosInvestigation).where(OosInvestigation.id == oos_id)
                        .values(assignable_cause="reagent"))
        session.expire_all()
        found = session.get(OosInvestigation, oos_id)
        assert verify(session, signature, found).problem == "the record changed after it was signed"
        session.rollback()


def test_an_investigation_closed_before_causes_were_recorded_still_verifies(app, lot_id):
    """Old closed OOS have no cause (migration 0020: NULL): their signed content, made without it, is unchanged."""
    oos_id, _failing_id, retest_id = _failing_endotoxin_and_retest(app, lot_id)
    with app.extensions["mscbatch.db"].new_session() as session:
        oos.confirm_oos(session, user(session, "qa"), oos_id, INVESTIGATION, PASSWORD)
    with app.extensions["mscbatch.db"].new_session() as session:
        found = session.get(OosInvestigation, oos_id)
        assert found.assignable_cause is None and "assignable_cause" not in found.signed_content()
        assert all(verify(session, s, found).valid for s in signatures_of(session, found))


def test_confirming_needs_no_cause(app, lot_id):
    oos_id, _failing_id, _retest_id = _failing_endotoxin_and_retest(app, lot_id)
    with app.extensions["mscbatch.db"].new_session() as session:
        closed = oos.confirm_oos(session, user(session, "qa"), oos_id, "No laboratory error found: the failure stands.",
                                 PASSWORD)
        assert closed.status == OOS_CONFIRMED and closed.assignable_cause is None
        assert session.get(Lot, lot_id).status == "rejected"


def _form(retest_id: int, cause: str | None) -> dict[str, str]:
    form = {"action": "invalidate", "oos-investigation": INVESTIGATION, "oos-retest_result_id": str(retest_id),
            "oos-password": PASSWORD}
    if cause is not None:
        form["oos-assignable_cause"] = cause
    return form


def _certificate(client, lot_id: int) -> str:  # type: ignore[no-untyped-def]
    pdf = client.get(f"/release/lots/{lot_id}/certificate.pdf")
    assert pdf.status_code == 200
    return " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf.data)).pages).split())


def test_the_web_form_refuses_an_invalidation_without_a_cause_then_shows_the_cause(app, db_session, lot_id):
    oos_id, failing_id, retest_id = _failing_endotoxin_and_retest(app, lot_id)
    qa = signed_in_closing(app, db_session, "qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert 'name="oos-assignable_cause"' in page and f'<option value="instrument">{INSTRUMENT}</option>' in page
    before = _state(app, oos_id, failing_id)
    for cause in (None, ""):
        refused = qa.post(f"/release/oos/{oos_id}", data={**_form(retest_id, cause), **seen(qa, lot_id)})
        body = refused.get_data(as_text=True)
        assert refused.status_code == 422, body[:2000]
        assert re.search(rf'id="cause-{oos_id}-error">Assignable cause: choose the laboratory cause', body)
        assert _state(app, oos_id, failing_id) == before  # open, unsigned, the failing result standing

    signed = qa.post(f"/release/oos/{oos_id}", data={**_form(retest_id, "instrument"), **seen(qa, lot_id)})
    assert signed.status_code == 302, signed.get_data(as_text=True)[:3000]
    after = _state(app, oos_id, failing_id)
    assert after[:2] == (OOS_INVALIDATED, "instrument") and after[-1] == 1

    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert f"<strong>Assignable laboratory cause:</strong> {INSTRUMENT}" in page
    replaced = f"retest; first result 0.8 EU/mL invalidated, OOS {oos_id}: {INSTRUMENT}"
    assert f'<p class="hint oos-replaced">({replaced})</p>' in page

    text = _certificate(qa, lot_id)
    results_table = text[text.index("Overall verdict"):text.index("Out-of-specification investigations")]
    assert "first result 0.8 EU/mL invalidated" in results_table, results_table  # the results table alone says it
    assert f"OOS {oos_id}: Instrument or equipment" in results_table
    oos_table = text[text.index("Out-of-specification investigations"):text.index("Electronic signatures")]
    assert f"Assignable laboratory cause: {INSTRUMENT}." in oos_table


def test_migration_0020_adds_the_column_and_its_downgrade_drops_it(database_url, tmp_path):
    with empty_database(database_url, tmp_path) as url:
        upgrade(url)
        engine = create_engine(normalise_url(url))
        try:
            def columns() -> set[str]:
                with engine.connect() as connection:
                    return {c["name"] for c in inspect(connection).get_columns("release_oos")}

            assert "assignable_cause" in columns()
            command.downgrade(alembic_config(url), "0019")
            assert "assignable_cause" not in columns() and "investigation" in columns()
            command.upgrade(alembic_config(url), "0020")
            assert "assignable_cause" in columns()
            with engine.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM release_oos")).scalar() == 0
        finally:
            engine.dispose()


def test_other_cause_needs_an_investigation_that_describes_the_cause(app, lot_id):
    """Review of the change: "other" plus any 10 characters still invalidated an OOS, the very thing QA asked to stop.
    With "other" the investigation must describe the cause (50 characters at least); nothing signed before."""
    oos_id, failing_id, retest_id = _failing_endotoxin_and_retest(app, lot_id)
    before = _state(app, oos_id, failing_id)
    with app.extensions["mscbatch.db"].new_session() as session:
        with pytest.raises(ValidationFailed) as refused:
            oos.invalidate_oos(session, user(session, "qa"), oos_id, retest_id, "Retest passed.", PASSWORD,
                               assignable_cause="other")
        assert refused.value.status == 422 and set(refused.value.errors or {}) == {"investigation"}
        assert "at least 50 characters" in refused.value.message
    assert _state(app, oos_id, failing_id) == before
    with app.extensions["mscbatch.db"].new_session() as session:
        closed = oos.invalidate_oos(session, user(session, "qa"), oos_id, retest_id, INVESTIGATION, PASSWORD,
                                    assignable_cause="other")
        assert (closed.status, closed.assignable_cause) == (OOS_INVALIDATED, "other")
