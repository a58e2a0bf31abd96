"""bench/bench_load.py: each endpoint's load is run as blocks taking turns, and its blocks are taken together
(throughput over the blocks' time, percentiles over every response time, CPU weighted by window)."""
from __future__ import annotations

import pytest

from bench import bench_load
from bench.cpu import CpuSplit


def test_sixty_seconds_are_six_blocks_of_ten_and_a_smoke_run_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSCBATCH_BENCH_LOAD_SECONDS", "60")
    assert bench_load.blocks() == (6, 10)
    monkeypatch.setenv("MSCBATCH_BENCH_LOAD_SECONDS", "6")
    assert bench_load.blocks() == (1, 6)


def test_the_endpoints_take_turns_in_mirrored_order() -> None:
    order = bench_load.turns(2)
    assert order == ["bedside", "weight", "health", "health", "weight", "bedside"]
    # over an even number of rounds every endpoint's blocks sit, on average, at the same time of the run: a steady
    # drift of the machine's speed favours none
    mean_place = {t: sum(i for i, x in enumerate(bench_load.turns(6)) if x == t) for t in bench_load.TARGETS}
    assert len(set(mean_place.values())) == 1
    assert all(bench_load.turns(6).count(t) == 6 for t in bench_load.TARGETS)


def test_an_endpoints_blocks_are_taken_together() -> None:
    fast = {"requests": 1000, "seconds": 10.0, "failures": 0, "times": [float(t) for t in range(1, 101)],
            "cpu": CpuSplit(1.0, 0.0, 0.5, 0.5, seconds=6.0)}
    slow = {"requests": 500, "seconds": 10.0, "failures": 1, "times": [1000.0] * 100,
            "cpu": CpuSplit(2.0, 0.0, 0.5, 0.0, seconds=6.0)}
    both = bench_load._endpoint([fast, slow], "sqlite")
    assert both["rps"] == pytest.approx(75.0)  # 1 500 requests in 20 s, not the mean of 100 and 50 a second
    assert both["failures"] == 1
    assert both["p50"] == 1000.0 and both["p99"] == 1000.0  # over all 200 times: the slow block's half counts
    assert bench_load._endpoint([fast], "sqlite")["p50"] == 51.0
    assert "workers 20.00 ms" in both["cpu"]  # 1.5 cores busy / 75 requests a second
    assert "CPU: run too short" in bench_load._endpoint([dict(fast, cpu=None)], "sqlite")["cpu"]
