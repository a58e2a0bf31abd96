"""A gunicorn worker killed with SIGKILL in the middle of a write burst (issue 9 point 3), SQLite and
PostgreSQL.

gunicorn serves the app as in production (2 sync workers, settings from MSCBATCH_* variables); six clients
register patients and record their weights through the JSON API while both workers, always busy under this
load, are killed one after the other.
Afterwards: the database passes its integrity and foreign key checks, every write the server acknowledged is
there, every audited row has its audit event and every event its row (nothing half-written), and the audit
chain verifies. A killed worker's transaction is simply never committed."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess  # nosec B404 - the test starts gunicorn itself
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from mscbatch.database import normalise_url
from mscbatch.patients.models import Patient, WeightMeasurement
from tests.conftest import TEST_CONFIG, add_user, api_token_for, make_app
from tests.reliability.support import assert_chain_verifies, integrity, unpaired_audit_rows

CLIENTS = 6
ROOT = Path(__file__).resolve().parents[2]
# A gunicorn config file runs in the master: importing the application there once makes each (re)booted
# worker start in about a second instead of re-importing everything. The throw-away app never connects (no
# migration, in-memory URL); every worker still builds its own app and engine, as in production.
PRELOAD_MODULES = """
from mscbatch import create_app
create_app({"DATABASE_URL": "sqlite://", "AUTO_MIGRATE": False})
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


class Burst:
    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.patients: list[int] = []
        self.weights: list[int] = []
        self.cut = 0  # requests that never got an answer: their worker died under them
        self.answers: list[int] = []

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", path, json.dumps(body), {"Authorization": f"Bearer {self.token}",
                                                                "Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def client(self) -> None:
        while not self.stop.is_set():
            try:
                status, body = self.post("/api/v1/patients", {
                    "protocol_id": "protocol-sle-uc", "initials": "KB", "date_of_birth": "1979-05-04",
                    "sex": "female", "ward": "Ward 3"})
                with self.lock:
                    self.answers.append(status)
                if status != 201:
                    continue
                with self.lock:
                    self.patients.append(body["id"])
                status, body = self.post(f"/api/v1/patients/{body['id']}/weights", {
                    "weight_kg": "61.5", "measured_on": time.strftime("%Y-%m-%d")})
                with self.lock:
                    self.answers.append(status)
                    if status == 201:
                        self.weights.append(body["id"])
            except (ConnectionError, http.client.HTTPException, OSError):
                with self.lock:
                    self.cut += 1


def _wait_until_serving(port: int, token: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "gunicorn exited at start"
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gunicorn did not start serving")


def test_a_worker_killed_mid_burst_leaves_every_acknowledged_write_and_nothing_half_written(
        database_url, tmp_path):
    app = make_app(database_url)
    add_user(app, "clinician", ["clinician"])
    token = api_token_for(app, "clinician")
    app.extensions["mscbatch.db"].engine.dispose()
    port = _free_port()
    env = {**os.environ, "MSCBATCH_DATABASE_URL": database_url,
           "MSCBATCH_SECRET_KEY": TEST_CONFIG["SECRET_KEY"], "MSCBATCH_AUDIT_KEY": TEST_CONFIG["AUDIT_KEY"],
           "MSCBATCH_LABEL_KEY": TEST_CONFIG["LABEL_KEY"], "MSCBATCH_INSTANCE_DIR": str(tmp_path),
           "MSCBATCH_ENV": "development", "MSCBATCH_LOG_LEVEL": "WARNING"}
    log = (tmp_path / "gunicorn.log").open("wb")
    (tmp_path / "gunicorn_conf.py").write_text(PRELOAD_MODULES)
    server = subprocess.Popen(  # nosec B603 - fixed argument list
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
         "--graceful-timeout", "5", "--no-control-socket", "--config", str(tmp_path / "gunicorn_conf.py"),
         "mscbatch:create_app()"], cwd=ROOT, env=env, stdout=log, stderr=log)
    burst = Burst(port, token)
    clients = [threading.Thread(target=burst.client, daemon=True) for _ in range(CLIENTS)]
    try:
        _wait_until_serving(port, token, server)
        originals = _workers(server.pid)
        assert len(originals) == 2, originals
        for thread in clients:
            thread.start()
        for pid in originals:
            time.sleep(0.6)
            os.kill(pid, signal.SIGKILL)
        answered = len(burst.answers)
        deadline = time.monotonic() + 60  # the master boots two new workers; the burst goes on
        while len(burst.answers) < answered + 2 * CLIENTS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(burst.answers) >= answered + 2 * CLIENTS, "the server did not recover after the kills"
    finally:
        burst.stop.set()
        for thread in clients:
            thread.join(60)
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()
    assert burst.cut >= 1, "no request was cut off: the kills did not land mid-request"
    assert burst.patients and burst.weights
    assert set(burst.answers) <= {201}, sorted(set(burst.answers))  # no 5xx from the surviving workers

    integrity(database_url)
    assert unpaired_audit_rows(database_url) == []
    assert_chain_verifies(database_url)
    engine = create_engine(normalise_url(database_url))
    with engine.connect() as connection:
        assert set(burst.patients) <= set(connection.scalars(select(Patient.id)))
        assert set(burst.weights) <= set(connection.scalars(select(WeightMeasurement.id)))
    engine.dispose()
