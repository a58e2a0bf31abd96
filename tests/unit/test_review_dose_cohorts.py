"""The escalation decision waits for the previous cohort's infusions, not only its prescriptions (safety review)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from mscbatch.core.cohorts import EscalationDecision, EscalationError, check_cohort_infused, escalation_state
from mscbatch.core.protocols import load_protocols

TWO = Decimal("2E+6")


def _sle():  # type: ignore[no-untyped-def]
    return next(p for p in load_protocols().values() if p.short_name == "SLE-UC")


def _decision() -> EscalationDecision:
    return EscalationDecision("adapted", Decimal("4E+6"), "CTCAE review of patients 1-5", "dr", date(2026, 1, 1))


def test_a_decision_is_refused_while_the_first_cohort_is_prescribed_but_not_all_infused():
    infused = escalation_state(_sle(), [TWO] * 3)
    with pytest.raises(EscalationError, match=r"only 3 of the 5 patients of stage 'initial' have been infused"):
        check_cohort_infused(infused, _decision())


def test_a_decision_is_allowed_once_the_five_patients_of_the_first_cohort_are_infused():
    check_cohort_infused(escalation_state(_sle(), [TWO] * 5), _decision())
