"""Dose-escalation plan state (SLE-UC seed 001 'Analyse statistique'; SSc-BM Farge 2022)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.cohorts import (
    EscalationDecision,
    EscalationError,
    check_decision_due,
    check_prescription,
    escalation_state,
)
from mscbatch.core.protocols import load_protocol

PROTOCOLS_DIR = Path(__file__).resolve().parents[2] / "config" / "protocols"
SLE = load_protocol(PROTOCOLS_DIR / "sle_uc.toml")
SSC = load_protocol(PROTOCOLS_DIR / "ssc_bm.toml")
ONE, TWO, THREE, FOUR = (Decimal(n * 1_000_000) for n in (1, 2, 3, 4))


def decision(level: Decimal, review: str = "Toxicity review TR-2026-01 (CTCAE, patients 1-5)",
             stage: str = "adapted") -> EscalationDecision:
    return EscalationDecision(stage, level, review, "Dr Investigator", date(2026, 3, 1))


def test_the_first_lupus_patient_gets_2_million_per_kg_without_a_decision() -> None:
    state = escalation_state(SLE, [])
    assert state.default_level_cells_per_kg == TWO and not state.decision_needed
    assert state.current_stage_id == "initial"
    assert state.counts_by_level == {ONE: 0, TWO: 0, FOUR: 0}


def test_after_4_lupus_patients_the_fifth_still_gets_2_million_per_kg() -> None:
    state = escalation_state(SLE, [TWO] * 4)
    assert state.default_level_cells_per_kg == TWO and state.counts_by_level[TWO] == 4
    check_prescription(state, TWO)


def test_after_5_lupus_patients_at_2_million_a_decision_1_or_4_is_required_before_the_next() -> None:
    state = escalation_state(SLE, [TWO] * 5)
    assert state.decision_needed and state.default_level_cells_per_kg is None
    assert state.decision_options_cells_per_kg == (ONE, FOUR)
    assert "decision required" in state.message
    with pytest.raises(EscalationError, match="decision required"):
        check_prescription(state, FOUR)
    check_decision_due(state, decision(FOUR))


@pytest.mark.parametrize("level", [ONE, FOUR])
def test_the_recorded_decision_sets_the_level_of_the_next_five(level: Decimal) -> None:
    state = escalation_state(SLE, [TWO] * 5, [decision(level)])
    assert state.default_level_cells_per_kg == level and not state.decision_needed
    check_prescription(state, level)
    with pytest.raises(EscalationError, match="plan calls for"):
        check_prescription(state, TWO)
    done = escalation_state(SLE, [TWO] * 5 + [level] * 5, [decision(level)])
    assert done.complete and done.counts_by_level[level] == 5 and done.off_plan == ()
    with pytest.raises(EscalationError):
        check_prescription(done, level)


def test_a_decision_without_a_cited_toxicity_review_is_refused() -> None:
    with pytest.raises(EscalationError, match="toxicity review"):
        escalation_state(SLE, [TWO] * 5, [decision(FOUR, review="  ")])


def test_a_decision_for_a_level_the_stage_does_not_offer_is_refused() -> None:
    with pytest.raises(EscalationError, match="allows"):
        escalation_state(SLE, [TWO] * 5, [decision(TWO)])


def test_a_decision_on_a_fixed_stage_or_an_unknown_stage_is_refused() -> None:
    with pytest.raises(EscalationError, match="fixed level"):
        escalation_state(SLE, [], [decision(TWO, stage="initial")])
    with pytest.raises(EscalationError, match="no escalation stage"):
        escalation_state(SLE, [], [decision(FOUR, stage="third")])


def test_two_decisions_for_one_stage_are_refused() -> None:
    with pytest.raises(EscalationError, match="two recorded decisions"):
        escalation_state(SLE, [TWO] * 5, [decision(FOUR), decision(ONE)])


def test_a_decision_before_the_fifth_patient_is_dosed_is_premature() -> None:
    state = escalation_state(SLE, [TWO] * 3)
    with pytest.raises(EscalationError, match="no decision is due"):
        check_decision_due(state, decision(FOUR))


def test_a_patient_dosed_before_the_decision_is_reported_off_plan_and_not_counted() -> None:
    state = escalation_state(SLE, [TWO] * 5 + [FOUR])
    assert state.decision_needed and state.counts_by_level[FOUR] == 1
    assert len(state.off_plan) == 1 and "before the decision" in state.off_plan[0]


def test_a_patient_dosed_at_another_level_than_the_stage_is_reported_off_plan() -> None:
    state = escalation_state(SLE, [TWO, FOUR, TWO])
    assert state.stages[0].dosed == 2 and "patient 2" in state.off_plan[0]
    assert state.default_level_cells_per_kg == TWO


def test_sclerosis_patients_get_1_million_for_ten_then_3_million_for_ten_without_decisions() -> None:
    assert escalation_state(SSC, []).default_level_cells_per_kg == ONE
    assert escalation_state(SSC, [ONE] * 9).default_level_cells_per_kg == ONE
    after_ten = escalation_state(SSC, [ONE] * 10)
    assert after_ten.default_level_cells_per_kg == THREE and not after_ten.decision_needed
    assert after_ten.current_stage_id == "high"
    done = escalation_state(SSC, [ONE] * 10 + [THREE] * 10)
    assert done.complete and done.counts_by_level == {ONE: 10, THREE: 10}
    extra = escalation_state(SSC, [ONE] * 10 + [THREE] * 11)
    assert "after the plan was complete" in extra.off_plan[0]
