"""`make bench`: run every benchmark module in bench/ and print its table of ratios."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    modules = [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")]
    if not modules:
        print("No benchmarks yet: they arrive with issue 9 (bench/bench_*.py, each with a run() function).")
        return 0
    for name in sorted(modules):
        importlib.import_module(f"bench.{name}").run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
