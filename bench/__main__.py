"""`make bench`: run every benchmark module in bench/ on SQLite and PostgreSQL and print one table of ratios.

Each bench_*.py has run(kind) -> list[Row]; every ratio is taken from two measurements made side by side in
this one run. The exit status is 1 when a ratio is outside its bound (issue 9), so a regression is visible.
"""
from __future__ import annotations

import importlib
import pkgutil
import platform
import sys
import time
from pathlib import Path

from bench.common import KINDS, Row, print_table, scale, sizes


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    only = [a for a in sys.argv[1:] if not a.startswith("-")]  # `python -m bench bench_labels` runs one
    names = [n for n in names if not only or n in only]
    small, large = sizes()
    print(f"mscbatch benchmarks: {small:,} vs {large:,} bags (scale {scale()}), databases {', '.join(KINDS)}; "
          f"{platform.processor() or platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}",
          flush=True)
    rows: list[Row] = []
    started = time.perf_counter()
    for kind in KINDS:
        for name in names:
            print(f"- {name} on {kind}", flush=True)
            rows.extend(importlib.import_module(f"bench.{name}").run(kind))
    print(f"\n{len(rows)} measures in {time.perf_counter() - started:.0f} s\n")
    print_table(rows)
    return 0 if all(r.within for r in rows) else 1


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
