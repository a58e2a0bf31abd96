"""Segregation of duties for corrections of the manufacturing record, on SQLite and PostgreSQL (DOMAIN.md section 1:
QA never releases a lot whose manufacture they recorded; EU GMP ch. 2). A passage or reagent use keeps its first
author only (recorded_by_id): a technician+QA person who corrected one is named by the audit trail alone
(entity types lot_process_step and reagent_use), and is barred from releasing the lot and from judging its OOS,
while another QA person may still do both."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.lots import corrections, reagent_corrections, services, steps
from mscbatch.lots.models import Lot, ProcessStep, ReagentLot, ReagentUse
from mscbatch.release import results
from mscbatch.release.demo import enter_panel
from mscbatch.release.models import OOS_INVALIDATED, OOS_OPEN, LotDisposition, OosInvestigation
from mscbatch.release.queries import involvement
from mscbatch.signatures.models import Signature
from mscbatch.site import site_today
from tests.conftest import PASSWORD, add_user
from tests.integration.lot_factories import approved_adipose_donor, cryopreserved_lot
from tests.integration.test_release_support import signed_in_closing, user
from tests.integration.test_s37_release_seen import seen

#: the factory lot's viable cell count result is above its harvest: QA justifies it with the release
COUNT_WHY = "Harvest count from a different counter, see DV-1"
SEGREGATION = "you recorded the manufacture of this lot; another QA person must release it"


@pytest.fixture
def techqa(app: Any, users: Any) -> Any:
    """A person holding both roles, as a small unit has (DOMAIN.md section 1)."""
    return add_user(app, "techqa", ["technician", "qa"], "Terry Tech-QA")


def _lot_made_by_the_technician(session: Any) -> int:
    lot_id, _bags = cryopreserved_lot(session, approved_adipose_donor(session), with_reagents=True, placed=True)
    return lot_id


def _p0(session: Any, lot_id: int) -> ProcessStep:
    return session.scalar(select(ProcessStep).where(ProcessStep.lot_id == lot_id, ProcessStep.passage_number == 0))


def _correct_p0(session: Any, lot_id: int, who: str = "techqa") -> None:
    p0 = _p0(session, lot_id)
    corrections.correct_passage(session, user(session, who), lot_id, p0.id, steps.PassageDetails(
        passage_number=None, performed_on=p0.performed_on, seeded_cells=p0.seeded_cells,
        harvested_cells=p0.harvested_cells + 1_000_000, viability_percent="95", days_in_culture="4"),
        "harvested count typed wrong")


def _correct_trypsin_use(session: Any, lot_id: int) -> int:
    use = session.scalar(select(ReagentUse).join(ReagentLot, ReagentLot.id == ReagentUse.reagent_lot_id)
                         .where(ReagentUse.lot_id == lot_id, ReagentLot.reagent_type == "trypsin"))
    reagent_corrections.correct_reagent_use(session, user(session, "techqa"), lot_id, use.id,
                                            reagent_lot_id=use.reagent_lot_id,
                                            used_on=_p0(session, lot_id).performed_on - timedelta(days=1),
                                            reason="date typed wrong")
    return use.id


def _to_quarantine(session: Any, lot_id: int, panel: dict[str, tuple[str, str]] | None = None) -> None:
    services.transition_lot(session, user(session, "technician"), lot_id, "quarantine", "ready for QC")
    enter_panel(session, user(session, "technician"), lot_id, panel)


def _release(client: Any, lot_id: int) -> Any:
    return client.post(f"/release/lots/{lot_id}/release", data={**seen(client, lot_id),
        "action": "release", "release-password": PASSWORD, "release-count_justification": COUNT_WHY})


def _status_and_signatures(session: Any, lot_id: int) -> tuple[str, int]:
    session.expire_all()
    signed = session.scalar(select(func.count()).select_from(LotDisposition).where(
        LotDisposition.lot_id == lot_id, LotDisposition.signed_at.is_not(None)))
    return session.get(Lot, lot_id).status, signed


def _corrector_events(session: Any, entity_type: str, entity_id: int, actor_id: int) -> list[str]:
    return list(session.scalars(select(AuditEvent.field).where(
        AuditEvent.entity_type == entity_type, AuditEvent.entity_id == str(entity_id),
        AuditEvent.actor_id == actor_id, AuditEvent.action == "update")))


def test_who_corrected_a_passage_is_refused_the_release_on_the_page_and_a_colleague_releases(
        app, db_session, techqa):
    session = db_session
    lot_id = _lot_made_by_the_technician(session)
    _correct_p0(session, lot_id)
    p0 = _p0(session, lot_id)
    assert p0.recorded_by_id == user(session, "technician").id  # the row still names the technician only
    assert "harvested_cells" in _corrector_events(session, "lot_process_step", p0.id, techqa.id)
    _to_quarantine(session, lot_id)
    assert involvement(session, session.get(Lot, lot_id), techqa.id) == (False, True)

    client = signed_in_closing(app, session, "techqa")
    page = client.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    blockers = page[page.index('id="blocking"'):page.index('id="results"')]
    assert SEGREGATION in blockers
    refused = _release(client, lot_id)
    assert refused.status_code == 409
    assert SEGREGATION in refused.get_data(as_text=True) and "Nothing was signed" in refused.get_data(as_text=True)
    assert _status_and_signatures(session, lot_id) == ("quarantine", 0)

    assert _release(signed_in_closing(app, session, "qa"), lot_id).status_code == 302  # another QA person may
    assert _status_and_signatures(session, lot_id) == ("released", 1)


def test_who_corrected_a_reagent_use_is_refused_the_release(app, db_session, techqa):
    session = db_session
    lot_id = _lot_made_by_the_technician(session)
    use_id = _correct_trypsin_use(session, lot_id)
    assert session.get(ReagentUse, use_id).recorded_by_id == user(session, "technician").id
    assert "used_on" in _corrector_events(session, "reagent_use", use_id, techqa.id)
    _to_quarantine(session, lot_id)
    assert involvement(session, session.get(Lot, lot_id), techqa.id) == (False, True)
    refused = _release(signed_in_closing(app, session, "techqa"), lot_id)
    assert refused.status_code == 409 and SEGREGATION in refused.get_data(as_text=True)
    assert _status_and_signatures(session, lot_id) == ("quarantine", 0)
    # the person who only signed in, and the technician's plain QA colleague, are not involved
    assert involvement(session, session.get(Lot, lot_id), user(session, "qa").id) == (False, False)


def test_the_api_lists_the_correction_among_the_refusals_for_the_corrector(app, db_session, techqa):
    from tests.conftest import api_token_for

    session = db_session
    lot_id = _lot_made_by_the_technician(session)
    _correct_trypsin_use(session, lot_id)
    _to_quarantine(session, lot_id)
    answer = app.test_client().get(f"/api/v1/release/lots/{lot_id}",
                                   headers={"Authorization": f"Bearer {api_token_for(app, 'techqa')}"})
    assert answer.status_code == 200
    assert any(SEGREGATION in r for r in answer.get_json()["refusals_for_you"])


def test_who_corrected_a_passage_may_not_judge_the_lots_oos_and_a_colleague_may(app, db_session, techqa):
    """oos.invalidate_oos asks the same involvement: invalidating a failing result is a release decision."""
    session = db_session
    lot_id = _lot_made_by_the_technician(session)
    _correct_p0(session, lot_id)
    _to_quarantine(session, lot_id, {"viability": ("61", "%")})
    oos = session.scalar(select(OosInvestigation).where(OosInvestigation.lot_id == lot_id))
    assert oos is not None and oos.status == OOS_OPEN
    retest = results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
        test_id="viability", value="91", unit="%", analyst="Tom QC", tested_on=site_today()))
    form = {"action": "invalidate", "oos-investigation": "Counting chamber mis-loaded (lab error, see DV-12)",
            "oos-retest_result_id": str(retest.id), "oos-assignable_cause": "instrument", "oos-password": PASSWORD}
    techqa_client = signed_in_closing(app, session, "techqa")
    refused = techqa_client.post(f"/release/oos/{oos.id}", data={**form, **seen(techqa_client, lot_id)})
    assert refused.status_code == 409
    assert "another QA person must judge its OOS" in refused.get_data(as_text=True)
    session.expire_all()
    assert session.get(OosInvestigation, oos.id).status == OOS_OPEN
    assert session.scalar(select(func.count()).select_from(Signature).where(
        Signature.signer_id == techqa.id)) == 0
    qa_client = signed_in_closing(app, session, "qa")
    assert qa_client.post(f"/release/oos/{oos.id}", data={**form, **seen(qa_client, lot_id)}).status_code == 302
    session.expire_all()
    assert session.get(OosInvestigation, oos.id).status == OOS_INVALIDATED
