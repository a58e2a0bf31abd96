"""A database that refuses a transaction for another one's locks answers 503 "try again", never a 500.

On PostgreSQL two use cases that lock the same rows in opposite orders deadlock, and PostgreSQL ends one of them
(SQLSTATE 40P01); on SQLite a writer that waits longer than the busy timeout for the write lock is refused
("database is locked"). Either way nothing of the refused request was kept, and the same request a moment later
succeeds: the person is told so in plain words (and the API gives Retry-After), instead of "Internal error" and an
incident number, which says the system is broken and invites a call to IT while the bag waits.

The deadlock here is a real one (_deadlocked): the clinician's weight holds the patient's row and waits for the
audit chain's head, which a connection of the test holds while it waits for the patient's row."""
from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from mscbatch.audit.models import AuditEvent, AuditHead
from mscbatch.database import normalise_url
from mscbatch.patients import services as patients
from mscbatch.patients.models import Patient, WeightMeasurement
from mscbatch.site import site_today
from tests.conftest import api_token_for
from tests.integration.patient_factories import patient, user


def _weighed_patient(app: Any) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return patient(session, user(session, "clinician"), enrol=False).id


def _counts(app: Any, patient_id: int) -> tuple[int, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        return (session.scalar(select(func.count()).select_from(WeightMeasurement)
                               .where(WeightMeasurement.patient_id == patient_id)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def _wait_until_blocked(connection: Any) -> None:
    """Until another backend of this database waits for a lock."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = connection.scalar(text(  # in this test's database only: other tests may run beside it
            "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid) WHERE NOT granted "
            "AND datname = current_database() AND pid <> pg_backend_pid()"))
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the test's connection never waited for the patient's row")


def _while_database_busy(app: Any, database_url: str, patient_id: int, request: Any,
                         monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs request() while the database refuses it for another connection's locks; returns its response."""
    if app.extensions["mscbatch.db"].engine.dialect.name == "sqlite":
        import mscbatch.database as database

        monkeypatch.setattr(database, "BUSY_TIMEOUT_SECONDS", 0.3)
        holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer keeps the lock past the timeout
        try:
            return request()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    return _deadlocked(database_url, patient_id, request, monkeypatch)


def _deadlocked(database_url: str, patient_id: int, request: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """request() in a real deadlock that PostgreSQL resolves by ending the request's transaction: the request locks
    the patient's row and pauses; a connection of the test holds the audit head and waits for the patient's row;
    then the request goes on and waits for the head. The cycle is complete when the request starts waiting, and
    the test's connection checks for deadlocks only after 60 s, so the request's check (after 1 s) finds it."""
    locked, go = threading.Event(), threading.Event()
    lock_patient = patients.lock_patient

    def lock_then_pause(session: Any, row_id: int) -> Any:
        row = lock_patient(session, row_id)
        locked.set()
        go.wait(10)
        return row

    monkeypatch.setattr(patients, "lock_patient", lock_then_pause)
    engine = create_engine(normalise_url(database_url))
    answers: list[Any] = []
    try:
        with engine.connect() as other, engine.connect() as watcher:
            other.exec_driver_sql("SET deadlock_timeout = '60s'")
            requester = threading.Thread(target=lambda: answers.append(request()))
            requester.start()
            assert locked.wait(10), "the request did not lock the patient"
            other.execute(select(AuditHead.last_seq).where(AuditHead.id == 1).with_for_update())
            waiter = threading.Thread(target=lambda: other.execute(
                select(Patient.id).where(Patient.id == patient_id).with_for_update()))
            waiter.start()
            _wait_until_blocked(watcher)
            go.set()
            requester.join(30)
            waiter.join(30)
            other.rollback()
    finally:
        engine.dispose()
    assert answers, "the request did not return"
    return answers[0]


def test_an_api_write_refused_for_a_deadlock_or_a_busy_lock_answers_503_and_keeps_nothing(app, users, database_url,
                                                                                        monkeypatch):
    patient_id = _weighed_patient(app)
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    body = {"weight_kg": "63", "measured_on": site_today().isoformat()}
    before = _counts(app, patient_id)
    answer = _while_database_busy(app, database_url, patient_id, lambda: app.test_client().post(
        f"/api/v1/patients/{patient_id}/weights", headers=headers, json=body), monkeypatch)
    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert answer.mimetype == "application/problem+json"
    assert answer.headers["Retry-After"] == "1"
    assert "nothing was saved" in answer.get_json()["detail"]
    assert "try again" in answer.get_json()["detail"]
    assert _counts(app, patient_id) == before
    again = app.test_client().post(f"/api/v1/patients/{patient_id}/weights", headers=headers, json=body)
    assert again.status_code == 201, again.get_json()  # the same request, a moment later


def test_a_page_refused_for_a_busy_database_says_try_again_not_internal_error(app, users, client_as, database_url,
                                                                             monkeypatch):
    patient_id = _weighed_patient(app)
    client = client_as("clinician")
    form = {"weight_kg": "63", "measured_on": (site_today() - timedelta(days=0)).isoformat()}
    before = _counts(app, patient_id)
    answer = _while_database_busy(app, database_url, patient_id,
                                  lambda: client.post(f"/patients/{patient_id}/weights", data=form), monkeypatch)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 503, page[:2000]
    assert "Please try again" in page and "nothing was saved" in page
    assert "Internal error" not in page and "Incident reference" not in page
    assert _counts(app, patient_id) == before
