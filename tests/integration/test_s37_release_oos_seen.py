"""The OOS close form and the clinician's request for exceptional use vouch only for what the review page showed, on
SQLite and PostgreSQL (review finding, Part 11), as the release's signatures do (test_s37_release_seen): each form
carries the page's fingerprint (release.release.page_fingerprint) and the signature is refused, 409, nothing written
and the password not even checked, if the lot's record changed since. Invalidating an OOS signs on the retest's
value: a retest corrected after the page loaded leaves the verdicts as they were (the failing result stands until
the investigation closes), so the fingerprint covers every result the page lists, the retest's value included."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.lots.models import Lot
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OOS_OPEN, LotDisposition, OosInvestigation, ReleaseResult
from mscbatch.release.results import ResultEntry, enter_result
from mscbatch.signatures.models import Signature
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.test_release_support import (
    EXCEPTIONAL_WHY,
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
    user,
)
from tests.integration.test_s37_release_seen import CHANGED, seen

INVESTIGATION = "Stain plate mis-pipetted (lab error, see DV-12); the retest in duplicate passed"
RESULTS_CHANGED = CHANGED + "its results or verdicts changed): review it again; nothing was signed"


def _oos_with_retest(app: Any, monkeypatch: Any) -> tuple[int, int, int, int]:
    """The demo quarantined lot with CD105 at 94 % (its OOS open) and a passing retest at 97 %:
    (lot, OOS, failing result, retest)."""
    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        tech = user(session, "technician")
        enter_panel(session, tech, lot_id, {"cd105": ("94", "%")})
        [opened] = session.scalars(select(OosInvestigation).where(OosInvestigation.lot_id == lot_id)).all()
        oos_id, failing_id = opened.id, opened.result_id
        retest = enter_result(session, tech, lot_id, ResultEntry(test_id="cd105", value="97", unit="%",
                                                                  analyst="Tom QC", tested_on=site_today()))
        return lot_id, oos_id, failing_id, retest.id


def _correct(client: Any, result_id: int, value: str, unit: str) -> None:
    corrected = client.post(f"/release/results/{result_id}/correct", data={
        "value": value, "unit": unit, "reason": "Transcription error: the report reads " + value})
    assert corrected.status_code == 302, corrected.get_data(as_text=True)[:3000]


def _record(app: Any, lot_id: int, oos_id: int, failing_id: int) -> tuple[Any, ...]:
    """What a signature would write: the lot's status, the OOS, the failing result's flag, the signatures, the
    dispositions, the audit trail, and QA's failed password count."""
    with app.extensions["mscbatch.db"].new_session() as session:
        oos = session.get(OosInvestigation, oos_id)
        return (session.get(Lot, lot_id).status, oos.status, oos.retest_result_id, oos.investigation,
                session.get(ReleaseResult, failing_id).invalidated_at,
                session.scalar(select(func.count()).select_from(Signature)),
                session.scalar(select(func.count()).select_from(LotDisposition)),
                session.scalar(select(func.count()).select_from(AuditEvent)),
                session.scalar(select(User.failed_logins).where(User.username == "qa")))


def _close(qa: Any, oos_id: int, action: str, retest_id: int = 0, password: str = PASSWORD, **seen_: str) -> Any:
    return qa.post(f"/release/oos/{oos_id}", data={
        "action": action, "oos-investigation": INVESTIGATION, "oos-retest_result_id": str(retest_id),
        "oos-assignable_cause": "analyst_error", "oos-password": password, **seen_})


