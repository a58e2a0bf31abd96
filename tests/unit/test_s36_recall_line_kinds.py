"""The recall report decided from its own words: the PDF's action (paper_action compared the line's words with the
page's in-stock action), the counts of bags on hold and holds kept (hold_words == "ON HOLD", endswith("(hold kept)"))
and "destroyed or infused" (hold_words == "infused (hold kept)"). A rewording of one sentence would have changed a
count or the paper. Each line carries its kinds now (hold_kind, action_kind), set where the line is built; the
report decides from them and the words are only shown."""
from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from mscbatch.recall.report import (
    IN_STOCK_ACTION,
    IN_STOCK_ON_PAPER,
    BagLine,
    RecallReport,
    _action,
    hold_kind,
    paper_action,
)

HELD = SimpleNamespace(lifted_at=None)
LIFTED = SimpleNamespace(lifted_at=datetime(2026, 12, 5, 20, 54, tzinfo=UTC))


def _line(status: str, hold: Any, action_kind: str = "in_stock", action: str = IN_STOCK_ACTION) -> BagLine:
    bag = SimpleNamespace(status=status)
    return BagLine(trace=SimpleNamespace(bag=bag), lot=None, hold=hold,  # type: ignore[arg-type]
                   hold_kind=hold_kind(bag, hold), action_kind=action_kind, action=action)  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "hold", "kind", "words"), [
    ("stored", None, "none", "—"), ("stored", HELD, "on_hold", "ON HOLD"), ("dispatched", HELD, "on_hold", "ON HOLD"),
    ("discarded", HELD, "kept_destroyed", "destroyed (hold kept)"),
    ("infused", HELD, "kept_infused", "infused (hold kept)"), ("stored", LIFTED, "lifted", "lifted")])
def test_the_hold_kind_is_set_from_the_bag_and_its_hold_and_the_column_shows_it(status, hold, kind, words) -> None:  # type: ignore[no-untyped-def]
    line = _line(status, hold)
    assert line.hold_kind == kind and line.hold_words == words


def test_the_paper_action_follows_the_kind_not_the_words() -> None:
    assert paper_action(_line("stored", HELD)) == IN_STOCK_ON_PAPER
    reworded = _line("stored", HELD, action="ON HOLD in stock: do not issue (reworded)")
    assert paper_action(reworded) == IN_STOCK_ON_PAPER  # still in stock: the page's button is not on paper
    reserved = _line("allocated", HELD, action_kind="reserved", action=IN_STOCK_ACTION)
    assert paper_action(reserved) == IN_STOCK_ACTION  # another kind is printed as the page says it


def test_action_kinds_are_set_with_their_words() -> None:
    stored = SimpleNamespace(bag=SimpleNamespace(status="stored"), current_recipient=None)
    assert _action(stored, HELD, None) == ("in_stock", IN_STOCK_ACTION)  # type: ignore[arg-type]
    assert _action(stored, None, None)[0] == "not_held"  # type: ignore[arg-type]
    assert _action(SimpleNamespace(bag=SimpleNamespace(status="discarded"), current_recipient=None),
                   None, None) == ("discarded_before", "Discarded before the recall: no action")  # type: ignore[arg-type]
    ward = SimpleNamespace(bag=SimpleNamespace(status="thawed"), current_recipient=None)
    assert _action(ward, HELD, None)[0] == "on_the_ward"  # type: ignore[arg-type]


def _report(lines: list[BagLine], status: str = "active") -> RecallReport:
    now, final = sum(1 for ln in lines if ln.hold_kind == "on_hold"), sum(1 for ln in lines if ln.hold_kind in (
        "kept_destroyed", "kept_infused"))
    return RecallReport(recall=SimpleNamespace(status=status), target="", started_by="", ended_by=None,  # type: ignore[arg-type]
                        signatures=[], lots=[], lines=lines, notify=[], held_now=now, held_final=final,
                        generated_at=datetime(2026, 12, 5, tzinfo=UTC), reconciliation=None,  # type: ignore[arg-type]
                        outstanding=[])


def test_destroyed_or_infused_is_decided_from_the_kind() -> None:
    destroyed = _report([_line("stored", HELD), _line("discarded", HELD)])
    assert "1 held bag destroyed since" in destroyed.held_detail()
    given = _report([_line("stored", HELD), _line("infused", HELD)])
    assert "1 held bag destroyed or infused since" in given.held_detail()
    assert _report([_line("infused", HELD)], "completed").kept_detail() == " (destroyed or infused)"
    assert _report([_line("discarded", HELD), _line("discarded", HELD)], "completed").kept_detail() == " (all destroyed)"
