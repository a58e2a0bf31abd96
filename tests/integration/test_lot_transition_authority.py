"""Authority before the rule: a technician asking the lots API for a state change only QA may make (released,
conditional release, rejected, recalled) was answered 409 "needs QA's electronic signature", as if the technician
could release the lot with a signature. Only QA releases (DOMAIN.md section 1): the answer is 403, nothing changed;
QA, who may, still gets the 409 that sends them to the signed release."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from mscbatch.lots.models import Lot
from tests.conftest import api_token_for
from tests.integration.test_release_support import seed_quarantine_lot


@pytest.mark.parametrize("target", ["released", "conditional_release", "rejected", "recalled"])
def test_a_technician_asking_for_a_signed_lot_state_gets_403(app, users, monkeypatch, target):  # type: ignore[no-untyped-def]
    lot_id = seed_quarantine_lot(app, monkeypatch)
    token = api_token_for(app, "technician")
    response = app.test_client().post(f"/api/v1/lots/{lot_id}/transitions", headers={"Authorization": f"Bearer {token}"},
                                      json={"target": target, "reason": "all tests pass"})
    assert response.status_code == 403, (response.status_code, response.get_json())
    assert "Only QA may move a lot to" in response.get_json()["detail"]
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.scalar(select(Lot.status).where(Lot.id == lot_id)) == "quarantine"


def test_qa_is_still_sent_to_the_signed_release(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    lot_id = seed_quarantine_lot(app, monkeypatch)
    token = api_token_for(app, "qa")
    response = app.test_client().post(f"/api/v1/lots/{lot_id}/transitions", headers={"Authorization": f"Bearer {token}"},
                                      json={"target": "released", "reason": "all tests pass"})
    assert response.status_code == 409
    assert "electronic signature" in response.get_json()["detail"]
