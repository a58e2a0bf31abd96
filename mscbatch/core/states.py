"""State machines for lots and bags, written as tables and checked in one place.

EU GMP Annex 11 section 5 and 21 CFR 11.10(f)/(g) ask for operational sequence checks (a step only in its
proper order) and authority checks (only the right people); a table per machine does both: state -> {allowed
next state: roles that may make that move}. Anything not in the table is refused with a plain sentence.

Segregation of duties that depends on WHO recorded the lot (QA may not release a lot whose manufacture they
recorded, EU GMP ch. 2) needs the record's history; the service checks it, not this table.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Table = Mapping[str, Mapping[str, frozenset[str]]]

TECHNICIAN, QA, NURSE, CLINICIAN, SYSTEM = "technician", "qa", "nurse", "clinician", "system"


class TransitionRefused(Exception):
    """A state change that the table does not allow. `kind` is "sequence" (wrong order) or "authority"."""

    def __init__(self, message: str, *, machine: str, current: str, target: str, kind: str):
        super().__init__(message)
        self.machine, self.current, self.target, self.kind = machine, current, target, kind


def _role_set(roles: Iterable[str]) -> set[str]:
    """A single role passed as a string means that role, not its letters."""
    return {roles} if isinstance(roles, str) else set(roles)


def _label(state: str) -> str:
    return state.replace("_", " ")


#: a state after "is" ("Lot L is in quarantine", "is conditionally released"); the others read as their name
_IS_WORDS = {"in_process": "in process", "quarantine": "in quarantine", "conditional_release": "conditionally released"}


def state_words(state: str) -> str:
    """A state as said after "is": "in process", "in quarantine", "released", "on hold"."""
    return _IS_WORDS.get(state, _label(state))


class StateMachine:
    """A named transition table with the verbs used in refusal messages ("only qa may release Lot L")."""

    def __init__(self, name: str, transitions: Table, verbs: Mapping[str, str] | None = None):
        self.name = name
        self.transitions: dict[str, dict[str, frozenset[str]]] = {
            state: {target: frozenset(roles) for target, roles in targets.items()}
            for state, targets in transitions.items()}
        self.verbs = dict(verbs or {})
        for state, targets in self.transitions.items():
            for target, roles in targets.items():
                if target not in self.transitions:
                    raise ValueError(f"{name}: {state} -> {target}: {target} is not a state of the table")
                if not roles:
                    raise ValueError(f"{name}: {state} -> {target}: nobody may make this move; remove it")

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(self.transitions)

    def is_terminal(self, state: str) -> bool:
        self._known(state, "")
        return not self.transitions[state]

    def allowed_targets(self, current: str, roles: Iterable[str]) -> tuple[str, ...]:
        """The next states these roles may choose from (for showing only the buttons a user may press)."""
        self._known(current, "")
        held = _role_set(roles)
        return tuple(target for target, allowed in self.transitions[current].items() if allowed & held)

    def roles_for(self, target: str, current: str | None = None) -> frozenset[str]:
        """Who may move to `target`: from `current` when the table has that move, else from any state (the roles
        that may ever make it). For showing an action only to those who may do it, and for refusing anyone else
        (403) before the subject's own state is judged."""
        self._known(target, "")
        if current is not None and target in self.transitions.get(current, {}):
            return self.transitions[current][target]
        return frozenset().union(*(targets[target] for targets in self.transitions.values() if target in targets))

    def check_authority(self, current: str, target: str, roles: Iterable[str], subject: str | None = None) -> None:
        """Raise TransitionRefused (kind "authority") unless `roles` may make this move (roles_for), whatever the
        order: a role that may never make it is told so first, not what the subject's state would need."""
        allowed, held = self.roles_for(target, current), _role_set(roles)
        if allowed & held:
            return
        subject = subject or f"this {self.name}"
        action = f"{self.verbs[target]} {subject}" if target in self.verbs else f"move {subject} to {_label(target)}"
        message = f"only {' or '.join(sorted(allowed))} may {action} (your roles: {', '.join(sorted(held)) or 'none'})"
        raise TransitionRefused(message, machine=self.name, current=current, target=target, kind="authority")

    def check(self, current: str, target: str, roles: Iterable[str], subject: str | None = None) -> None:
        """Raise TransitionRefused unless `roles` may move `subject` from `current` to `target`."""
        subject = subject or f"this {self.name}"
        self._known(current, subject)
        self._known(target, subject)
        targets = self.transitions[current]
        if target not in targets:
            if current == target:
                message = f"{subject} is already {state_words(current)}"
            elif not targets:
                message = f"{subject} is {state_words(current)}, a final state; it cannot go to {_label(target)}"
            else:
                message = f"{subject} is {state_words(current)}; it cannot go to {_label(target)}"
            raise TransitionRefused(message, machine=self.name, current=current, target=target, kind="sequence")
        allowed = targets[target]
        held = _role_set(roles)
        if not allowed & held:
            who = " or ".join(sorted(allowed))
            action = (f"{self.verbs[target]} {subject}" if target in self.verbs
                      else f"move {subject} to {_label(target)}")
            yours = ", ".join(sorted(held)) or "none"
            message = f"only {who} may {action} (your roles: {yours})"
            raise TransitionRefused(message, machine=self.name, current=current, target=target, kind="authority")

    def _known(self, state: str, subject: str) -> None:
        if state not in self.transitions:
            where = f"{subject}: " if subject else ""
            raise TransitionRefused(
                f"{where}{state!r} is not a {self.name} state (known: {', '.join(self.transitions)})",
                machine=self.name, current=state, target=state, kind="sequence")


