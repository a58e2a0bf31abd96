"""OOS investigations through the release pages, on SQLite and PostgreSQL (FDA OOS guidance 2006; EU GMP ch. 6):
a result under an open investigation is not corrected outside it, and each investigation is closed with a retest
of its own."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.release import results
from mscbatch.release.models import OOS_INVALIDATED, OOS_OPEN, OosInvestigation, ReleaseResult
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.test_release_support import seed_quarantine_lot, user
from tests.integration.test_s37_release_seen import seen_of_oos

INVESTIGATION = "Counting chamber mis-loaded (lab error, see DV-12); retest in duplicate passed"


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


def _enter(app: Any, lot_id: int, test_id: str, value: str, unit: str = "%") -> int:
    """QC (the conftest technician) enters one result through the service; returns its id."""
    session = app.extensions["mscbatch.db"].new_session()
    try:
        made = results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
            test_id=test_id, value=value, unit=unit, analyst="Tom QC", tested_on=site_today()))
        return made.id
    finally:
        session.close()


def _read(app: Any, query: Any) -> list[Any]:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return [tuple(row) for row in session.execute(query)]
    finally:
        session.close()


def _oos_of(app: Any, result_id: int) -> tuple[int, str, int | None]:
    return _read(app, select(OosInvestigation.id, OosInvestigation.status, OosInvestigation.retest_result_id)
                 .where(OosInvestigation.result_id == result_id))[0]


def _close(client: Any, oos_id: int, retest_id: int) -> Any:
    return client.post(f"/release/oos/{oos_id}", data={
        "action": "invalidate", "oos-investigation": INVESTIGATION, "oos-retest_result_id": str(retest_id),
        "oos-assignable_cause": "analyst_error", "oos-password": PASSWORD, **seen_of_oos(client, oos_id)})


def test_a_failing_result_under_an_open_oos_cannot_be_corrected_to_a_passing_one_on_the_page(app, client_as, lot_id):
    failing = _enter(app, lot_id, "viability", "61")
    oos_id, status, _ = _oos_of(app, failing)
    assert status == OOS_OPEN
    client = client_as("technician")
    review = client.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert f"/release/results/{failing}/correct" not in review  # no "correct" link on a result under investigation
    assert f"under OOS investigation {oos_id}" in review

    page = client.post(f"/release/results/{failing}/correct", data={"value": "92", "unit": "%", "reason": "typo"})
    assert page.status_code == 409
    words = page.get_data(as_text=True)
    assert f"This result is under OOS investigation {oos_id}: it cannot be corrected" in words
    assert "Enter a retest, and QA closes the investigation" in words
    assert _read(app, select(ReleaseResult.value, ReleaseResult.corrected_count)
                 .where(ReleaseResult.id == failing)) == [("61", 0)]
    assert _oos_of(app, failing)[1] == OOS_OPEN


def test_a_passing_result_without_an_oos_is_still_corrected(app, client_as, lot_id):
    passing = _enter(app, lot_id, "viability", "90")
    response = client_as("technician").post(f"/release/results/{passing}/correct",
                                            data={"value": "91", "unit": "%", "reason": "digit typed wrong"})
    assert response.status_code == 302
    assert _read(app, select(ReleaseResult.value).where(ReleaseResult.id == passing)) == [("91",)]


def test_one_passing_retest_cannot_close_two_oos_investigations_of_the_same_test(app, client_as, lot_id):
    first, second = _enter(app, lot_id, "viability", "61"), _enter(app, lot_id, "viability", "65")
    retest = _enter(app, lot_id, "viability", "92")
    first_oos, second_oos = _oos_of(app, first)[0], _oos_of(app, second)[0]
    qa = client_as("qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert page.count(f'<option value="{retest}">') == 2  # a candidate for both while neither is closed

    assert _close(qa, first_oos, retest).status_code == 302
    assert _oos_of(app, first) == (first_oos, OOS_INVALIDATED, retest)
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert page.count(f'<option value="{retest}">') == 0  # no longer offered for the second investigation

    refused = _close(qa, second_oos, retest)
    assert refused.status_code == 409
    words = refused.get_data(as_text=True)
    assert f"already closed OOS investigation {first_oos}" in words and "its own retest" in words
    assert _oos_of(app, second) == (second_oos, OOS_OPEN, None)
    assert _read(app, select(ReleaseResult.invalidated_at).where(ReleaseResult.id == second))[0][0] is None

    own_retest = _enter(app, lot_id, "viability", "91")
    assert _close(qa, second_oos, own_retest).status_code == 302
    assert _oos_of(app, second) == (second_oos, OOS_INVALIDATED, own_retest)


def test_a_result_under_investigation_is_never_a_retest_for_another_oos(app, client_as, lot_id):
    """The second failing result (its own OOS open) is refused as the retest of the first, whatever its value."""
    first, second = _enter(app, lot_id, "viability", "61"), _enter(app, lot_id, "viability", "65")
    first_oos = _oos_of(app, first)[0]
    qa = client_as("qa")
    page = qa.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert f'<option value="{second}">' not in page
    refused = _close(qa, first_oos, second)
    assert refused.status_code == 422
    assert "Choose a valid retest of the same test" in refused.get_data(as_text=True)  # beside the select
    assert _oos_of(app, first)[1] == OOS_OPEN


def test_the_retest_an_investigation_was_closed_with_is_locked_under_qas_signature(app, client_as, lot_id):
    """QA signed "invalidated" on the strength of this retest: changing it afterwards would change the evidence
    under a signature that never saw the new value (21 CFR 11.70)."""
    failing = _enter(app, lot_id, "viability", "61")
    retest = _enter(app, lot_id, "viability", "92")
    oos_id = _oos_of(app, failing)[0]
    assert _close(client_as("qa"), oos_id, retest).status_code == 302
    client = client_as("technician")
    review = client.get(f"/release/lots/{lot_id}").get_data(as_text=True)
    assert f"/release/results/{retest}/correct" not in review
    assert f"retest that closed OOS investigation {oos_id} (signed)" in review

    page = client.post(f"/release/results/{retest}/correct", data={"value": "71", "unit": "%", "reason": "typo"})
    assert page.status_code == 409
    assert f"the retest OOS investigation {oos_id} was closed with" in page.get_data(as_text=True)
    assert _read(app, select(ReleaseResult.value, ReleaseResult.corrected_count)
                 .where(ReleaseResult.id == retest)) == [("92", 0)]
