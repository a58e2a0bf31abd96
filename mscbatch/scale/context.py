"""What the lot builder (mscbatch.scale.build) shares: fixed values of the generated unit, the run's Context
(users, configuration, counters, storage cursor) and results of the pure core computed once and reused
(culture arithmetic of the passage template, release verdicts per specification, enrolment checks per age).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from mscbatch.core.culture import population_doublings
from mscbatch.core.enrolment import ELIGIBLE
from mscbatch.core.enrolment import evaluate as evaluate_enrolment
from mscbatch.core.verdicts import LabResult, judge_lot, judge_test
from mscbatch.patients.demo import SLE_VALUES, SSC_VALUES
from mscbatch.patients.enrolment import parse_values, results_json
from mscbatch.release.demo import PASSING_PANEL
from mscbatch.scale.records import Ids
from mscbatch.scale.shape import RxPlan

M = 10**6
BAG_ML = Decimal(25)
DMSO = Decimal(10)
ENDOTOXIN = Decimal(PASSING_PANEL["endotoxin"][0])
#: product -> (donor rule set, donor type, tissue amount range, unit, collection site, trial protocol short name)
SOURCES = {
    "UC-MSC": ("cord_eu", "unrelated", (15, 25), "g", "Maternity, delivery room", "SLE-UC"),
    "AT-MSC": ("adipose_at_don", "unrelated", (40, 80), "g", "Plastic surgery, theatre", None),
    "BM-MSC": ("marrow_ssc_bm", "familial", (40, 80), "mL", "Haematology, marrow harvest room", "SSc-BM"),
}
#: (seeded, harvested) x10^6 per passage P0..; BM stops at P2 (its warning passage is 3)
PASSAGES = ((4, 38), (3, 26), (3, 27), (4, 33))
LETTERS = "ABCDEFGHJKLMNPRSTVW"
SAMPLE_OFFSETS = (0, -1, 1, -2, 2, -3, 3)  # days from the collection


@cache
def passage_template(product_id: str) -> tuple[tuple[int, int, int, Decimal, Decimal], ...]:
    """(passage, seeded, harvested, PD, cumulative PD) of the culture template (core.culture arithmetic)."""
    out, cumulative = [], Decimal(0)
    for number, (seeded, harvested) in enumerate(PASSAGES[:3] if product_id == "BM-MSC" else PASSAGES):
        pd = population_doublings(seeded * M, harvested * M).quantize(Decimal("0.01"))
        cumulative += pd
        out.append((number, seeded * M, harvested * M, pd, cumulative))
    return tuple(out)


_VERDICTS: dict[str, dict[str, Any]] = {}


def verdict_snapshot(spec: Any, results: dict[str, LabResult]) -> str:
    """The disposition's verdict snapshot (as release._snapshot writes it), judged by core.verdicts. Only the
    viable cell count differs between lots: the other tests' verdicts are judged once per specification."""
    if spec.id not in _VERDICTS:
        verdict = judge_lot(spec, list(results.values()))
        _VERDICTS[spec.id] = {v.test_id: v for v in verdict.verdicts}
    verdicts = dict(_VERDICTS[spec.id])
    for test in spec.tests:
        if test.id == "viable_cell_count":
            verdicts[test.id] = judge_test(test, [results[test.id]])
    failing = [v.test_id for v in verdicts.values() if str(v.status) not in ("pass", "informative")]
    if failing:
        raise RuntimeError(f"generated release results fail {failing}: the shape is wrong")
    return json.dumps([{"test_id": v.test_id, "status": str(v.status), "value": v.value_text, "reason": v.reason}
                       for v in verdicts.values()], sort_keys=True)


@cache
def enrolment_check(protocol: Any, trial: str, age: int) -> tuple[str, str, str]:
    """(values_json, status, results_json) of an enrolment check with the trial's passing values, judged by
    core.enrolment for a patient of this age (the only input that differs between generated patients)."""
    values = parse_values(protocol, SSC_VALUES if trial == "SSc-BM" else SLE_VALUES)
    on_date = date(2026, 6, 1)
    decision = evaluate_enrolment(protocol, values, date(on_date.year - age - 1, 12, 1), on_date)
    if decision.status != ELIGIBLE:
        raise RuntimeError(f"a generated {trial} patient aged {age} is {decision.status}: the shape is wrong")
    values_json = json.dumps({k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}, sort_keys=True)
    return values_json, decision.status, results_json(decision, protocol)


@dataclass
class Context:
    """Everything shared by the lots of one run: users, configuration, counters, storage cursor."""

    now: datetime
    seed: int
    users: dict[str, Any]
    site: Any
    products: Any
    specs: dict[str, Any]
    rule_sets: dict[str, Any]
    protocols: dict[str, Any]  # short name -> Protocol
    ids: Ids
    boxes: list[tuple[int, str, int]]  # (box id, name, columns) in filling order
    reagents: dict[tuple[str, int], int]  # (reagent kind, year) -> reagent lot id
    lot_seq: dict[int, int] = field(default_factory=dict)
    din_seq: dict[int, int] = field(default_factory=dict)
    donor_seq: dict[int, int] = field(default_factory=dict)
    patient_seq: dict[str, int] = field(default_factory=dict)
    box_cursor: int = 0
    years_span: timedelta = timedelta(days=365)
    taken_codes: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("donors", "lots", "bags", "patients", "prescriptions", "custody_events", "infusions"), 0))

    def next_position(self) -> tuple[int, int, str]:
        """(box id, position, "Box name B3"): boxes of 10 x 10 filled in order."""
        box, slot = divmod(self.box_cursor, 100)
        self.box_cursor += 1
        box_id, name, columns = self.boxes[box]
        row, column = divmod(slot, columns)
        return box_id, slot + 1, f"{name} {chr(ord('A') + row)}{column + 1}"


def as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def local_at(ctx: Context, day: date, hour: int, minute: int = 0) -> datetime:
    return as_utc(datetime.combine(day, time(hour, minute), ctx.site.tz))


def kg_of(rx: RxPlan) -> Decimal:
    """The weight as the database gives it back (Numeric(6, 2)): the prescription's signature covers its text."""
    return rx.weight_kg.quantize(Decimal("0.01"))


def next_seq(counter: dict[Any, int], key: Any) -> int:
    counter[key] = counter.get(key, 0) + 1
    return counter[key]