def _roles(*names: str) -> frozenset[str]:
    return frozenset(names)


# Lot disposition (DOMAIN.md section 4; EU GMP Part IV section 11 for conditional release).
# in_process -> rejected is our addition: a lot that fails during culture (contamination, passage limit) must
# be dispositioned by QA without first pretending to enter quarantine.
LOT_TRANSITIONS: Table = {
    "in_process":          {"quarantine": _roles(TECHNICIAN), "rejected": _roles(QA)},
    "quarantine":          {"released": _roles(QA), "conditional_release": _roles(QA), "rejected": _roles(QA)},
    "conditional_release": {"released": _roles(QA), "recalled": _roles(QA)},  # bags may be out: recall, not reject
    "released":            {"expired": _roles(SYSTEM, QA), "recalled": _roles(QA)},
    "rejected":            {},
    "expired":             {},
    "recalled":            {},
}

LOT_VERBS = {
    "quarantine": "send to quarantine", "released": "release", "conditional_release": "conditionally release",
    "rejected": "reject", "recalled": "recall", "expired": "mark as expired",
}

LOT = StateMachine("lot", LOT_TRANSITIONS, LOT_VERBS)

# Bag chain of custody (DOMAIN.md section 8). A clinician's signed prescription allocates bags to a patient and
# cancelling it puts them back into stock (issue 6: mscbatch.patients.prescriptions). "stored" = in the tank and available. on_hold as a STATE is a
# bag held inside the unit (stored / allocated / returned); a hold on a bag already outside the unit
# (dispatched, on the ward, thawed) is the on_hold FLAG given to effective_bag_status, which keeps the bag's
# custody state true to where it physically is.
BAG_TRANSITIONS: Table = {
    "stored":     {"allocated": _roles(TECHNICIAN, QA, CLINICIAN), "on_hold": _roles(QA, SYSTEM), "discarded": _roles(QA)},
    "allocated":  {"dispatched": _roles(TECHNICIAN), "stored": _roles(TECHNICIAN, QA, CLINICIAN),
                   "on_hold": _roles(QA, SYSTEM)},
    "dispatched": {"received": _roles(NURSE), "returned": _roles(NURSE, TECHNICIAN)},
    "received":   {"thawed": _roles(NURSE, TECHNICIAN), "returned": _roles(NURSE, TECHNICIAN),
                   "discarded": _roles(NURSE, QA)},  # broken in the shipper or on the ward: wasted there
    "thawed":     {"infused": _roles(NURSE), "discarded": _roles(NURSE, QA)},
    "returned":   {"stored": _roles(QA), "on_hold": _roles(QA, SYSTEM), "discarded": _roles(QA)},
    "on_hold":    {"stored": _roles(QA), "discarded": _roles(QA)},
    "infused":    {},
    "discarded":  {},
}

BAG_VERBS = {
    "stored": "put back into stock", "allocated": "allocate", "dispatched": "dispatch", "received": "receive",
    "thawed": "thaw", "infused": "record the infusion of", "returned": "return", "on_hold": "put on hold",
    "discarded": "discard",
}

BAG = StateMachine("bag", BAG_TRANSITIONS, BAG_VERBS)

_LOT_BLOCKS = {
    "rejected": "its lot was rejected",
    "recalled": "its lot was recalled",
    "expired": "its lot has expired",
    "in_process": "its lot is not released (still in process)",
    "quarantine": "its lot is not released (in quarantine)",
}


@dataclass(frozen=True)
class BagStatus:
    """What a bag effectively is, given its lot: `usable` means it may still go on towards a patient."""

    status: str
    usable: bool
    reason: str
    conditional: bool = False


def effective_bag_status(lot_state: str, bag_state: str, on_hold: bool = False, placed: bool = True) -> BagStatus:
    """Combine the lot's state, the bag's custody state and a hold flag, strongest rule first.

    Order: a bag already infused or discarded stays so (a physical fact); then the lot (a bag of a rejected,
    recalled, expired or unreleased lot is not usable whatever its own state: bedside hard stop, DOMAIN.md
    section 8); then a hold; then the bag's own state. A conditionally released lot's bags are usable but
    flagged: a late OOS means notifying the clinician of every patient who received one (EU GMP Part IV 11).
    `placed`: False for a bag frozen but never put in a box position; "stored" then means "not in stock yet".
    """
    LOT._known(lot_state, "lot")
    BAG._known(bag_state, "bag")
    if bag_state == "infused":
        return BagStatus("infused", False, "already infused")
    if bag_state == "discarded":
        return BagStatus("discarded", False, "discarded")
    if lot_state in _LOT_BLOCKS:
        status = "quarantine" if lot_state in ("in_process", "quarantine") else lot_state
        return BagStatus(status, False, _LOT_BLOCKS[lot_state])
    if on_hold or bag_state == "on_hold":
        return BagStatus("on_hold", False, "the bag is on hold")
    if bag_state == "returned":
        return BagStatus("returned", False, "returned; QA must assess it before it is used or restocked")
    if bag_state == "stored" and not placed:
        return BagStatus("not_in_storage", False, "frozen but not placed in a storage box yet: it cannot be "
                         "allocated until it is")
    conditional = lot_state == "conditional_release"
    reason = "lot conditionally released (a test is pending)" if conditional else "lot released"
    return BagStatus(bag_state, True, reason, conditional=conditional)
