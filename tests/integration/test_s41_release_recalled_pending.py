"""A conditionally released lot recalled before its pending test came in still takes that test's result (s41).

Before: once recalled, the lot refused every result (409 "results can no longer be entered"), so a late positive
sterility after a recall with infused bags could never be documented nor open the late OOS that lists the patients
whose clinicians must be told (EU GMP Part IV 11). Now the tests named pending at the conditional release (only
those) are still entered, through the page and the API; a failure opens the late OOS with the patients to notify.
"""
from __future__ import annotations

import html
from typing import Any

from sqlalchemy import select

from mscbatch.lots.models import Lot
from mscbatch.release.models import OosInvestigation, ReleaseResult
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_release_services import _move_bag
from tests.integration.test_release_support import seed_quarantine_lot, user

COMMON = {"result-analyst": "Tom QC", "result-tested_on": site_today().isoformat()}


def _recalled_with_an_infused_bag(app: Any, monkeypatch: Any) -> tuple[int, str]:
    """The demo UC-MSC lot released conditionally (sterility pending), one bag infused to a lupus patient, then the
    lot recalled (a donor's new information, say) before the sterility result. Returns (lot id, patient code)."""
    from mscbatch.lots.demo import chain_lot
    from mscbatch.lots.services import transition_lot
    from mscbatch.patients import prescriptions
    from mscbatch.patients.queries import allocations_of
    from mscbatch.recall.services import start_recall
    from mscbatch.release import release
    from mscbatch.release.demo import enter_panel
    from tests.integration.patient_factories import patient

    seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        tech, qa, clinician = user(session, "technician"), user(session, "qa"), user(session, "clinician")
        uc = chain_lot(session)
        transition_lot(session, user(session, "tech"), uc.id, "quarantine", "Cryopreserved: awaiting QC")
        enter_panel(session, tech, uc.id, skip=("sterility",))
        release.release_lot(session, qa, uc.id, PASSWORD, conditional_tests=["sterility"],
                            justification="Patient cannot wait 14 days for BacT/ALERT")
        infused_patient = patient(session, clinician)
        first = prescriptions.prescribe(session, clinician, PASSWORD, infused_patient.id)
        [infused, *_rest] = [a.bag_id for a in allocations_of(session, first.id)]
        for actor, target in ((tech, "dispatched"), (user(session, "nurse"), "received"),
                              (user(session, "nurse"), "thawed"), (user(session, "nurse"), "infused")):
            _move_bag(session, actor, infused, target)
        start_recall(session, qa, scope="lot", target_id=uc.id, password=PASSWORD,
                     reason="Donor's new information: recall the lot")
        lot_id, code = uc.id, infused_patient.code
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Lot, lot_id).status == "recalled"
    return lot_id, code


def _enter(client: Any, lot_id: int, test_id: str, value: str, unit: str) -> Any:
    return client.post(f"/release/lots/{lot_id}/results", data={
        "result-test_id": test_id, "result-value": value, "result-unit": unit, **COMMON})


def test_a_late_positive_sterility_is_entered_after_the_recall_and_lists_the_patient(app, users, monkeypatch,
                                                                                      client_as):  # type: ignore[no-untyped-def]
    lot_id, code = _recalled_with_an_infused_bag(app, monkeypatch)
    from mscbatch.release.oos import recalled_awaiting_results

    with app.extensions["mscbatch.db"].new_session() as session:
        assert [lot.id for lot in recalled_awaiting_results(session)] == [lot_id]
        lot_number = session.get(Lot, lot_id).lot_number
    # QA's dashboard keeps it among the conditional releases awaiting a result, marked with its recall
    board = html.unescape(client_as("qa").get("/release").get_data(as_text=True))
    waiting = board.split('id="conditional"', 1)[1].split("</section>", 1)[0]
    assert lot_number in waiting and "RECALL R-" in waiting, waiting
    tech = client_as("technician")
    page = html.unescape(tech.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert 'id="one-result"' in page and 'id="late-entry"' in page and 'id="panel"' not in page
    answer = _enter(tech, lot_id, "sterility", "positive", "none")
    assert answer.status_code == 302, html.unescape(answer.get_data(as_text=True))[:3000]
    told = html.unescape(tech.get(answer.headers["Location"]).get_data(as_text=True))
    assert "Late OOS" in told and "recalled after its conditional release" in told
    with app.extensions["mscbatch.db"].new_session() as session:
        (late,) = session.scalars(select(OosInvestigation).where(OosInvestigation.lot_id == lot_id)).all()
        assert late.late and late.status == "open"
        assert late.description.startswith("LATE OOS after conditional release (the lot was recalled since)")
        assert [p["patient_code"] for p in late.patients] == [code]
        assert session.get(Lot, lot_id).status == "recalled"
        assert recalled_awaiting_results(session) == []  # its result came in
    board = html.unescape(client_as("qa").get("/release").get_data(as_text=True))
    assert lot_number not in board.split('id="conditional"', 1)[1].split("</section>", 1)[0]
    qa = client_as("qa2")
    review = html.unescape(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert "(late OOS)" in review and code in review and "Confirm OOS (sign)" in review


def test_only_the_pending_tests_are_taken_after_the_recall(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id, _code = _recalled_with_an_infused_bag(app, monkeypatch)
    refused = _enter(client_as("technician"), lot_id, "viability", "90", "%")
    assert refused.status_code == 409
    words = html.unescape(refused.get_data(as_text=True))
    assert "is recalled: only the test(s) named pending at its conditional release (Sterility" in words
    with app.extensions["mscbatch.db"].new_session() as session:
        assert len(session.scalars(select(ReleaseResult).where(ReleaseResult.lot_id == lot_id,
                                                           ReleaseResult.test_id == "viability")).all()) == 1


def test_the_api_takes_the_pending_test_after_the_recall(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    lot_id, code = _recalled_with_an_infused_bag(app, monkeypatch)
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    answer = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers=headers, json={
        "test_id": "sterility", "value": "positive", "unit": "", "analyst": "Tom QC",
        "tested_on": site_today().isoformat()})
    assert answer.status_code == 201, answer.get_json()
    refused = app.test_client().post(f"/api/v1/release/lots/{lot_id}/results", headers=headers, json={
        "test_id": "viability", "value": "90", "unit": "%", "analyst": "Tom QC",
        "tested_on": site_today().isoformat()})
    assert refused.status_code == 409, refused.get_json()
    with app.extensions["mscbatch.db"].new_session() as session:
        (late,) = session.scalars(select(OosInvestigation).where(OosInvestigation.lot_id == lot_id)).all()
        assert late.late and [p["patient_code"] for p in late.patients] == [code]


def test_a_lot_released_in_full_then_recalled_takes_no_result(app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    from mscbatch.recall.services import start_recall
    from mscbatch.release import release
    from mscbatch.release.demo import enter_panel

    lot_id = seed_quarantine_lot(app, monkeypatch)
    with app.extensions["mscbatch.db"].new_session() as session:
        enter_panel(session, user(session, "technician"), lot_id)
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
        start_recall(session, user(session, "qa"), scope="lot", target_id=lot_id, password=PASSWORD,
                     reason="Donor's new information: recall the lot")
    refused = _enter(client_as("technician"), lot_id, "sterility", "positive", "none")
    assert refused.status_code == 409
    assert "results can no longer be entered" in html.unescape(refused.get_data(as_text=True))
