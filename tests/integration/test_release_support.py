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


def sterility_failed_late(app: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """The demo's quarantined lot released conditionally, sterility pending, then its sterility entered positive:
    a late OOS, open. Returns the lot's id."""
    from mscbatch.release import release
    from mscbatch.release.demo import enter_panel
    from mscbatch.release.results import ResultEntry, enter_result
    from mscbatch.site import site_today

    lot_id = seed_quarantine_lot(app, monkeypatch)
    session = app.extensions["mscbatch.db"].new_session()
    try:
        tech = user(session, "technician")
        enter_panel(session, tech, lot_id, skip=("sterility",))
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD, conditional_tests=["sterility"],
                            justification="Patient cannot wait for the 14-day incubation")
        enter_result(session, tech, lot_id, ResultEntry(test_id="sterility", value="positive", unit="",
                                                        analyst="Tom QC", tested_on=site_today()))
        return lot_id
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


#: a clinical justification long enough for an exceptional release request
EXCEPTIONAL_WHY = "No alternative therapy; life-threatening flare, benefit outweighs risk"


def cord_quarantine_lot(session: Any) -> int:
    """The demo UC-MSC lot (cryopreserved, from an approved cord donor; seed_quarantine_lot seeds it) put in
    quarantine. An exceptional release names a patient whose protocol takes the lot's product
    (release.patient_refusal): the demo quarantine lot is adipose MSC (AT-MSC), which no configured protocol
    takes, while the lupus protocol (SLE-UC) takes UC-MSC."""
    from mscbatch.lots.demo import chain_lot
    from mscbatch.lots.services import transition_lot

    lot = chain_lot(session)
    assert lot is not None, "seed_quarantine_lot seeds the demo UC-MSC lot"
    transition_lot(session, user(session, "tech"), lot.id, "quarantine", "Cryopreserved: awaiting QC")
    return lot.id


def lupus_patient_code(session: Any, **options: Any) -> str:
    """The code of a registered, enrolled lupus (SLE-UC) patient: one an exceptional release of a UC-MSC lot may
    name (options: tests.integration.patient_factories.patient's)."""
    from tests.integration.patient_factories import patient

    return str(patient(session, user(session, "clinician"), **options).code)
