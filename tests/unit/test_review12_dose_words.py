"""Review 12 (DOMAIN.md section 6, dose): a newer weight's refusal never writes the dose per kg ON the band it breaks.

Defect fixed: core.dosing.dose_at_new_weight (the bedside's WEIGHT CHANGED stop, the patient page's weight change)
rounded the dose per kg half-even to 0.01 x10^6/kg. A course of whole bags reaching just the band's lower limit
(fewest bags first: 2 bags of 56.3 x10^6 for 62.5 kg = 1.8016 x10^6/kg) met a weight of 62.6 kg measured the next
day: 1.7987 x10^6/kg, outside the band, so STOP, but worded "the bags would give 1.8 x10^6/kg instead of 2 x10^6/kg
(allowed: +/- 10 %)", 1.8 being exactly -10 %, allowed. The figure is now rounded away from the band when the usual
rounding would put it on the band, as the DMSO per kg of a refusal is (review 7)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from mscbatch.core.dosing import DoseRefused, dose_at_new_weight
from tests.unit.test_dosing import M, _signed, bag, dose


def test_a_dose_just_below_the_band_is_not_written_at_its_lower_limit() -> None:
    allocation = dose([bag("A", "56.3"), bag("B", "56.3")])  # 62.5 kg at 2 x10^6/kg: band 112.5-137.5 x10^6
    assert allocation.delivered_cells == Decimal("112.6") * M and not any(d.partial for d in allocation.draws)
    calculation = _signed(allocation)
    assert dose_at_new_weight(calculation, Decimal("62.5")) == []
    # 112.6 / 62.6 = 1.7987 x10^6/kg: below 1.8, refused; "1.8" would read as the allowed -10 %
    assert dose_at_new_weight(calculation, Decimal("62.6")) == [
        "the bags would give 1.79 x10^6/kg instead of 2 x10^6/kg (allowed: +/- 10 %)"]


def test_a_dose_just_above_the_band_is_not_written_at_its_upper_limit() -> None:
    calculation = _signed(dose([bag("A", 50), bag("B", 50), bag("C", 50)]))  # 125 x10^6 for 62.5 kg
    assert dose_at_new_weight(calculation, Decimal("56.82")) == []  # 2.19993 x10^6/kg: inside +10 %
    # 125 / 56.81 = 2.20032 x10^6/kg: above 2.2, refused; "2.2" would read as the allowed +10 %
    assert dose_at_new_weight(calculation, Decimal("56.81")) == [
        "the bags would give 2.21 x10^6/kg instead of 2 x10^6/kg (allowed: +/- 10 %)"]


def test_a_dose_well_outside_the_band_keeps_its_usual_rounding() -> None:
    calculation = _signed(dose([bag("A", 50), bag("B", 50), bag("C", 50)]))
    assert dose_at_new_weight(calculation, Decimal("55")) == [
        "the bags would give 2.27 x10^6/kg instead of 2 x10^6/kg (allowed: +/- 10 %)"]  # 2.2727: the README's words
    assert dose_at_new_weight(calculation, Decimal("80")) == [
        "the bags would give 1.56 x10^6/kg instead of 2 x10^6/kg (allowed: +/- 10 %)"]  # 1.5625, half-even


# ---- endotoxin (K/M) when one bag of the dose has no endotoxin result ------------------------------------------------
# Defect fixed: core.dosing.calculate_dose skipped the K/M check altogether as soon as one chosen bag had no endotoxin
# result (its load None), even when the bags that have one already carried more than K x weight x time.

def test_a_bag_without_an_endotoxin_result_does_not_hide_the_others_load() -> None:
    # 62.5 kg at 2 x10^6/kg: limit 5 EU/kg/h x 62.5 kg x 1 h = 312.5 EU. Bag A (100 x10^6 in 10 mL) at 40 EU/mL
    # (an out-of-specification batch released as an exception for this patient) carries 400 EU by itself.
    high = bag("A", 100, 10, endotoxin_eu_per_ml=Decimal(40), exceptional_for="P1", days=1)
    unknown = bag("B", 100, 10, days=2)  # no endotoxin result on its lot
    with pytest.raises(DoseRefused) as info:
        dose([high, unknown])
    assert info.value.code == "endotoxin_limit", info.value.reason
    assert "at least 400 EU" in info.value.reason and "312.5 EU" in info.value.reason, info.value.reason
    assert "1 bag(s) without an endotoxin result not counted" in info.value.reason, info.value.reason


def test_a_dose_with_a_bag_without_a_result_below_the_limit_still_reads_no_result() -> None:
    low = bag("A", 100, 10, endotoxin_eu_per_ml=Decimal("0.5"), days=1)  # 5 EU
    allocation = dose([low, bag("B", 100, 10, days=2)])
    assert allocation.endotoxin_eu is None  # the load is unknown: the dose page and sheet say "no result"
    with_result = dose([low, bag("B", 100, 10, endotoxin_eu_per_ml=Decimal("0.5"), days=2)])
    assert with_result.endotoxin_eu == Decimal("6.25")  # 10 mL + 2.5 mL at 0.5 EU/mL
