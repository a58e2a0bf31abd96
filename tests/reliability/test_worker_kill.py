"""A gunicorn worker killed with SIGKILL in the middle of a write transaction, during a write burst (issue 9
point 3), SQLite and PostgreSQL.

gunicorn serves the app as in production (2 sync workers, settings from MSCBATCH_* variables); six clients
register patients and record their weights, cryopreserve harvested lots into bags (the lot, the DIN counter
row every freezing updates, the new bags) and sign prescriptions that allocate bags (the prescription, its
allocations, the bags' status, their custody events, the signature), all through the JSON API.

Each of the two original workers is killed INSIDE an open write transaction, and the test proves it without
any hook in the application: it stops the worker (SIGSTOP), asks the database whether that process holds a
write transaction, and only then sends SIGKILL; otherwise it lets the worker go on (SIGCONT) and tries again
a few milliseconds later. On SQLite the worker holds the WAL write lock (BEGIN IMMEDIATE up to the end of
COMMIT; read in /proc/locks). On PostgreSQL its backend (found by the worker's socket port) is idle in a
transaction that has written rows (RowExclusiveLock on tables); the first kill waits for a transaction that
has already written the DIN counter or a prescription, i.e. is in the middle of a multi-table use case. The
transactions so killed are reported aborted by PostgreSQL afterwards.

Afterwards: the database passes its integrity and foreign key checks, every write the server acknowledged is
there, nothing is half-written (every audited row has its audit event and every event its row; a lot holds
all of its bags or none, and the DINs handed out are exactly 1..the counter; a prescription has its
allocations, their bags allocated and its signature), and the audit chain verifies."""
from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess  # nosec B404 - the test starts gunicorn itself
import sys
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from mscbatch.audit.context import use_case
from mscbatch.database import normalise_url, utcnow
from mscbatch.lots.models import Bag, DinCounter, Lot
from mscbatch.patients.models import PRESCRIBED, Allocation, Patient, Prescription, WeightMeasurement
from mscbatch.signatures.models import Signature
from mscbatch.site import site_today
from tests.conftest import TEST_CONFIG, add_user, api_token_for, make_app
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.reliability.support import assert_chain_verifies, integrity, unpaired_audit_rows

CLIENTS = 6
LOTS = 150  # harvested lots waiting to be frozen: more than a burst freezes
PRESCRIBABLE = 5  # enrolled patients (the protocol's first cohort: a decision is needed after five)
BAGS_PER_LOT = 2
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


# ---- the scene ------------------------------------------------------------------------------------------

def _harvested_lots(session: Any, tech: Any, count: int) -> list[int]:
    """Lots in process with their harvest recorded, not yet frozen (rows written directly, one use case)."""
    the_donor = donor(session, tech)
    now = utcnow()
    with use_case(session, tech, "test set-up: harvested lots"):
        lots = [Lot(lot_number=f"K-{n:05d}", product_id="UC-MSC", product_name="UC-MSC", product_class="MSC(WJ)",
                    donor_id=the_donor.id, donor_gate="approved", status="in_process",
                    collection_at=now - timedelta(days=30), collection_site="test", tissue_amount=Decimal(10),
                    tissue_unit="g", harvested_at=now - timedelta(hours=2), harvest_total_cells=10**9,
                    harvest_viability_percent=Decimal(95), harvest_viable_cells=95 * 10**7,
                    site_config_version="1", site_config_sha256="0" * 64, products_version="1",
                    products_sha256="0" * 64, created_by_id=tech.id) for n in range(count)]
        session.add_all(lots)
        session.flush()
        return [lot.id for lot in lots]


def _scene(app: Any) -> tuple[list[int], list[int]]:
    """Harvested lots to freeze; enrolled, weighed patients and a released lot of 20 bags to prescribe from."""
    with app.extensions["mscbatch.db"].new_session() as session:
        tech, clinician = user(session, "technician"), user(session, "clinician")
        lots = _harvested_lots(session, tech, LOTS)
        lot_with_bags(session, tech, donor(session, tech), bags=20, cells=100_000_000)
        patients = [patient(session, clinician).id for _ in range(PRESCRIBABLE)]
    return lots, patients


# ---- the burst ------------------------------------------------------------------------------------------

