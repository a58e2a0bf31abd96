"""S41: the pure judgement of what is happening to the patient now: another bag still running, a severe reaction
recorded since the bag's prescription was signed (custody.checks.judge, no database)."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from mscbatch.custody.checks import RunningBag, SevereReaction, judge
from mscbatch.site import local_and_utc
from tests.unit.test_bedside_judge import NOW, PATIENT, _facts, codes


def test_another_bag_running_is_a_stop_naming_it_with_its_k_and_its_start() -> None:
    started = NOW - timedelta(minutes=20)
    result = judge("WB-11", PATIENT, _facts(running_others=(RunningBag("W0000 26 000122 7", started, True),)),
                   None, NOW)
    assert codes(result) == ["other_running"] and result.give_ml is None and result.notes == []
    assert result.failures[0].message == (f"Another bag (W0000 26 000122 7) is STILL RUNNING for this patient (started "
                                          f"{local_and_utc(started)}): end that infusion before starting another "
                                          "bag.")


def test_two_bags_running_are_both_named() -> None:
    running = (RunningBag("W0000 26 000122 7", NOW - timedelta(hours=1), True),
               RunningBag("W0000 26 000130 X", NOW - timedelta(minutes=5), False))
    message = judge("WB-11", PATIENT, _facts(running_others=running), None, NOW).failures[0].message
    assert message.startswith("Other bags are STILL RUNNING for this patient: W0000 26 000122 7 (started ")
    assert "W0000 26 000130 X (started" in message and message.endswith("before starting another bag.")


def test_a_severe_reaction_is_a_stop_for_the_prescriber_with_its_grade_and_what_happened() -> None:
    onset = NOW - timedelta(hours=2)
    severe = SevereReaction(4, "Anaphylaxis", "stridor\nBP 70/40", "W0000 26 000122 7", onset)
    result = judge("WB-11", PATIENT, _facts(severe_reaction=severe), None, NOW)
    assert codes(result) == ["severe_reaction"]
    assert result.failures[0].message == (
        "A grade 4 (life-threatening) reaction (Anaphylaxis: stridor BP 70/40) was recorded during this patient's "
        f"infusion of bag W0000 26 000122 7, beginning at {local_and_utc(onset)}: do not start another bag. The "
        "prescriber decides: call them.")
    long = replace(severe, grade=3, description="x" * 500)
    message = judge("WB-11", PATIENT, _facts(severe_reaction=long), None, NOW).failures[0].message
    assert "grade 3 (severe)" in message and "x" * 159 + "…)" in message and "x" * 160 not in message


def test_both_come_after_what_makes_the_bag_itself_unfit() -> None:
    """Session 45: the ward list shows the first reason alone, and "call the prescriber" read over a bag that may
    never be given (on hold, past its post-thaw limit...) sent the nurse to the phone for a bag to put aside."""
    facts = _facts(running_others=(RunningBag("W0000 26 000122 7", NOW, True),), hold="on hold by recall R-4",
                   severe_reaction=SevereReaction(3, "Hypotension", "", "W0000 26 000122 7", NOW))
    assert codes(judge("WB-11", PATIENT, facts, None, NOW)) == ["on_hold", "other_running", "severe_reaction"]
    assert "(Hypotension)" in judge("WB-11", PATIENT, facts, None, NOW).failures[2].message
