"""Closing a donor lookback read it twice: once to find its donor, then again after locking the donor. Were it gone
between the two reads, an `assert` stood there and QA got a 500; it is now a plain 404 naming the lookback."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from mscbatch.donors.models import DonorLookback
from mscbatch.recall import services
from tests.integration.test_s34_recall_lookback_close import NOTE, _recall_then_a_second_late_result


def test_a_lookback_gone_while_it_is_closed_is_said_plainly_not_a_500(app, users, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    s = _recall_then_a_second_late_result(app, client_as)
    lookback_id, lock_donor = s["lookback_id"], services.lock_donor

    def lock_then_gone(session: Any, donor_id: int) -> Any:  # the lookback vanishes after the first read
        donor = lock_donor(session, donor_id)
        session.execute(delete(DonorLookback).where(DonorLookback.id == lookback_id))
        return donor

    monkeypatch.setattr(services, "lock_donor", lock_then_gone)
    refused = s["qa"].post(f"/recalls/lookbacks/{lookback_id}/close", data={"note": NOTE})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 404, text[:2000]
    assert f"No donor lookback with id {lookback_id}" in text and "Nothing was recorded." in text
