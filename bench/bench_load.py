"""Under load: gunicorn with 2 workers on 127.0.0.1 serving the large database, 20 concurrent clients (locust,
headless) for 60 s on the bedside check and 60 s on the same server's /healthz. Bound: bedside throughput >= 0.5 x
health throughput, 0 errors. For information (no bound), 60 s on the simplest authenticated write of one audited
record (a clinician records a weight): what the bedside check costs beside any audited write.

Each endpoint's 60 s are run as blocks of 10 s, the three endpoints taking turns (in mirrored order: bedside,
weight, healthz, then healthz, weight, bedside ...), so that a change in the machine's speed during the run weighs
on both sides of the ratio, as the latency benchmarks alternate their samples. A virtual machine's speed moves
(the same loop took 1.0 to 1.7 s within a minute on the VM of the README's figures). Throughput is an endpoint's
requests over its blocks' time; p50/p99 are taken over all its response times. Prints the peak resident memory
of each worker and where each endpoint's CPU went per request (workers, PostgreSQL, load generator, idle cores:
bench/cpu.py, over the middle of every block).

MSCBATCH_BENCH_LOAD_SECONDS shortens the runs (the test suite's smoke run uses a few seconds: one block each).
"""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench import cpu
from bench.common import CACHE, LOG_LEVEL, ROOT, Row, api_token, database, opened, sizes
from mscbatch.patients.models import Patient
from mscbatch.scale import matching_pairs, matching_query
from mscbatch.site import site_today

CLIENTS = 20
WORKERS = 2
BLOCK_SECONDS = 10
TARGETS = ("bedside", "weight", "health")
BIN = Path(sys.executable).parent


def seconds() -> int:
    return int(os.environ.get("MSCBATCH_BENCH_LOAD_SECONDS", "60"))


