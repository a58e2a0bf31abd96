"""Enrolment checks against the protocol criteria (DOMAIN.md section 6, seeds 001 and 002)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from mscbatch.core.enrolment import (
    ELIGIBLE,
    INCOMPLETE,
    MET,
    MISSING,
    NOT_ELIGIBLE,
    NOT_MET,
    completed_years,
    evaluate,
)
from mscbatch.core.protocols import Criterion, Protocol, load_protocol

PROTOCOLS_DIR = Path(__file__).resolve().parents[2] / "config" / "protocols"
SLE = load_protocol(PROTOCOLS_DIR / "sle_uc.toml")
SSC = load_protocol(PROTOCOLS_DIR / "ssc_bm.toml")
BORN = date(1980, 5, 1)
TODAY = date(2026, 3, 2)


def _step(criterion: Criterion) -> Decimal:
    return Decimal(1) if criterion.unit == "points" else Decimal("0.1")


def meeting_value(criterion: Criterion) -> Decimal | bool:
    """A value that meets the criterion, as close to its threshold as the unit allows."""
    if criterion.is_boolean:
        return True
    assert criterion.threshold is not None
    t, step = criterion.threshold, _step(criterion)
    return {"<": t - step, "<=": t, ">": t + step, ">=": t}[criterion.comparator]


def missing_value(criterion: Criterion) -> Decimal | bool:
    """The boundary value on the other side: it does not meet the criterion."""
    if criterion.is_boolean:
        return False
    assert criterion.threshold is not None
    t, step = criterion.threshold, _step(criterion)
    return {"<": t, "<=": t + step, ">": t, ">=": t - step}[criterion.comparator]


def good_values(protocol: Protocol) -> dict[str, Decimal | bool | None]:
    """Every inclusion met and every exclusion not met, each right at its threshold."""
    return {c.parameter: meeting_value(c) if c.kind == "inclusion" else missing_value(c) for c in protocol.criteria}


def all_criteria() -> list[tuple[Protocol, Criterion]]:
    return [(p, c) for p in (SLE, SSC) for c in p.criteria]


def _id(value: object) -> str:
    return value.id if isinstance(value, Criterion) else value.short_name  # type: ignore[attr-defined]


@pytest.mark.parametrize("protocol", [SLE, SSC], ids=_id)
def test_a_patient_inside_every_limit_is_eligible(protocol: Protocol) -> None:
    decision = evaluate(protocol, good_values(protocol), BORN, TODAY)
    assert decision.status == ELIGIBLE and decision.eligible
    assert (decision.protocol_id, decision.protocol_version, decision.protocol_sha256) == (
        protocol.id, protocol.version, protocol.sha256)
    assert len(decision.results) == len(protocol.criteria) + 1  # + age


@pytest.mark.parametrize(("protocol", "criterion"), all_criteria(), ids=_id)
def test_each_criterion_on_its_wrong_side_alone_makes_the_patient_not_eligible(protocol: Protocol, criterion: Criterion) -> None:
    values = good_values(protocol)
    values[criterion.parameter] = missing_value(criterion) if criterion.kind == "inclusion" else meeting_value(criterion)
    decision = evaluate(protocol, values, BORN, TODAY)
    assert decision.status == NOT_ELIGIBLE
    assert [r.criterion_id for r in decision.blocking] == [criterion.id]
    blocking = decision.blocking[0]
    assert blocking.text == criterion.text and blocking.source == criterion.source
    assert blocking.status == (NOT_MET if criterion.kind == "inclusion" else MET)


@pytest.mark.parametrize(("protocol", "criterion"), all_criteria(), ids=_id)
def test_each_criterion_without_a_value_leaves_the_check_incomplete_unless_optional(protocol: Protocol, criterion: Criterion) -> None:
    values = good_values(protocol)
    del values[criterion.parameter]
    decision = evaluate(protocol, values, BORN, TODAY)
    result = next(r for r in decision.results if r.criterion_id == criterion.id)
    assert result.status == MISSING and result.value is None
    assert decision.status == (INCOMPLETE if criterion.required else ELIGIBLE)


def test_selena_sledai_5_is_not_eligible_for_the_lupus_trial_and_6_is() -> None:
    values = good_values(SLE)
    values["selena_sledai_points"] = Decimal(5)
    assert evaluate(SLE, values, BORN, TODAY).status == NOT_ELIGIBLE
    values["selena_sledai_points"] = Decimal(6)
    assert evaluate(SLE, values, BORN, TODAY).status == ELIGIBLE


def test_platelets_40_g_per_l_are_fine_for_lupus_but_exclude_from_the_sclerosis_trial() -> None:
    sle_values, ssc_values = good_values(SLE), good_values(SSC)
    sle_values["platelets_g_per_l"] = ssc_values["platelets_g_per_l"] = Decimal(40)
    assert evaluate(SLE, sle_values, BORN, TODAY).status == ELIGIBLE
    ssc = evaluate(SSC, ssc_values, BORN, TODAY)
    assert ssc.status == NOT_ELIGIBLE and [r.criterion_id for r in ssc.blocking] == ["ssc.exc.platelets"]


def test_a_typical_lupus_patient_with_realistic_values_is_eligible() -> None:
    values = {
        "selena_sledai_points": Decimal(10), "creatinine_clearance_ml_per_min": Decimal(85), "lvef_percent": Decimal(60),
        "ast_x_uln": Decimal("0.8"), "alt_x_uln": Decimal("1.1"), "mean_pap_echo_mmhg": Decimal(18),
        "pao2_mmhg": Decimal(92), "paco2_mmhg": Decimal(38), "neutrophils_g_per_l": Decimal("3.2"),
        "platelets_g_per_l": Decimal(210), "haemoglobin_g_per_dl": Decimal("11.8"), "cd4_per_ul": Decimal(540),
        "hiv_positive": False, "htlv_positive": False, "hbsag_positive": False, "hcv_positive": False,
        "months_since_belimumab": False, "months_since_b_cell_depletion": Decimal(14), "pregnant": False,
    }
    assert evaluate(SLE, values, BORN, TODAY).status == ELIGIBLE


def test_never_having_received_belimumab_does_not_exclude() -> None:
    values = good_values(SLE)
    values["months_since_belimumab"] = False
    assert evaluate(SLE, values, BORN, TODAY).status == ELIGIBLE
    values["months_since_belimumab"] = Decimal(1)
    assert evaluate(SLE, values, BORN, TODAY).status == NOT_ELIGIBLE


def test_a_missing_value_does_not_hide_an_exclusion_already_found() -> None:
    values = good_values(SSC)
    del values["lvef_percent"]
    values["hiv_positive"] = True
    decision = evaluate(SSC, values, BORN, TODAY)
    assert decision.status == NOT_ELIGIBLE
    assert [r.criterion_id for r in decision.missing] == ["ssc.exc.lvef"]


@pytest.mark.parametrize(("born", "status"), [
    (date(2008, 3, 2), NOT_ELIGIBLE),   # 18th birthday today: not yet "over 18"
    (date(2008, 3, 1), ELIGIBLE),       # 18 years and a day
    (date(1956, 3, 3), ELIGIBLE),       # 70th birthday tomorrow
    (date(1956, 3, 2), NOT_ELIGIBLE),   # 70th birthday today: no longer "under 70"
    (date(2010, 1, 1), NOT_ELIGIBLE),
])
def test_age_must_be_strictly_over_18_and_under_70(born: date, status: str) -> None:
    for protocol in (SLE, SSC):
        decision = evaluate(protocol, good_values(protocol), born, TODAY)
        assert decision.status == status
        assert decision.results[0].criterion_id == f"{protocol.id}.age"


def test_no_date_of_birth_leaves_the_check_incomplete() -> None:
    decision = evaluate(SLE, good_values(SLE), None, TODAY)
    assert decision.status == INCOMPLETE and decision.results[0].status == MISSING


def test_a_29_february_birthday_falls_on_1_march_in_common_years() -> None:
    assert completed_years(date(2000, 2, 29), date(2019, 2, 28)) == 18
    assert completed_years(date(2000, 2, 29), date(2019, 3, 1)) == 19


def test_whole_numbers_are_accepted_as_decimals() -> None:
    values = good_values(SLE)
    values["platelets_g_per_l"] = 150
    assert evaluate(SLE, values, BORN, TODAY).status == ELIGIBLE


def test_a_float_value_is_refused_rather_than_compared() -> None:
    values = good_values(SLE)
    values["neutrophils_g_per_l"] = 0.4  # type: ignore[assignment]
    with pytest.raises(TypeError, match="neutrophils_g_per_l"):
        evaluate(SLE, values, BORN, TODAY)


def test_a_yes_no_answer_where_a_number_is_expected_is_refused() -> None:
    values = good_values(SLE)
    values["lvef_percent"] = True
    with pytest.raises(TypeError, match="lvef_percent"):
        evaluate(SLE, values, BORN, TODAY)


def test_an_unknown_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="platelet_count"):
        evaluate(SLE, {**good_values(SLE), "platelet_count": Decimal(100)}, BORN, TODAY)
