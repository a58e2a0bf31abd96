"""bench/cpu.py: the per-request CPU split `make bench` prints under load (issue 9: where the load ratio's time
goes), from two snapshots of /proc."""
from __future__ import annotations

import os

import pytest

from bench.cpu import CpuSplit, Sampler, Snapshot, merge, process_seconds, split


def test_split_gives_cores_per_second_and_counts_a_new_backend_from_zero() -> None:
    before = Snapshot(wall=10.0, workers=5.0, database={100: 2.0, 101: 1.0}, load_generator=1.0, idle=50.0)
    after = Snapshot(wall=20.0, workers=17.0, database={100: 4.0, 101: 1.0, 102: 3.0}, load_generator=4.0,
                     idle=52.5)
    used = split(before, after)
    assert used.workers == pytest.approx(1.2)  # 12 CPU seconds in 10 s
    assert used.database == pytest.approx(0.5)  # 2 s of the old backend + 3 s of the new one
    assert used.load_generator == pytest.approx(0.3)
    assert used.idle == pytest.approx(0.25)


def test_describe_divides_by_the_throughput() -> None:
    used = split(Snapshot(0.0, 0.0, {}, 0.0, 0.0), Snapshot(1.0, 1.2, {1: 0.3}, 0.4, 0.2))
    text = used.describe(rps=400.0, database=True)
    assert "workers 3.00 ms" in text and "PostgreSQL 0.75 ms" in text and "load generator 1.00 ms" in text
    assert "idle 0.20 of" in text
    assert "PostgreSQL" not in used.describe(rps=400.0, database=False)


def test_the_sampler_reads_this_process_and_skips_the_edges_of_the_run() -> None:
    with Sampler([os.getpid()], database=False, every=0.02) as sampler:
        total = 0
        while len(sampler.snapshots) < 30:
            total += sum(range(2000))  # keep this process busy so its CPU moves
    assert process_seconds(os.getpid()) > 0
    steady = sampler.steady(skip_start=0.1, skip_end=0.1)
    assert steady is not None and steady.workers > 0
    assert sampler.steady(skip_start=100.0, skip_end=0.0) is None  # nothing left once the edges are cut


def test_merge_weights_each_window_by_its_length() -> None:
    short = CpuSplit(workers=1.0, database=0.2, load_generator=0.5, idle=0.4, seconds=2.0)
    long = CpuSplit(workers=1.6, database=0.5, load_generator=0.2, idle=0.1, seconds=6.0)
    merged = merge([short, long])
    assert merged is not None
    assert merged.workers == pytest.approx((1.0 * 2 + 1.6 * 6) / 8)
    assert merged.database == pytest.approx((0.2 * 2 + 0.5 * 6) / 8)
    assert merged.load_generator == pytest.approx((0.5 * 2 + 0.2 * 6) / 8)
    assert merged.idle == pytest.approx((0.4 * 2 + 0.1 * 6) / 8)
    assert merged.seconds == pytest.approx(8.0)
    assert merge([]) is None
