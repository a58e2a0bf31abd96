"""await_infusions: a stage with a fixed level starts only once the previous stage's patients have been infused."""
from __future__ import annotations

import pytest

from mscbatch.core.cohorts import EscalationError, await_infusions, check_prescription, escalation_state
from tests.unit.test_cohorts import ONE, SLE, SSC, THREE, TWO


def test_ssc_3_million_waits_for_the_10_infusions_at_1_million_and_then_starts() -> None:
    prescribed = escalation_state(SSC, [ONE] * 10)
    held = await_infusions(prescribed, escalation_state(SSC, [ONE] * 9))
    assert held.infusions_awaited and held.default_level_cells_per_kg == THREE
    assert "9 of the 10 patients of stage 'low' have been infused so far" in held.message
    for level in (THREE, ONE):
        with pytest.raises(EscalationError, match="9 of the 10 patients"):
            check_prescription(held, level)
    check_prescription(await_infusions(prescribed, escalation_state(SSC, [ONE] * 10)), THREE)


def test_the_first_stage_is_never_held_and_a_decision_stage_keeps_its_own_message() -> None:
    first = await_infusions(escalation_state(SSC, [ONE] * 9), escalation_state(SSC, []))
    assert not first.infusions_awaited
    check_prescription(first, ONE)
    sle = await_infusions(escalation_state(SLE, [TWO] * 5), escalation_state(SLE, [TWO] * 2))
    assert not sle.infusions_awaited and sle.message.startswith("decision required")