def blocks() -> tuple[int, int]:
    """(number of blocks, seconds per block) for each endpoint: 60 s -> 6 x 10 s; a short smoke run -> 1 block."""
    count = max(1, seconds() // BLOCK_SECONDS)
    return count, max(1, seconds() // count)


def turns(count: int, targets: tuple[str, ...] = TARGETS) -> list[str]:
    """The order of the blocks: each round mirrors the one before, so that a steady drift of the machine's speed
    weighs on every endpoint alike."""
    order: list[str] = []
    for round_ in range(count):
        order.extend(targets if round_ % 2 == 0 else reversed(targets))
    return order


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _serve(url: str, port: int, app: str = "mscbatch:create_app()",
           extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MSCBATCH_DATABASE_URL": url, "MSCBATCH_INSTANCE_DIR": str(CACHE / "instance"),
           "MSCBATCH_LOG_LEVEL": LOG_LEVEL, **(extra_env or {})}
    server = subprocess.Popen([str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", f"127.0.0.1:{port}",
                               "--log-level", "warning", app], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("gunicorn did not answer /healthz within 60 s")


def _locust(port: int, target: str, setup: Path, out: Path, workers: list[int], kind: str,
            run_seconds: int) -> dict[str, Any]:
    """One block: locust on one endpoint for run_seconds."""
    prefix = out / target
    times = out / f"{target}-times.json"
    times.unlink(missing_ok=True)  # a block that writes no times must fail, not report the previous block's
    env = {**os.environ, "BENCH_TARGET": target, "BENCH_SETUP": str(setup), "BENCH_TIMES": str(times)}
    with cpu.Sampler(workers, kind == "postgresql") as sampler:
        locust = subprocess.Popen([str(BIN / "locust"), "-f", str(Path(__file__).with_name("locustfile.py")),
                                   "--headless", "-u", str(CLIENTS), "-r", str(CLIENTS), "--run-time",
                                   f"{run_seconds}s", "--only-summary", "--host", f"http://127.0.0.1:{port}",
                                   "--csv", str(prefix), "--loglevel", "ERROR"],
                                  env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        sampler.load_pids.append(locust.pid)
        locust.wait()
    with open(f"{prefix}_stats.csv", newline="") as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    requests, rps = int(total["Request Count"]), float(total["Requests/s"])
    return {"requests": requests, "seconds": requests / rps if rps else float(run_seconds),
            "failures": int(total["Failure Count"]), "times": json.loads(times.read_text()),
            "cpu": sampler.steady(skip_start=2.0, skip_end=1.5)}


def _endpoint(runs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """An endpoint's blocks taken together."""
    requests = sum(r["requests"] for r in runs)
    rps = requests / sum(r["seconds"] for r in runs)
    times = sorted(t for r in runs for t in r["times"])
    used = cpu.merge(r["cpu"] for r in runs if r["cpu"] is not None)
    return {"rps": rps, "failures": sum(r["failures"] for r in runs),
            "p50": _percentile(times, 0.50), "p99": _percentile(times, 0.99),
            "cpu": used.describe(rps, kind == "postgresql") if used else "CPU: run too short to sample"}


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def weighable_patients(session: Any, limit: int) -> list[int]:
    """Patients with no bag that a bedside check would match: the weights the load records must not change what
    the bedside checks of this or a later run find (a newer weight is judged against the prescription)."""
    scanned = {wristband for wristband, _scan, _id in session.execute(matching_query())}
    rows = session.execute(select(Patient.id, Patient.wristband_id).order_by(Patient.id))
    return [patient_id for patient_id, wristband in rows if wristband not in scanned][:limit]


def run(kind: str) -> list[Row]:
    _, large_bags = sizes()
    url = database(kind, large_bags)
    with opened(kind, large_bags) as app:
        session = app.extensions["mscbatch.db"].new_session()
        try:
            pairs = matching_pairs(session, 2000)
            patients = weighable_patients(session, 2000)
        finally:
            session.close()
        setup_data = {"token": api_token(app, "bench-nurse"), "clinician": api_token(app, "bench-clinician"),
                      "pairs": pairs, "patients": patients,
                      "measured_on": (site_today() - timedelta(days=1)).isoformat()}
    port = _free_port()
    server = _serve(url, port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            setup = Path(tmp) / "setup.json"
            setup.write_text(json.dumps(setup_data))
            workers = _children(server.pid)
            count, block = blocks()
            runs: dict[str, list[dict[str, Any]]] = {target: [] for target in TARGETS}
            for target in turns(count):
                runs[target].append(_locust(port, target, setup, Path(tmp), workers, kind, block))
            bedside, weight, health = (_endpoint(runs[target], kind) for target in TARGETS)
        peaks = [_peak_kib(pid) for pid in _children(server.pid)]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    errors = int(bedside["failures"] + health["failures"])
    note = (f"{count} x {block} s x {CLIENTS} clients, {WORKERS} workers: {_summary('bedside', bedside)}; "
            f"{_summary('healthz', health)}; errors {errors}; peak worker memory "
            + ", ".join(f"{kib / 1024:.0f} MiB" for kib in peaks)
            + f"\n    bedside {bedside['cpu']}\n    healthz {health['cpu']}")
    # an error under load fails the bound whatever the throughput
    row = Row(kind, "load: bedside throughput", "healthz throughput", 0.0 if errors else bedside["rps"],
              health["rps"], 0.5, unit="req/s", note=note + (" (ERRORS)" if errors else ""), at_least=True)
    weight_errors = int(weight["failures"])
    same_shape = Row(kind, "load: bedside throughput", "audited write throughput",
                     0.0 if weight_errors else bedside["rps"], weight["rps"], None, unit="req/s", at_least=True,
                     note=(f"vs an audited write, a clinician recording a weight (POST /api/v1/patients/<id>/weights): "
                           f"{_summary('weight', weight)}; errors {weight_errors}\n    weight {weight['cpu']}"))
    return [row, same_shape]


def _summary(name: str, measured: dict[str, Any]) -> str:
    return f"{name} {measured['rps']:.0f} req/s p50 {measured['p50']:.0f} ms p99 {measured['p99']:.0f} ms"
