"""Traceability pages, server side: lookback from a donor (GET /trace/donors/<id>) and backward trace from a
patient (GET /trace/patients/<id>), 1 000 000 vs 10 000 bags, median latency ratio <= 1.5 each."""
from __future__ import annotations

import random
from typing import Any

from sqlalchemy import select

from bench.common import Row, opened, paired_medians, signed_in, sizes
from mscbatch.lots.models import Lot
from mscbatch.patients.models import Allocation

SAMPLES = 150


def _ids(app: Any, query: Any) -> list[int]:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        ids = list(session.scalars(query))
    finally:
        session.close()
    ids.sort()
    random.Random(11).shuffle(ids)
    return ids[:SAMPLES]


def pages(app: Any, what: str) -> list[Any]:
    if what == "donors":  # donors who gave lots: the lookback has something to find
        ids = _ids(app, select(Lot.donor_id).distinct())
    else:  # patients who received or were allocated bags
        ids = _ids(app, select(Allocation.patient_id).distinct())
    client = signed_in(app, "bench-qa")

    def get(url: str) -> None:
        answer = client.get(url)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {url} gave {answer.status_code}")

    return [lambda url=f"/trace/{what}/{i}": get(url) for i in ids]


def run(kind: str) -> list[Row]:
    small_bags, large_bags = sizes()
    rows = []
    with opened(kind, small_bags) as small, opened(kind, large_bags) as large:
        for what, name in (("donors", "lookback from a donor"), ("patients", "backward trace from a patient")):
            a, b = paired_medians(pages(small, what), pages(large, what))
            rows.append(Row(kind, f"{name}, {large_bags:,} bags", f"{small_bags:,} bags", b, a, 1.5))
    return rows
