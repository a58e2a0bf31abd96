"""Where a load run's CPU goes, per request: the gunicorn workers, PostgreSQL, the load generator, and what the
machine left idle. Read from /proc (Linux), so that `make bench` shows why a throughput ratio is what it is,
instead of leaving that to a profiling session.

Sampled every half second over the middle of a run (bench_load's steady state): the workers' and the load
generator's processes by pid; PostgreSQL as the sum over every process named `postgres` (the server's own
processes and the workers' backends, including backends started during the run); idle from the `cpu` line of
/proc/stat (idle + iowait, summed over the CPUs).
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15 of proc(5))


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def idle_seconds() -> float:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / _TICK  # idle, iowait: summed over every CPU


@dataclass(frozen=True)
class Snapshot:
    wall: float
    workers: float
    database: dict[int, float]
    load_generator: float
    idle: float


def snapshot(wall: float, worker_pids: Iterable[int], load_pids: Iterable[int], database: bool) -> Snapshot:
    return Snapshot(wall, sum(process_seconds(pid) for pid in worker_pids),
                    {pid: process_seconds(pid) for pid in postgres_pids()} if database else {},
                    sum(process_seconds(pid) for pid in load_pids), idle_seconds())


@dataclass(frozen=True)
class CpuSplit:
    """Cores busy on average over a window of a run (CPU seconds per second), and cores left idle."""
    workers: float
    database: float
    load_generator: float
    idle: float
    seconds: float = 0.0  # the window's length, the weight of this split in merge()

    def describe(self, rps: float, database: bool) -> str:
        per = 1000 / rps if rps else 0.0
        parts = [f"workers {self.workers * per:.2f} ms"]
        if database:
            parts.append(f"PostgreSQL {self.database * per:.2f} ms")
        parts.append(f"load generator {self.load_generator * per:.2f} ms")
        return f"CPU per request: {', '.join(parts)}; idle {self.idle:.2f} of {os.cpu_count()} cores"


def split(before: Snapshot, after: Snapshot) -> CpuSplit:
    """A process that started inside the window (a new PostgreSQL backend) counts from zero."""
    seconds = after.wall - before.wall
    database = sum(max(0.0, used - before.database.get(pid, 0.0)) for pid, used in after.database.items())
    return CpuSplit(workers=(after.workers - before.workers) / seconds, database=database / seconds,
                    load_generator=(after.load_generator - before.load_generator) / seconds,
                    idle=(after.idle - before.idle) / seconds, seconds=seconds)


def merge(splits: Iterable[CpuSplit]) -> CpuSplit | None:
    """The split over several windows (the blocks of one endpoint's load), each weighted by its length."""
    windows = [s for s in splits if s.seconds > 0]
    total = sum(s.seconds for s in windows)
    if not total:
        return None
    def mean(name: str) -> float:
        return sum(getattr(s, name) * s.seconds for s in windows) / total
    return CpuSplit(mean("workers"), mean("database"), mean("load_generator"), mean("idle"), total)


class Sampler:
    """Snapshots every `every` seconds while a run goes on (a thread); `steady()` is the split over the run's
    middle, without the load generator's start (imports, spawning its users) and its end (writing reports),
    when the server idles and the per-request figures would be skewed."""

    def __init__(self, worker_pids: list[int], database: bool, every: float = 0.5):
        self.worker_pids, self.database, self.every = worker_pids, database, every
        self.load_pids: list[int] = []
        self.snapshots: list[Snapshot] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.snapshots.append(snapshot(time.monotonic(), self.worker_pids, self.load_pids, self.database))
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def steady(self, skip_start: float, skip_end: float) -> CpuSplit | None:
        if not self.snapshots:
            return None
        first, last = self.snapshots[0].wall + skip_start, self.snapshots[-1].wall - skip_end
        window = [s for s in self.snapshots if first <= s.wall <= last]
        return split(window[0], window[-1]) if len(window) >= 2 else None
