"""A lot whose shelf life ran out before QA signed is not released, on SQLite and PostgreSQL: not on the release
page, not by a conditional release, its completion or an exceptional release (release.release.expired). The
page lists the refusal among the release blockers, with the expiry as the lot's page shows it; the way out QA
is told of is the rejection (the state machine has no way from quarantine to "expired")."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from mscbatch.database import utcnow
from mscbatch.errors import Conflict
from mscbatch.lots.models import Lot
from mscbatch.release import release, results
from mscbatch.release.demo import PASSING_PANEL, enter_panel
from mscbatch.release.models import LotDisposition
from mscbatch.site import site_today
from tests.conftest import PASSWORD, api_token_for
from tests.integration.test_release_support import (
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
    signed_in_closing,
    user,
)
from tests.integration.test_s37_release_seen import seen
from tests.time_words import site_then_utc

EXPIRED = "an expired lot cannot be released"


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


@pytest.fixture
def session(app):  # type: ignore[no-untyped-def]
    s = app.extensions["mscbatch.db"].new_session()
    yield s
    s.close()


def _expire(session: Any, lot_id: int) -> str:
    """Time passes: the shelf life set at cryopreservation runs out (written on the rows, as no service moves an
    expiry). Returns the expiry as every page says an instant: site time with its zone, UTC beside it."""
    expired_at = utcnow() - timedelta(hours=1)
    session.execute(text("UPDATE lot SET expires_at = :t WHERE id = :i"), {"t": expired_at, "i": lot_id})
    session.execute(text("UPDATE bag SET expires_at = :t WHERE lot_id = :i"), {"t": expired_at, "i": lot_id})
    session.commit()
    return site_then_utc(expired_at)


def _words(html: str) -> str:
    """A page's text as read: the tags of the time's two parts (lots/_macros.html `when`) gone."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def _blockers(page: str) -> str:
    return page[page.index('id="blocking"'):page.index('id="results"')]


def _lot(session: Any, lot_id: int) -> Lot:
    session.expire_all()
    found = session.get(Lot, lot_id)
    assert found is not None
    return found


def _signed_dispositions(session: Any, lot_id: int) -> int:
    return session.scalar(select(func.count()).select_from(LotDisposition).where(
        LotDisposition.lot_id == lot_id, LotDisposition.signed_at.is_not(None)))


def test_an_expired_quarantine_lot_is_refused_on_the_page_and_qa_rejects_it(app, session, lot_id):
    enter_panel(session, user(session, "technician"), lot_id, skip=("sterility",))  # a conditional release is tried
    shown = _expire(session, lot_id)
    qa = signed_in_closing(app, session, "qa")
    assert shown in _words(qa.get(f"/lots/{lot_id}").get_data(as_text=True))  # the date as the lot's page says it
    blockers = _blockers(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))
    assert f"lot expired on {shown}: {EXPIRED}" in blockers and "Nothing blocks the release" not in blockers
    token = api_token_for(app, "qa")
    api = app.test_client().get(f"/api/v1/release/lots/{lot_id}", headers={"Authorization": f"Bearer {token}"})
    assert any(f"lot expired on {shown}" in r for r in api.get_json()["refusals_for_you"])

    for action, extra in (("release", {}), ("conditional", {"release-conditional_tests": "sterility",
                                                           "release-justification": "Patient cannot wait 14 days"})):
        refused = qa.post(f"/release/lots/{lot_id}/release",
                          data={**seen(qa, lot_id), "action": action, "release-password": PASSWORD, **extra})
        assert refused.status_code == 409, action
        said = refused.get_data(as_text=True)
        assert f"lot expired on {shown}: {EXPIRED}" in said and "Nothing was signed" in said
    assert _lot(session, lot_id).status == "quarantine" and _signed_dispositions(session, lot_id) == 0

    session.close()
    rejected = qa.post(f"/release/lots/{lot_id}/release", data={**seen(qa, lot_id),
        "action": "reject", "release-password": PASSWORD, "release-justification": f"Expired on {shown}"})
    assert rejected.status_code == 302
    assert _lot(session, lot_id).status == "rejected"
    session.close()
    assert EXPIRED not in _blockers(qa.get(f"/release/lots/{lot_id}").get_data(as_text=True))


def test_a_lot_not_yet_expired_is_released(session, lot_id):
    """The check reads the expiry, not the freezing: a lot within its shelf life is released as before."""
    enter_panel(session, user(session, "technician"), lot_id)
    assert _lot(session, lot_id).expires_at > utcnow()
    assert not [r for r in release.refusals(session, _lot(session, lot_id), user(session, "qa")) if EXPIRED in r]
    release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
    assert _lot(session, lot_id).status == "released"


def test_a_conditional_release_is_not_completed_once_the_lot_has_expired(session, lot_id):
    tech = user(session, "technician")
    enter_panel(session, tech, lot_id, skip=("sterility",))
    release.release_lot(session, user(session, "qa"), lot_id, PASSWORD, conditional_tests=["sterility"],
                        justification="Patient cannot wait 14 days for BacT/ALERT")
    results.enter_result(session, tech, lot_id, results.ResultEntry(
        test_id="sterility", value=PASSING_PANEL["sterility"][0], unit="", analyst="A", tested_on=site_today()))
    shown = _expire(session, lot_id)
    with pytest.raises(Conflict, match=re.escape(f"lot expired on {shown}: {EXPIRED}; recall it")):
        release.complete_conditional_release(session, user(session, "qa2"), lot_id, PASSWORD)
    assert _lot(session, lot_id).status == "conditional_release" and _signed_dispositions(session, lot_id) == 1


def test_an_expired_oos_batch_is_not_released_exceptionally(session, lot_id):
    # a UC-MSC lot and a registered lupus patient: an exceptional release the patient rule lets through
    uc_id, code = cord_quarantine_lot(session), lupus_patient_code(session)
    enter_panel(session, user(session, "technician"), uc_id, {"viability": ("66", "%")})
    request = release.request_exceptional_release(
        session, user(session, "clinician"), uc_id, code,
        "No alternative therapy; life-threatening flare, benefit outweighs risk", PASSWORD)
    shown = _expire(session, uc_id)
    with pytest.raises(Conflict, match=re.escape(f"Exceptional release refused: lot expired on {shown}: {EXPIRED}")):
        release.approve_exceptional_release(session, user(session, "qa"), uc_id, PASSWORD, request.id)
    assert _lot(session, uc_id).status == "quarantine"
