"""The plan of a scale database: what to generate for N bags and a seed (pure: no database, no clock).

Shape (issue 9 point 1): one donor per lot, lots of 4-20 bags (10 on average, so N bags ~ N/10 lots), tissue
sources 50 % umbilical cord (UC-MSC, lupus trial SLE-UC), 30 % adipose (AT-MSC, no trial: stock only), 20 %
familial bone marrow (BM-MSC, directed to one SSc-BM patient). Collections are spread evenly over the years
needed to keep each year's lot numbers inside the site format (at most LOTS_PER_YEAR a year: MSC-YYYY-NNNN
leaves room for the unit's own lots afterwards), in an order scattered over the lot ids, so recent (usable)
lots are found all over the database and not only at its end.

Fates: a lot frozen less than a week ago waits in quarantine; the others are released, and expired once past
their product's shelf life. Released UC and BM lots serve prescriptions (one new patient each): recent ones
are allocated, dispatched, received on the ward (the bedside check then answers MATCHES) or infused; those of
expired lots were all infused. Bags nobody was prescribed stay stored (most of them) or were discarded.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal

PRODUCT_MIX = (("UC-MSC", 50), ("AT-MSC", 30), ("BM-MSC", 20))
LOTS_PER_YEAR = 8000
MIN_BAGS, MAX_BAGS = 4, 20
COLLECTION_TO_FREEZE_DAYS = (21, 30)
QUARANTINE_DAYS = 7
#: share of a recent UC lot's bags that prescriptions take at most (the writer keeps STOCK_SHARE in stock);
#: an expired UC lot served one patient half of the time. Prescription states of recent lots: most bags on the
#: ward, so that at a million bags (13 years of lots, one in about 14 still in date) over 1 % still match.
PRESCRIBED_SHARE = Decimal("0.8")
STOCK_SHARE = 0.2
EXPIRED_PRESCRIBED = 0.5
RECENT_STATES = (("received", 65), ("infused", 17), ("allocated", 10), ("dispatched", 8))
DISCARD_RECENT, DISCARD_EXPIRED = 0.08, 0.30
_SCATTER_PRIMES = (7919, 7927, 7933, 7937, 7949, 7951)


@dataclass(frozen=True)
class RxPlan:
    """One prescription for one new patient: the dose the writer allocates with the dosing core."""

    state: str  # allocated | dispatched | received | infused
    weight_kg: Decimal
    level_index: int  # index into the protocol's dose levels
    sex: str
    birth_year_offset: int  # age at collection, 25-64


@dataclass(frozen=True)
class LotPlan:
    index: int
    product_id: str
    bag_count: int
    collection_days_ago: int
    freeze_after_days: int
    cells_per_ml: int  # viable cells per mL in each 25 mL bag
    viability_tenths: int  # harvest viability, in tenths of a percent
    prescriptions: tuple[RxPlan, ...]
    discard: tuple[bool, ...]  # per bag: discarded if nobody was prescribed it
    donor_age: int
    donor_female: bool

    @property
    def quarantine(self) -> bool:
        return self.collection_days_ago - self.freeze_after_days < QUARANTINE_DAYS


@dataclass(frozen=True)
class Plan:
    bags: int
    seed: int
    years: int
    lots: tuple[LotPlan, ...]


def lot_sizes(bags: int, rng: random.Random) -> list[int]:
    """Sizes 4-20 adding up to exactly `bags` (mean about 10)."""
    if bags < MIN_BAGS:
        raise ValueError(f"at least {MIN_BAGS} bags are needed (one lot of {MIN_BAGS})")
    sizes, remaining = [], bags
    while remaining:
        size = rng.randint(MIN_BAGS, 16) if rng.random() < 0.9 else rng.randint(MIN_BAGS, MAX_BAGS)
        if remaining <= MAX_BAGS and remaining - size < MIN_BAGS:
            size = remaining
        elif remaining - size < MIN_BAGS:
            size = remaining - MIN_BAGS
        sizes.append(size)
        remaining -= size
    return sizes


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _w in table], [weight for _n, weight in table])[0]


def _scatter(count: int) -> int:
    """A stride coprime with `count`: i -> i * stride % count visits every position once, evenly spread."""
    return next((p for p in _SCATTER_PRIMES if count % p), 1) if count > 1 else 1


def _rx(rng: random.Random, state: str) -> RxPlan:
    return RxPlan(state=state, weight_kg=Decimal(rng.randint(480, 950)) / 10, level_index=rng.randint(0, 1),
                  sex=rng.choice(("female", "male")), birth_year_offset=rng.randint(25, 64))


def plan(bags: int, seed: int = 1) -> Plan:
    rng = random.Random(f"mscbatch-scale:{seed}")
    sizes = lot_sizes(bags, rng)
    count = len(sizes)
    years = max(1, math.ceil(count / LOTS_PER_YEAR))
    span = years * 365 - 40  # collections from 31 days to about `years` years ago
    stride = _scatter(count)
    lots = []
    for index, size in enumerate(sizes):
        product = _weighted(rng, PRODUCT_MIX)
        days_ago = 31 + (index * stride % count) * span // count
        freeze_after = rng.randint(*COLLECTION_TO_FREEZE_DAYS)
        frozen_days_ago = days_ago - freeze_after
        expired = frozen_days_ago >= 360  # shelf life 365 days: a few days' margin for the bedside checks
        prescriptions: tuple[RxPlan, ...] = ()
        if product != "AT-MSC" and frozen_days_ago >= QUARANTINE_DAYS:
            wanted = 1 if product == "BM-MSC" else max(1, int(size * PRESCRIBED_SHARE / Decimal("2.5")))
            if expired and product == "UC-MSC":
                wanted = int(rng.random() < EXPIRED_PRESCRIBED)
            prescriptions = tuple(_rx(rng, "infused" if expired else _weighted(rng, RECENT_STATES))
                                  for _ in range(wanted))
        share = DISCARD_EXPIRED if expired else DISCARD_RECENT
        lots.append(LotPlan(index=index, product_id=product, bag_count=size, collection_days_ago=days_ago,
                            freeze_after_days=freeze_after, cells_per_ml=rng.randint(20, 32) * 100_000,
                            viability_tenths=rng.randint(920, 975), prescriptions=prescriptions,
                            discard=tuple(rng.random() < share for _ in range(size)),
                            donor_age=rng.randint(20, 45), donor_female=product == "UC-MSC" or rng.random() < 0.5))
    return Plan(bags=bags, seed=seed, years=years, lots=tuple(lots))
