"""Review 4: the protocol's observation period after a first infusion (SLE-UC 10 days: seed 001's primary endpoint,
"durant l'injection et les 10 premiers jours"; SSc-BM 0: its record names none) and the weight check settings."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.cohorts import (
    EscalationDecision,
    EscalationError,
    Observation,
    await_infusions,
    check_cohort_infused,
    check_prescription,
    escalation_state,
)
from mscbatch.core.configfiles import ConfigError
from mscbatch.core.protocols import load_protocol
from tests.unit.test_cohorts import ONE, SLE, SSC, TWO
from tests.unit.test_protocols import SLE_FILE, SSC_FILE, _variant

STARTED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DECISION = EscalationDecision("adapted", Decimal(4_000_000), "CTCAE review of patients 1-5", "dr", STARTED.date())


def test_the_shipped_protocols_observe_sle_10_days_and_ssc_0_and_check_weights_10_percent_within_30_days() -> None:
    sle, ssc = load_protocol(SLE_FILE), load_protocol(SSC_FILE)
    assert (sle.escalation.observation_days, ssc.escalation.observation_days) == (10, 0)
    for protocol in (sle, ssc):
        assert (protocol.dosing.weight_check_percent, protocol.dosing.weight_check_days) == (10, 30)


@pytest.mark.parametrize(("old", "new", "key"), [
    ("observation_days = 10", "observation_days = -1", "escalation.observation_days"),
    ("observation_days = 10", "observation_days = 1.5", "escalation.observation_days"),
    ("weight_check_percent = 10 ", "weight_check_percent = 0 ", "dosing.weight_check_percent"),
    ("weight_check_days = 30 ", "weight_check_days = -3 ", "dosing.weight_check_days"),
])
def test_a_wrong_observation_or_weight_check_setting_is_refused_naming_its_key(
        tmp_path: Path, old: str, new: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_protocol(_variant(tmp_path, old, new))
    assert info.value.key == key, str(info.value)


def test_the_decision_waits_until_the_fifth_patient_is_observed_and_says_from_when() -> None:
    observed = escalation_state(SLE, [TWO] * 4)  # 4 patients infused 10 days ago or more
    waiting = Observation(10, ((TWO, STARTED),))  # the fifth infused on 2 March at 09:30
    with pytest.raises(EscalationError) as info:
        check_cohort_infused(observed, DECISION, waiting)
    words = str(info.value)
    assert "only 4 of the 5 patients of stage 'initial' have been infused and observed for 10 days" in words
    assert "possible from 2026-03-12 09:30 UTC" in words
    with pytest.raises(EscalationError) as info:  # the fifth not even infused
        check_cohort_infused(observed, DECISION, Observation(10))
    assert "1 more patient(s) must first be infused, then observed for 10 days" in str(info.value)
    check_cohort_infused(escalation_state(SLE, [TWO] * 5), DECISION, Observation(10))  # all observed: allowed


def test_without_an_observation_period_the_words_stay_those_of_the_infusions() -> None:
    with pytest.raises(EscalationError) as info:
        check_cohort_infused(escalation_state(SLE, [TWO] * 4), DECISION, Observation(0, ((TWO, STARTED),)))
    assert "have been infused:" in str(info.value) and "observed for" not in str(info.value)


def test_a_fixed_next_stage_waits_for_the_observation_of_the_previous_one() -> None:
    prescribed = escalation_state(SSC, [ONE] * 10)
    later = [(ONE, STARTED + timedelta(hours=n)) for n in range(3)]
    held = await_infusions(prescribed, escalation_state(SSC, [ONE] * 7), Observation(5, tuple(later)))
    assert held.infusions_awaited
    assert "7 of the 10 patients of stage 'low' have been infused and observed for 5 days" in held.message
    assert "possible from 2026-03-07 11:30 UTC" in held.message  # the third waiting patient's 5 days
    with pytest.raises(EscalationError):
        check_prescription(held, Decimal(3_000_000))
