"""Lot and bag state tables: every allowed move, refused moves, role refusals, effective bag status."""
from __future__ import annotations

import pytest

from mscbatch.core.states import (
    BAG,
    BAG_TRANSITIONS,
    LOT,
    LOT_TRANSITIONS,
    StateMachine,
    TransitionRefused,
    effective_bag_status,
    state_words,
)

LOT_ALLOWED = [
    ("in_process", "quarantine", "technician"),
    ("in_process", "rejected", "qa"),
    ("quarantine", "released", "qa"),
    ("quarantine", "conditional_release", "qa"),
    ("quarantine", "rejected", "qa"),
    ("conditional_release", "released", "qa"),
    ("conditional_release", "recalled", "qa"),
    ("released", "expired", "system"),
    ("released", "expired", "qa"),
    ("released", "recalled", "qa"),
]


def _all_moves(table) -> set[tuple[str, str, str]]:
    return {(s, t, r) for s, targets in table.items() for t, roles in targets.items() for r in roles}


def test_the_lot_table_is_exactly_the_listed_moves() -> None:
    assert _all_moves(LOT_TRANSITIONS) == set(LOT_ALLOWED)


@pytest.mark.parametrize(("current", "target", "role"), LOT_ALLOWED)
def test_every_allowed_lot_move_passes(current: str, target: str, role: str) -> None:
    LOT.check(current, target, {role}, subject="Lot MSC-2025-0001")


@pytest.mark.parametrize(("current", "target"), [
    ("quarantine", "expired"), ("in_process", "released"), ("released", "quarantine"),
    ("released", "rejected"), ("conditional_release", "quarantine"), ("quarantine", "recalled"),
    ("conditional_release", "rejected"),  # bags may be out: a conditionally released lot is recalled instead
])
def test_out_of_order_lot_moves_are_refused(current: str, target: str) -> None:
    with pytest.raises(TransitionRefused) as caught:
        LOT.check(current, target, {"qa", "technician", "system"}, subject="Lot L")
    assert caught.value.kind == "sequence"
    assert str(caught.value) == f"Lot L is {state_words(current)}; it cannot go to {target.replace('_', ' ')}"
    assert " in in " not in str(caught.value) and " is in released" not in str(caught.value)


@pytest.mark.parametrize("final", ["rejected", "expired", "recalled"])
def test_a_lot_in_a_final_state_goes_nowhere(final: str) -> None:
    with pytest.raises(TransitionRefused, match=f"Lot L is {final}, a final state"):
        LOT.check(final, "released", {"qa"}, subject="Lot L")


def test_only_qa_may_release_a_lot() -> None:
    with pytest.raises(TransitionRefused) as caught:
        LOT.check("quarantine", "released", {"technician"}, subject="Lot L")
    assert caught.value.kind == "authority"
    assert str(caught.value) == "only qa may release Lot L (your roles: technician)"


@pytest.mark.parametrize(("current", "target", "role"), [
    ("quarantine", "rejected", "technician"), ("released", "recalled", "technician"),
    ("in_process", "quarantine", "qa"), ("released", "expired", "technician"),
    ("quarantine", "conditional_release", "admin"), ("quarantine", "released", "clinician"),
])
def test_roles_not_in_the_table_are_refused(current: str, target: str, role: str) -> None:
    with pytest.raises(TransitionRefused, match=f"your roles: {role}"):
        LOT.check(current, target, {role})


def test_a_single_role_may_be_given_as_a_string() -> None:
    LOT.check("quarantine", "released", "qa")
    with pytest.raises(TransitionRefused, match="only qa may release"):
        LOT.check("quarantine", "released", "aq")


def test_an_unknown_state_is_refused_plainly() -> None:
    with pytest.raises(TransitionRefused, match="'shipped' is not a lot state"):
        LOT.check("released", "shipped", {"qa"})


def test_allowed_targets_lists_only_the_moves_of_the_roles_held() -> None:
    assert LOT.allowed_targets("quarantine", {"qa"}) == ("released", "conditional_release", "rejected")
    assert LOT.allowed_targets("quarantine", {"technician"}) == ()


def test_a_table_pointing_to_an_unknown_state_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="b is not a state"):
        StateMachine("demo", {"a": {"b": frozenset({"qa"})}})


@pytest.mark.parametrize(("current", "target", "role"), sorted(_all_moves(BAG_TRANSITIONS)))
def test_every_allowed_bag_move_passes(current: str, target: str, role: str) -> None:
    BAG.check(current, target, {role}, subject="Bag X999925000001 A0")


@pytest.mark.parametrize(("current", "target"), [
    ("stored", "infused"), ("stored", "thawed"), ("thawed", "stored"), ("infused", "discarded"),
    ("dispatched", "thawed"), ("discarded", "stored"),
])
def test_out_of_order_bag_moves_are_refused(current: str, target: str) -> None:
    with pytest.raises(TransitionRefused):
        BAG.check(current, target, {"qa", "technician", "nurse", "system"})


def test_only_a_nurse_records_an_infusion() -> None:
    with pytest.raises(TransitionRefused, match="only nurse may record the infusion of Bag B"):
        BAG.check("thawed", "infused", {"technician", "qa"}, subject="Bag B")


def test_a_released_lots_stored_bag_is_usable() -> None:
    status = effective_bag_status("released", "stored")
    assert status.usable and status.status == "stored" and not status.conditional


def test_a_conditionally_released_lots_bag_is_usable_but_flagged() -> None:
    status = effective_bag_status("conditional_release", "received")
    assert status.usable and status.conditional


@pytest.mark.parametrize("lot_state", ["rejected", "recalled", "expired"])
@pytest.mark.parametrize("bag_state", ["stored", "allocated", "dispatched", "received", "thawed", "returned", "on_hold"])
def test_a_bag_of_a_rejected_recalled_or_expired_lot_is_never_usable(lot_state: str, bag_state: str) -> None:
    status = effective_bag_status(lot_state, bag_state)
    assert not status.usable and status.status == lot_state


@pytest.mark.parametrize("lot_state", ["in_process", "quarantine"])
def test_a_bag_of_an_unreleased_lot_is_in_quarantine(lot_state: str) -> None:
    status = effective_bag_status(lot_state, "stored")
    assert not status.usable and status.status == "quarantine"


def test_a_hold_flag_blocks_a_bag_already_on_the_ward() -> None:
    status = effective_bag_status("released", "received", on_hold=True)
    assert not status.usable and status.status == "on_hold"


def test_an_infused_bag_stays_infused_even_if_its_lot_is_recalled() -> None:
    status = effective_bag_status("recalled", "infused")
    assert status.status == "infused" and not status.usable


def test_a_returned_bag_waits_for_qa() -> None:
    assert not effective_bag_status("released", "returned").usable
