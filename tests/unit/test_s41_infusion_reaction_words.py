"""S41: the words of a running infusion with a reaction of grade 3 or higher (custody.ward_words, pure) and of its
confirmation (custody.infusion_views.reaction_recorded_words)."""
from __future__ import annotations

import pytest

from mscbatch.custody.infusion_views import reaction_recorded_words
from mscbatch.custody.ward_words import REACTION_STOP, reaction_flag, reaction_stop_words


@pytest.mark.parametrize("grade", [3, 4])
def test_s41_a_serious_reaction_says_stop_the_infusion(grade: int) -> None:
    assert reaction_flag(grade) == f"Grade {grade} reaction: stop the infusion"
    assert "interrupting the infusion" in reaction_stop_words(grade)[0]
    said = reaction_recorded_words(grade, by_clinician=False, running=True)
    assert said.startswith(f"Reaction recorded. {REACTION_STOP}.") and "serious adverse event" in said
    assert "must be ended" not in said


def test_s41_grade_5_says_the_infusion_must_be_ended() -> None:
    assert reaction_flag(5) == "Grade 5 reaction (death): end the infusion"
    assert "The infusion must be ended" in reaction_stop_words(5)[0]
    assert "It must be ended: record the volume given (End infusion)." in reaction_recorded_words(5, True, True)


def test_s41_an_ended_infusion_or_a_mild_reaction_says_no_stop() -> None:
    assert REACTION_STOP not in reaction_recorded_words(4, by_clinician=False, running=False)
    assert reaction_recorded_words(2, by_clinician=False, running=True) == "Reaction recorded. Tell the clinician."
    assert reaction_recorded_words(1, by_clinician=True) == "Reaction recorded."
