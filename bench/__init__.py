"""Benchmarks: each prints ratios measured side by side in one run (see issue 9). `make bench` runs them."""
