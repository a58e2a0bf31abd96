"""Shared set-up for the release tests: the demo donors and demo lot (a quarantined adipose MSC lot from an
approved donor, made by the demo technician 'tech'), with the conftest users (technician, qa, qa2, clinician)."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD, login


def seed_quarantine_lot(app: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    from mscbatch.demo import seed_users
    from mscbatch.donors import demo as donor_demo
    from mscbatch.donors.demo import seed_donors
    from mscbatch.lots.demo import seed_lots
    from mscbatch.lots.models import Lot

    monkeypatch.setattr(donor_demo, "DEMO_PASSWORD", PASSWORD)  # the conftest 'qa' signs the donor decisions
    session = app.extensions["mscbatch.db"].new_session()
    try:
        seed_users(session, hash_profile="fast")
        seed_donors(session)
        seed_lots(session)
        return session.scalar(select(Lot.id).where(Lot.status == "quarantine"))
    finally:
        session.close()


def user(session: Any, username: str) -> Any:
    from mscbatch.auth.models import User

    return session.scalar(select(User).where(User.username == username))


def signed_in_closing(app: Any, session: Any, username: str) -> Any:
    """A test client signed in. The test's own session is closed first: on SQLite its connection would keep the
    database locked against the request's writes (the session opens again on its next use)."""
    session.close()
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client
