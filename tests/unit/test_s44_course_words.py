"""A course's state in words, one rule for the patient page's list and the patient's trace PDF (session 44: the PDF
said "#3 active" for a course the page calls "COMPLETED: every bag given", and then wrote "(closed)" by its own rule)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from mscbatch.patients.course import COMPLETED_WORDS, CourseSummary


@pytest.mark.parametrize(("completed", "status", "words"), [
    (True, "active", COMPLETED_WORDS),
    (True, "stopped", COMPLETED_WORDS + " (closed)"),
    (False, "stopped", "stopped"),
    (False, "active", "active"),
    (True, "cancelled", "cancelled"),
])
def test_a_courses_state_and_its_closing_are_said_by_one_rule(completed: bool, status: str, words: str) -> None:
    course = CourseSummary(cells=Decimal(0), running=0, completed=completed, status=status)
    assert course.state_words + course.closed_words == words