def test_an_oos_is_not_invalidated_with_a_retest_corrected_after_the_page_showed_it(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    lot_id, oos_id, failing_id, retest_id = _oos_with_retest(app, monkeypatch)
    qa, tech = client_as("qa"), client_as("technician")
    shown = seen(qa, lot_id)
    assert shown["seen"]
    # the page showed the retest at 97 %; QC corrects it to 96 %, still passing: the verdicts are as they were
    # (the failing 94 % stands until the investigation closes), yet QA would sign on a value never shown
    _correct(tech, retest_id, "96", "%")
    before = _record(app, lot_id, oos_id, failing_id)
    assert before[:3] == ("quarantine", OOS_OPEN, None) and not before[3] and before[4] is None
    refused = _close(qa, oos_id, "invalidate", retest_id, **shown)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409, text[:3000]
    assert RESULTS_CHANGED in text
    assert _record(app, lot_id, oos_id, failing_id) == before  # nothing signed, nothing written
    # the page shown again says 96 %: signed from it, the invalidation vouches for what QA saw
    signed = _close(qa, oos_id, "invalidate", retest_id, **seen(qa, lot_id))
    assert signed.status_code == 302, signed.get_data(as_text=True)[:3000]
    after = _record(app, lot_id, oos_id, failing_id)
    assert after[1:3] == ("invalidated", retest_id) and after[4] is not None and after[5] == before[5] + 1


def test_an_oos_is_not_confirmed_when_the_lots_results_changed_and_the_password_is_not_even_checked(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    lot_id, oos_id, failing_id, _retest_id = _oos_with_retest(app, monkeypatch)
    qa, tech = client_as("qa"), client_as("technician")
    shown = seen(qa, lot_id)
    with app.extensions["mscbatch.db"].new_session() as session:
        endotoxin = session.scalar(select(ReleaseResult.id).where(ReleaseResult.lot_id == lot_id,
                                                                  ReleaseResult.test_id == "endotoxin"))
    _correct(tech, endotoxin, "0.49", "EU/mL")
    before = _record(app, lot_id, oos_id, failing_id)
    # confirming rejects the lot under QA's signature: refused before the password is read (a wrong one would
    # otherwise count towards QA's lockout for a page that was out of date)
    for password in ("not my password", PASSWORD):
        refused = _close(qa, oos_id, "confirm", password=password, **shown)
        assert refused.status_code == 409, refused.get_data(as_text=True)[:3000]
        assert RESULTS_CHANGED in refused.get_data(as_text=True)
        assert _record(app, lot_id, oos_id, failing_id) == before
    signed = _close(qa, oos_id, "confirm", **seen(qa, lot_id))
    assert signed.status_code == 302, signed.get_data(as_text=True)[:3000]
    after = _record(app, lot_id, oos_id, failing_id)
    assert after[:2] == ("rejected", "confirmed") and after[5] == before[5] + 2  # the OOS's and the rejection's


def test_an_oos_close_form_without_the_fingerprint_signs_nothing(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, oos_id, failing_id, retest_id = _oos_with_retest(app, monkeypatch)
    qa = client_as("qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    close_form = page[page.index(f'action="/release/oos/{oos_id}"'):]
    assert f'name="seen" value="{seen(qa, lot_id)["seen"]}"' in close_form[:close_form.index("</form>")]
    before = _record(app, lot_id, oos_id, failing_id)
    for action in ("invalidate", "confirm"):
        refused = _close(qa, oos_id, action, retest_id)
        assert refused.status_code == 409
        assert "The form does not say which record of the lot the page showed you" in refused.get_data(as_text=True)
    assert _record(app, lot_id, oos_id, failing_id) == before


def _oos_cord_lot(app: Any, monkeypatch: Any) -> tuple[int, str]:
    """An OOS UC-MSC lot in quarantine (viability 65 %) and a lupus patient who can receive it."""
    seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        lot_id = cord_quarantine_lot(session)
        code = lupus_patient_code(session, code="SLE-UC-101")
        enter_panel(session, user(session, "technician"), lot_id, {"viability": ("65", "%")})
    return lot_id, code


def _requests(app: Any, lot_id: int) -> tuple[int, int, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return (session.scalar(select(func.count()).select_from(LotDisposition).where(LotDisposition.lot_id == lot_id)),
                session.scalar(select(func.count()).select_from(Signature)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def test_a_clinicians_request_is_refused_when_the_lots_results_changed_since_the_page(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    lot_id, code = _oos_cord_lot(app, monkeypatch)
    clinician, tech = client_as("clinician"), client_as("technician")
    shown = seen(clinician, lot_id)
    assert shown["seen"], "the clinician's request form carries the page's fingerprint"
    with app.extensions["mscbatch.db"].new_session() as session:
        endotoxin = session.scalar(select(ReleaseResult.id).where(ReleaseResult.lot_id == lot_id,
                                                                  ReleaseResult.test_id == "endotoxin"))
    _correct(tech, endotoxin, "0.49", "EU/mL")
    before = _requests(app, lot_id)
    form = {"exceptional-patient_code": code, "exceptional-justification": EXCEPTIONAL_WHY,
            "exceptional-password": PASSWORD}
    refused = clinician.post(f"/release/lots/{lot_id}/exceptional", data={**form, **shown})
    assert refused.status_code == 409, refused.get_data(as_text=True)[:3000]
    assert RESULTS_CHANGED in refused.get_data(as_text=True)
    assert _requests(app, lot_id) == before
    missing = clinician.post(f"/release/lots/{lot_id}/exceptional", data=form)
    assert missing.status_code == 409
    assert "The form does not say which record of the lot the page showed you" in missing.get_data(as_text=True)
    assert _requests(app, lot_id) == before
    asked = clinician.post(f"/release/lots/{lot_id}/exceptional", data={**form, **seen(clinician, lot_id)})
    assert asked.status_code == 302, asked.get_data(as_text=True)[:3000]
    assert _requests(app, lot_id)[:2] == (before[0] + 1, before[1] + 1)


def test_the_oos_services_without_a_page_read_the_current_record(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    """`seen` None (in-process callers, the demo): not checked."""
    from mscbatch.release import oos

    lot_id, oos_id, _failing_id, retest_id = _oos_with_retest(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        oos.invalidate_oos(session, user(session, "qa"), oos_id, retest_id, INVESTIGATION, PASSWORD,
                           assignable_cause="analyst_error")
        assert session.get(OosInvestigation, oos_id).status == "invalidated"
