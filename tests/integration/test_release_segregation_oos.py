"""Segregation of duties for the conclusion of an OOS investigation, on SQLite and PostgreSQL (EU GMP ch. 2; Reg.
2017/1569 art. 10: QC and production independent of QA's decisions). Confirming an OOS decides the lot (rejected,
or recalled once released) as invalidating it does: a QA person who entered results of the lot or recorded its
manufacture is refused both, with the release's rule (release.queries.involvement) and words, 409, nothing written
(no signature, no audit event: the release's refusal is not audited either), while a colleague concludes it."""
from __future__ import annotations

import html
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.errors import Conflict
from mscbatch.lots import services
from mscbatch.lots.models import Lot
from mscbatch.release import oos, results
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OOS_CONFIRMED, OOS_OPEN, OosInvestigation
from mscbatch.signatures.models import Signature
from mscbatch.site import site_today
from tests.conftest import PASSWORD, add_user
from tests.integration.lot_factories import approved_adipose_donor, cryopreserved_lot
from tests.integration.test_release_segregation_corrections import _correct_p0
from tests.integration.test_release_support import signed_in_closing, user
from tests.integration.test_s37_release_seen import seen_of_oos

ENTERED = "You entered results of this lot; another QA person must judge its OOS (segregation of duties, EU GMP ch. 2)"
RECORDED = ("You recorded the manufacture of this lot; another QA person must judge its OOS (segregation of duties, "
            "EU GMP ch. 2)")
WHY = "Viability confirmed low on a second count; no laboratory error found"


@pytest.fixture
def techqa(app: Any, users: Any) -> Any:
    """A person holding both roles, as a small unit has (DOMAIN.md section 1)."""
    return add_user(app, "techqa", ["technician", "qa"], "Terry Tech-QA")


def _quarantined_lot(session: Any) -> int:
    lot_id, _bags = cryopreserved_lot(session, approved_adipose_donor(session), with_reagents=True, placed=True)
    services.transition_lot(session, user(session, "technician"), lot_id, "quarantine", "ready for QC")
    return lot_id


def _failing_viability_by(session: Any, lot_id: int, who: str) -> OosInvestigation:
    """Every result passing but viability, 61 %, entered by `who`: its OOS opens."""
    enter_panel(session, user(session, "technician"), lot_id, skip=("viability",))
    results.enter_result(session, user(session, who), lot_id, results.ResultEntry(
        test_id="viability", value="61", unit="%", analyst="Terry", tested_on=site_today()))
    found = session.scalar(select(OosInvestigation).where(OosInvestigation.lot_id == lot_id))
    assert found is not None and found.status == OOS_OPEN
    return found


def _confirm(client: Any, oos_id: int) -> Any:
    return client.post(f"/release/oos/{oos_id}", data={"action": "confirm", "oos-investigation": WHY,
                                                       "oos-password": PASSWORD, **seen_of_oos(client, oos_id)})


def _events(session: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(AuditEvent)))


def _signatures_by(session: Any, user_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(Signature).where(Signature.signer_id == user_id)))


def _refused_then_a_colleague_confirms(app: Any, session: Any, lot_id: int, oos_id: int, techqa: Any,
                                       words: str) -> None:
    client = signed_in_closing(app, session, "techqa")
    page = html.unescape(client.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert words in page[page.index('id="oos"'):]  # said beside the investigation, before anyone signs
    before = _events(session)
    session.close()
    refused = _confirm(client, oos_id)
    assert refused.status_code == 409
    body = html.unescape(refused.get_data(as_text=True))
    assert words in body and "Nothing was signed" in body
    assert _events(session) == before  # nothing written, the refusal neither (as the release's refusal)
    assert session.get(OosInvestigation, oos_id).status == OOS_OPEN
    assert not session.get(OosInvestigation, oos_id).investigation
    assert session.get(Lot, lot_id).status == "quarantine"
    assert _signatures_by(session, techqa.id) == 0

    assert _confirm(signed_in_closing(app, session, "qa"), oos_id).status_code == 302  # a colleague may
    session.expire_all()
    assert session.get(OosInvestigation, oos_id).status == OOS_CONFIRMED
    assert session.get(Lot, lot_id).status == "rejected"


def test_who_entered_the_failing_result_may_not_confirm_its_oos_and_a_colleague_may(app, db_session, techqa):
    session = db_session
    lot_id = _quarantined_lot(session)
    investigation = _failing_viability_by(session, lot_id, "techqa")
    _refused_then_a_colleague_confirms(app, session, lot_id, investigation.id, techqa, ENTERED)


def test_who_recorded_the_manufacture_may_not_confirm_its_oos(app, db_session, techqa):
    session = db_session
    lot_id, _bags = cryopreserved_lot(session, approved_adipose_donor(session), with_reagents=True, placed=True)
    _correct_p0(session, lot_id)  # techqa corrects a passage: manufacture, named by the audit trail alone
    services.transition_lot(session, user(session, "technician"), lot_id, "quarantine", "ready for QC")
    investigation = _failing_viability_by(session, lot_id, "technician")
    _refused_then_a_colleague_confirms(app, session, lot_id, investigation.id, techqa, RECORDED)


def test_the_service_refuses_both_conclusions_before_reading_the_investigation(app, db_session, techqa):
    """confirm_oos and invalidate_oos share the check, made before the investigation text is judged: the involved
    person is told the rule, not to write more."""
    session = db_session
    lot_id = _quarantined_lot(session)
    investigation = _failing_viability_by(session, lot_id, "techqa")
    retest = results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
        test_id="viability", value="91", unit="%", analyst="Tom QC", tested_on=site_today()))
    with pytest.raises(Conflict, match="another QA person must judge its OOS"):
        oos.confirm_oos(session, user(session, "techqa"), investigation.id, "", PASSWORD)
    with pytest.raises(Conflict, match="You entered results of this lot; another QA person must judge its OOS"):
        oos.invalidate_oos(session, user(session, "techqa"), investigation.id, retest.id, WHY, PASSWORD,
                           assignable_cause="analyst_error")
    session.expire_all()
    assert session.get(OosInvestigation, investigation.id).status == OOS_OPEN
    assert session.get(Lot, lot_id).status == "quarantine"
    # a QA person who took no part sees no such words, and concludes it
    assert oos.involved_words(session, session.get(Lot, lot_id), user(session, "qa")) is None
    oos.confirm_oos(session, user(session, "qa"), investigation.id, WHY, PASSWORD)
    assert session.get(Lot, lot_id).status == "rejected"
