"""Bedside check, server side, one request (POST /api/v1/custody/scan-verify): 1 000 000 vs 10 000 bags,
median latency ratio <= 1.5. Each request is a real check of a bag allocated to that wristband's patient and
must answer MATCHES (the check also writes its TwoPersonCheck record, as at the bedside)."""
from __future__ import annotations

import itertools
import random
from typing import Any

from bench.common import Row, api_token, opened, paired_medians, sizes
from mscbatch.scale import matching_pairs

SAMPLES = 300


def checks(app: Any, samples: int = SAMPLES) -> list[Any]:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        pairs = matching_pairs(session, samples * 5)
    finally:
        session.close()
    random.Random(7).shuffle(pairs)
    token = api_token(app, "bench-nurse")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def check(wristband: str, bag: str) -> None:
        answer = client.post("/api/v1/custody/scan-verify", json={"wristband": wristband, "bag": bag},
                             headers=headers)
        body = answer.get_json()
        if answer.status_code != 200 or body.get("result") != "MATCHES":
            raise RuntimeError(f"bedside check of {bag} for {wristband} gave {answer.status_code} {body}")

    if not pairs:
        raise RuntimeError("the generated database has no bag that a bedside check would match")
    return [lambda w=w, b=b: check(w, b) for w, b in itertools.islice(itertools.cycle(pairs), samples)]


def run(kind: str) -> list[Row]:
    small_bags, large_bags = sizes()
    with opened(kind, small_bags) as small, opened(kind, large_bags) as large:
        a, b = paired_medians(checks(small), checks(large))
    return [Row(kind, f"bedside check, {large_bags:,} bags", f"{small_bags:,} bags", b, a, 1.5)]