class Burst:
    def __init__(self, port: int, clinician: str, technician: str, lots: list[int], patients: list[int]) -> None:
        self.port, self.clinician, self.technician = port, clinician, technician
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.lots_left, self.patients_left = list(lots), list(patients)
        self.patients: list[int] = []
        self.weights: list[int] = []
        self.frozen: dict[int, list[str]] = {}  # acknowledged: lot id -> the DINs of its bags
        self.prescriptions: dict[int, list[int]] = {}  # acknowledged: prescription id -> its bag ids
        self.cut = 0  # requests that never got an answer: their worker died under them
        self.answers: list[int] = []

    def post(self, token: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", path, json.dumps(body), {"Authorization": f"Bearer {token}",
                                                                "Content-Type": "application/json"})
            response = connection.getresponse()
            status, answer = response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()
        with self.lock:
            self.answers.append(status)
        return status, answer

    def take(self, pool: list[int]) -> int | None:
        with self.lock:
            return pool.pop() if pool else None

    def step(self) -> None:
        status, body = self.post(self.clinician, "/api/v1/patients", {
            "protocol_id": "protocol-sle-uc", "initials": "KB", "date_of_birth": "1979-05-04",
            "sex": "female", "ward": "Ward 3"})
        if status == 201:
            with self.lock:
                self.patients.append(body["id"])
            status, body = self.post(self.clinician, f"/api/v1/patients/{body['id']}/weights", {
                "weight_kg": "61.5", "measured_on": site_today().isoformat()})
            if status == 201:
                with self.lock:
                    self.weights.append(body["id"])
        lot_id = self.take(self.lots_left)
        if lot_id is not None:
            frozen_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            status, body = self.post(self.technician, f"/api/v1/lots/{lot_id}/cryopreservation", {
                "frozen_at": frozen_at, "bags": [{"volume_ml": "20", "cells_per_ml": 20_000_000,
                                                  "dmso_percent": "10"}] * BAGS_PER_LOT})
            if status == 201:
                with self.lock:
                    self.frozen[lot_id] = sorted(bag["din"] for bag in body)
        patient_id = self.take(self.patients_left)
        if patient_id is not None:
            for _attempt in range(5):
                # the signature covers the dry run the clinician saw: its level, bags and weight are sent back
                status, body = self.post(self.clinician, f"/api/v1/patients/{patient_id}/dose-calculation", {})
                if status != 200 or not body.get("allowed"):
                    return
                draws = body["calculation"]["draws"]
                status, body = self.post(self.clinician, f"/api/v1/patients/{patient_id}/prescriptions", {
                    "password": "correct-horse-battery", "weight_id": body["weight_id"],
                    "dose_level_cells_per_kg": body["calculation"]["dose_level_cells_per_kg"],
                    "bag_ids": [int(d["bag_id"]) for d in draws]})
                if status == 409 and "recalculate" in (body or {}).get("detail", ""):
                    with self.lock:  # another client took a bag of the dry run: calculate again, as a client does
                        self.answers.remove(409)
                    continue
                break
            if status == 201:
                with self.lock:
                    self.prescriptions[body["id"]] = sorted(a["bag_id"] for a in body["allocations"])

    def client(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
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


# ---- is this stopped worker inside a write transaction? -------------------------------------------------

def _stopped(pid: int) -> bool:
    """Wait until the kernel shows the process stopped (SIGSTOP is delivered asynchronously)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return True
        time.sleep(0.0005)
    return False


def sqlite_probe(database_url: str) -> Callable[[int], dict[str, Any] | None]:
    """The worker holds SQLite's WAL write lock (byte 120 of the -shm file, taken by BEGIN IMMEDIATE and kept
    to the end of COMMIT): it is inside a write transaction."""
    shm = Path(f"{make_url(database_url).database}-shm")

    def probe(pid: int) -> dict[str, Any] | None:
        inode = shm.stat().st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "->" in fields:
                continue  # a waiter, not a holder
            kind, mode, holder, device, start, end = fields[1], fields[3], fields[4], fields[5], fields[6], fields[7]
            if (kind, mode, holder, start, end) == ("POSIX", "WRITE", str(pid), "120", "120") and \
                    device.rsplit(":", 1)[1] == str(inode):
                return {"lock": "SQLite WAL write lock"}
        return None
    return probe


def _tcp_ports(pid: int, remote_port: int) -> list[int]:
    """The local ports of the process's TCP connections to `remote_port` (its database connections)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


