"""Lot list page, filtered and paginated (GET /lots?status=released&before=<id>): about 100 000 lots
(1 000 000 bags) vs about 1 000 lots (10 000 bags), median latency ratio <= 1.5. Pages are taken at random
depths (keyset pagination), so a deep page costs what the first does."""
from __future__ import annotations

import random
from typing import Any

from sqlalchemy import func, select

from bench.common import Row, opened, paired_medians, signed_in, sizes
from mscbatch.lots.models import Lot

SAMPLES = 150


def pages(app: Any) -> tuple[list[Any], int]:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        lots = session.scalar(select(func.count()).select_from(Lot))
        top = session.scalar(select(func.max(Lot.id))) or 1
    finally:
        session.close()
    depth = random.Random(3)
    client = signed_in(app, "bench-tech")

    def get(url: str) -> None:
        answer = client.get(url)
        if answer.status_code != 200 or b"<table" not in answer.data:
            raise RuntimeError(f"GET {url} gave {answer.status_code}")

    urls = [f"/lots?status=released&before={depth.randint(top // 10, top)}" for _ in range(SAMPLES)]
    return [lambda url=url: get(url) for url in urls], lots


def run(kind: str) -> list[Row]:
    small_bags, large_bags = sizes()
    with opened(kind, small_bags) as small, opened(kind, large_bags) as large:
        (small_pages, small_lots), (large_pages, large_lots) = pages(small), pages(large)
        a, b = paired_medians(small_pages, large_pages)
    return [Row(kind, f"lot list page, {large_lots:,} lots", f"{small_lots:,} lots", b, a, 1.5)]