BACKEND = text("""
SELECT a.pid, a.state, a.backend_xid::text AS xid, left(a.query, 120) AS query,
       ARRAY(SELECT DISTINCT c.relname::text FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE l.pid = a.pid AND l.mode = 'RowExclusiveLock' AND c.relkind = 'r' ORDER BY 1) AS written
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.client_port = ANY(:ports)
""")


def postgres_probe(connection: Any, database_url: str,
                   tables: frozenset[str] = frozenset()) -> Callable[[int], dict[str, Any] | None]:
    """The worker's backend is idle in a transaction that has written rows (and, given `tables`, one of them):
    the stopped client cannot commit it."""
    server_port = make_url(normalise_url(database_url)).port or 5432

    def probe(pid: int) -> dict[str, Any] | None:
        ports = _tcp_ports(pid, server_port)
        deadline = time.monotonic() + 1
        while ports and time.monotonic() < deadline:  # a statement sent before the stop runs to its end
            rows = connection.execute(BACKEND, {"ports": ports}).mappings().all()
            if all(row["state"] != "active" for row in rows):
                break
            time.sleep(0.002)
        else:
            return None
        for row in rows:
            written = set(row["written"])
            if row["state"] == "idle in transaction" and row["xid"] and written and \
                    (not tables or written & tables):
                return dict(row)
        return None
    return probe


def kill_inside_a_write(pid: int, probe: Callable[[int], dict[str, Any] | None], seed: int) -> dict[str, Any]:
    """Stop the worker, ask the database whether it is inside a write transaction; if so SIGKILL it there,
    else let it run a few milliseconds more and ask again."""
    chance = random.Random(seed)  # nosec B311 - timing jitter, not security
    deadline = time.monotonic() + 30
    tries = 0
    while time.monotonic() < deadline:
        time.sleep(chance.uniform(0.002, 0.03))
        tries += 1
        os.kill(pid, signal.SIGSTOP)
        found = None
        try:
            assert _stopped(pid), f"worker {pid} did not stop"
            found = probe(pid)
            if found is not None:
                os.kill(pid, signal.SIGKILL)
                return {**found, "worker": pid, "tries": tries}
        finally:
            if found is None:
                os.kill(pid, signal.SIGCONT)
    raise AssertionError(f"worker {pid} was never caught inside a write transaction ({tries} tries)")


# ---- after the burst: nothing half-written --------------------------------------------------------------

def half_written(connection: Any, lots: list[int]) -> list[str]:
    """Multi-table records of the burst that are not whole."""
    problems = []
    bags = dict(connection.execute(select(Bag.lot_id, func.count()).where(Bag.lot_id.in_(lots))
                                   .group_by(Bag.lot_id)).all())
    for lot_id, frozen_at in connection.execute(select(Lot.id, Lot.frozen_at).where(Lot.id.in_(lots))):
        if bags.get(lot_id, 0) != (BAGS_PER_LOT if frozen_at else 0):
            problems.append(f"lot {lot_id}: frozen at {frozen_at} with {bags.get(lot_id, 0)} bags")
    for fin, year, last in connection.execute(select(DinCounter.fin, DinCounter.year, DinCounter.last_sequence)):
        handed_out = sorted(connection.scalars(select(Bag.din_sequence).where(Bag.din_fin == fin,
                                                                               Bag.din_year == year)))
        expected = list(range(1, last + 1))
        if handed_out != expected:  # a gap: a counter moved without its bags; a repeat: bags without it
            problems.append(f"DIN counter {fin}/{year} at {last}: sequences missing "
                            f"{sorted(set(expected) - set(handed_out))[:10]}, {len(handed_out)} bags")
    for prescription_id, in connection.execute(select(Prescription.id)):
        allocated = connection.execute(select(Allocation.bag_id, Bag.status).join(Bag, Bag.id == Allocation.bag_id)
                                       .where(Allocation.prescription_id == prescription_id)).all()
        signed = connection.scalar(select(func.count()).select_from(Signature).where(
            Signature.entity_type == "prescription", Signature.entity_id == str(prescription_id),
            Signature.meaning == PRESCRIBED))
        if not allocated or any(status != "allocated" for _bag, status in allocated) or signed != 1:
            problems.append(f"prescription {prescription_id}: bags {allocated}, {signed} signatures")
    active = connection.scalar(select(func.count()).select_from(Allocation).where(Allocation.active_bag_id.is_not(None)))
    in_use = connection.scalar(select(func.count()).select_from(Bag).where(Bag.status == "allocated"))
    if active != in_use:
        problems.append(f"{in_use} bags allocated, {active} active allocations")
    return problems


def test_a_worker_killed_inside_a_write_transaction_leaves_every_acknowledged_write_and_nothing_half_written(
        database_url, tmp_path):
    app = make_app(database_url)
    add_user(app, "clinician", ["clinician"])
    add_user(app, "technician", ["technician"])
    clinician, technician = api_token_for(app, "clinician"), api_token_for(app, "technician")
    lots, patients = _scene(app)
    app.extensions["mscbatch.db"].engine.dispose()
    postgres = database_url.startswith("postgresql")
    admin = create_engine(normalise_url(database_url), isolation_level="AUTOCOMMIT") if postgres else None
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
    burst = Burst(port, clinician, technician, lots, patients)
    clients = [threading.Thread(target=burst.client, daemon=True) for _ in range(CLIENTS)]
    kills: list[dict[str, Any]] = []
    try:
        _wait_until_serving(port, clinician, server)
        originals = _workers(server.pid)
        assert len(originals) == 2, originals
        for thread in clients:
            thread.start()
        with admin.connect() if admin is not None else nullcontext() as connection:
            probes = ([postgres_probe(connection, database_url, frozenset({"din_counter", "prescription"})),
                       postgres_probe(connection, database_url)] if postgres else [sqlite_probe(database_url)] * 2)
            for n, (pid, probe) in enumerate(zip(originals, probes, strict=True)):
                time.sleep(0.2)
                kills.append(kill_inside_a_write(pid, probe, seed=n))
        answered = len(burst.answers)
        deadline = time.monotonic() + 60  # the master boots two new workers; the burst goes on
        while len(burst.answers) < answered + 2 * CLIENTS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(burst.answers) >= answered + 2 * CLIENTS, "the server did not recover after the kills"
    finally:
        burst.stop.set()
        for thread in clients:
            thread.join(60)
        for pid in _workers(server.pid):
            os.kill(pid, signal.SIGCONT)  # a worker left stopped by a failed assertion
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()
    print("kills:", kills)
    assert len(kills) == 2 and burst.cut >= 1, (kills, burst.cut)  # each kill cut a request off
    assert burst.patients and burst.weights and burst.frozen and burst.prescriptions, (burst.frozen, burst.prescriptions)
    # no 5xx from the surviving workers (200: the dose-calculation dry run before each prescription)
    assert set(burst.answers) <= {200, 201}, sorted(set(burst.answers))

    integrity(database_url)
    assert unpaired_audit_rows(database_url) == []
    assert_chain_verifies(database_url)
    engine = create_engine(normalise_url(database_url))
    with engine.connect() as connection:
        assert set(burst.patients) <= set(connection.scalars(select(Patient.id)))
        assert set(burst.weights) <= set(connection.scalars(select(WeightMeasurement.id)))
        for lot_id, dins in burst.frozen.items():
            assert sorted(connection.scalars(select(Bag.din).where(Bag.lot_id == lot_id))) == dins
        for prescription_id, bag_ids in burst.prescriptions.items():
            assert sorted(connection.scalars(select(Allocation.bag_id).where(
                Allocation.prescription_id == prescription_id))) == bag_ids
        assert half_written(connection, lots) == []
        if postgres:  # the transactions the kills cut short never committed
            epoch = connection.scalar(text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint >> 32"))
            for kill in kills:
                status = connection.scalar(text("SELECT pg_xact_status(CAST(CAST(:x AS text) AS xid8))"),
                                           {"x": (epoch << 32) | int(kill["xid"])})
                assert status == "aborted", (kill, status)
    engine.dispose()
    if admin is not None:
        admin.dispose()

