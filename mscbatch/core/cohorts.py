"""Where a trial stands in its dose-escalation plan, from the patients already dosed and the decisions taken.

SLE-UC (seed 001, "Analyse statistique"): the first 5 patients receive 2 x10^6 MSC/kg; the next 5 receive
1 x10^6/kg if excessive toxicity (CTCAE) at 2 x10^6/kg is judged likely, else 4 x10^6/kg. That choice is
the investigators' (sequential Bayesian review), so the software never makes it: it says a decision is due,
refuses a dose until it is recorded, and requires the record to cite the toxicity review it rests on.
SSc-BM (Farge 2022): 10 patients at 1 x10^6/kg, then 10 at 3 x10^6/kg, no decision needed. "No decision" does
not mean "no wait": the higher level starts only once the 10 patients of the lower one have been INFUSED, not only
prescribed (await_infusions), so that the lower dose has been seen in patients before the next is given (a phase
I/II dose escalation, seed 003). A stage with a decision waits the same way (check_cohort_infused).
An infusion started is not yet a tolerance observed: with the protocol's `observation_days` (SLE-UC: 10, the
primary endpoint's "durant l'injection et les 10 premiers jours", seed 001), a patient counts towards the next
stage only once their first infusion is that many days old (Observation); the refusal says when that will be.

The plan is the protocol's list of stages (protocols.EscalationStage). Patients are counted in dosing
order; a patient dosed at a level the plan did not call for is reported as off plan, not counted.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from mscbatch.core.protocols import Protocol, format_cells_per_kg


class EscalationError(ValueError):
    """A decision or a prescription that the escalation plan does not allow; the message says why."""


@dataclass(frozen=True)
class EscalationDecision:
    """The investigators' recorded choice of level for a stage with several options."""

    stage_id: str
    chosen_cells_per_kg: Decimal
    toxicity_review: str  # reference of the toxicity (CTCAE) review of the previous cohort relied upon
    decided_by: str
    decided_on: date


@dataclass(frozen=True)
class StageProgress:
    stage_id: str
    level_cells_per_kg: Decimal | None  # None while the stage's decision is not recorded
    dosed: int
    planned: int

    @property
    def complete(self) -> bool:
        return self.dosed >= self.planned


@dataclass(frozen=True)
class CohortState:
    protocol_id: str
    current_stage_id: str | None  # None once every stage is complete
    default_level_cells_per_kg: Decimal | None  # the level the next patient receives; None if undecided or done
    decision_needed: bool
    decision_options_cells_per_kg: tuple[Decimal, ...]
    counts_by_level: dict[Decimal, int]  # every dosed patient, per level (off-plan ones included)
    stages: tuple[StageProgress, ...]
    off_plan: tuple[str, ...]
    complete: bool
    message: str
    # the stage's level is known but the previous stage's patients are not all infused yet: no prescription now
    infusions_awaited: bool = False


@dataclass(frozen=True)
class Observation:
    """The protocol's observation period after a patient's first infusion, and the patients infused but still within
    it: `waiting` holds (level, first infusion start) of each, in order of start. The `infused` state passed with it
    to check_cohort_infused and await_infusions counts only the patients observed for the whole period."""

    days: int = 0
    waiting: tuple[tuple[Decimal, datetime], ...] = ()

    def counted_at(self, started_at: datetime) -> datetime:
        """When a patient whose first infusion started at `started_at` counts towards the next stage."""
        return started_at + timedelta(days=self.days)


def _when(level: Decimal | None, missing: int, observation: Observation | None) -> str:
    """When the `missing` patients still needed at `level` will have been observed, in words ("" without an
    observation period)."""
    if observation is None or observation.days <= 0:
        return ""
    waiting = sorted(observation.counted_at(started) for lvl, started in observation.waiting
                     if level is None or lvl == level)
    if len(waiting) >= missing:
        return (f"; {len(waiting)} more {'is' if len(waiting) == 1 else 'are'} infused and still within the "
                f"{observation.days} days of observation after their first infusion: possible from "
                f"{waiting[missing - 1]:%Y-%m-%d %H:%M} UTC, {observation.days} days after the first infusion of "
                f"the last patient needed")
    more = missing - len(waiting)
    return (f"; {more} more patient(s) must first be infused, then observed for {observation.days} days after their "
            f"first infusion: possible {observation.days} days after the first infusion of the last of them")


def _counted(observation: Observation | None) -> str:
    """What "counted" means in a refusal: infused, or infused and observed for the whole period."""
    if observation is None or observation.days <= 0:
        return "have been infused"
    return f"have been infused and observed for {observation.days} days after their first infusion"


def validate_decision(protocol: Protocol, decision: EscalationDecision) -> None:
    """A decision must name a stage that needs one, choose one of its levels, and cite the toxicity review."""
    stage = next((s for s in protocol.escalation.stages if s.id == decision.stage_id), None)
    if stage is None:
        raise EscalationError(f"{protocol.short_name}: no escalation stage {decision.stage_id!r}")
    if not stage.needs_decision:
        raise EscalationError(f"stage {stage.id!r} has a fixed level: there is nothing to decide")
    if decision.chosen_cells_per_kg not in stage.levels_cells_per_kg:
        options = " or ".join(format_cells_per_kg(level) for level in stage.levels_cells_per_kg)
        raise EscalationError(f"stage {stage.id!r} allows {options}, not {format_cells_per_kg(decision.chosen_cells_per_kg)}")
    if not decision.toxicity_review.strip():
        raise EscalationError("the decision must cite the toxicity review it rests on")
    if not decision.decided_by.strip():
        raise EscalationError("the decision must name the investigator who took it")


def _decided_levels(protocol: Protocol, decisions: Sequence[EscalationDecision]) -> dict[str, Decimal]:
    decided: dict[str, Decimal] = {}
    for decision in decisions:
        validate_decision(protocol, decision)
        if decision.stage_id in decided:
            raise EscalationError(f"stage {decision.stage_id!r} has two recorded decisions")
        decided[decision.stage_id] = decision.chosen_cells_per_kg
    return decided


def escalation_state(protocol: Protocol, dosed_levels_cells_per_kg: Sequence[Decimal],
                     decisions: Sequence[EscalationDecision] = ()) -> CohortState:
    """The plan's state. dosed_levels_cells_per_kg has one entry per patient already dosed, in dosing order."""
    stages = protocol.escalation.stages
    decided = _decided_levels(protocol, decisions)
    levels = [s.levels_cells_per_kg[0] if not s.needs_decision else decided.get(s.id) for s in stages]
    counts = [0] * len(stages)
    off_plan: list[str] = []
    counts_by_level = {level: 0 for level in protocol.dosing.dose_levels_cells_per_kg}
    index = 0
    for number, level in enumerate(dosed_levels_cells_per_kg, start=1):
        counts_by_level[level] = counts_by_level.get(level, 0) + 1
        while index < len(stages) and counts[index] >= stages[index].patients:
            index += 1
        if index == len(stages):
            off_plan.append(f"patient {number} dosed at {format_cells_per_kg(level)} after the plan was complete")
        elif levels[index] is None:
            off_plan.append(f"patient {number} dosed at {format_cells_per_kg(level)} before the decision "
                            f"for stage {stages[index].id!r} was recorded")
        elif level != levels[index]:
            off_plan.append(f"patient {number} dosed at {format_cells_per_kg(level)}; stage {stages[index].id!r} "
                            f"calls for {format_cells_per_kg(levels[index])}")
        else:
            counts[index] += 1
    progress = tuple(StageProgress(s.id, levels[i], counts[i], s.patients) for i, s in enumerate(stages))
    current = next((p for p in progress if not p.complete), None)
    if current is None:
        return CohortState(protocol.id, None, None, False, (), counts_by_level, progress, tuple(off_plan), True,
                           f"all {len(stages)} stages of the {protocol.short_name} escalation plan are complete")
    stage = next(s for s in stages if s.id == current.stage_id)
    if current.level_cells_per_kg is None:
        options = stage.levels_cells_per_kg
        message = (f"decision required before the next patient: stage {stage.id!r}, "
                   f"{' or '.join(format_cells_per_kg(o) for o in options)}. {stage.rule}")
        return CohortState(protocol.id, stage.id, None, True, options, counts_by_level, progress, tuple(off_plan),
                           False, message)
    message = (f"next patient: {format_cells_per_kg(current.level_cells_per_kg)} "
               f"(stage {stage.id!r}, {current.dosed} of {current.planned} dosed)")
    return CohortState(protocol.id, stage.id, current.level_cells_per_kg, False, (), counts_by_level, progress,
                       tuple(off_plan), False, message)


def check_decision_due(state: CohortState, decision: EscalationDecision) -> None:
    """Before recording a decision: it must be the one the plan is waiting for now (not premature, e.g.
    before the fifth SLE patient at 2 x10^6/kg has been dosed, and not a second one)."""
    if not state.decision_needed or state.current_stage_id != decision.stage_id:
        raise EscalationError(f"no decision is due for stage {decision.stage_id!r} now: {state.message}")


def check_cohort_infused(infused: CohortState, decision: EscalationDecision,
                         observation: Observation | None = None) -> None:
    """Before recording a decision: the previous cohort must have been INFUSED, not only prescribed, and observed
    for the protocol's observation period. The decision weighs the toxicity seen during and after the infusions of
    that cohort (SLE-UC seed 001: immediate tolerance during the injection and the 10 following days, CTCAE), which
    cannot exist before they are given and those days have passed. `infused` is the plan's state counted from the
    patients infused and observed (escalation_state of their levels, in order of first infusion); `observation`
    (None: no period) says who is still within it, so the refusal can say when the decision becomes possible."""
    if infused.decision_needed and infused.current_stage_id == decision.stage_id:
        return
    ids = [p.stage_id for p in infused.stages]
    index = ids.index(decision.stage_id) if decision.stage_id in ids else 0
    if index == 0:
        return  # no previous cohort: check_decision_due says what is wrong
    previous = infused.stages[index - 1]
    counted = min(previous.dosed, previous.planned)
    raise EscalationError(f"only {counted} of the {previous.planned} patients of stage {previous.stage_id!r} "
                          f"{_counted(observation)}: the decision for stage {decision.stage_id!r} weighs what was "
                          "observed after their infusions, so it can be recorded only once all of them have been"
                          f"{' infused and observed' if observation and observation.days > 0 else ' infused'}"
                          f"{_when(previous.level_cells_per_kg, previous.planned - counted, observation)}")


def await_infusions(state: CohortState, infused: CohortState, observation: Observation | None = None) -> CohortState:
    """The plan's state (counted from prescriptions) held until the previous stage's patients have been infused
    (and observed for the protocol's observation period: `infused` then counts only those, `observation` says who
    is still within it).

    A stage with a fixed level (SSc-BM: 10 patients at 3 x10^6/kg after 10 at 1 x10^6/kg) used to start as soon as
    the previous 10 prescriptions were signed, before anyone could have been seen after an infusion. Its first
    patient now waits until every patient of the previous stage has been infused; the previous stage's own
    patients are not held (its level is prescribed freely up to its size). A stage with a decision is held by its
    decision (check_cohort_infused), and after it the same way. `infused` is the plan counted from infusions
    (escalation_state of the levels infused, in infusion order); a cancelled prescription is in neither count, so
    its place is free again."""
    if state.complete or state.decision_needed or state.current_stage_id is None:
        return state
    index = [p.stage_id for p in state.stages].index(state.current_stage_id)
    if index == 0:
        return state
    previous = infused.stages[index - 1]
    if previous.complete:
        return state
    stage, before = state.stages[index], state.stages[index - 1]
    assert stage.level_cells_per_kg is not None and before.level_cells_per_kg is not None
    level, earlier = format_cells_per_kg(stage.level_cells_per_kg), format_cells_per_kg(before.level_cells_per_kg)
    counted = min(previous.dosed, previous.planned)
    observed = observation is not None and observation.days > 0
    message = (f"wait for the infusions at {earlier}: {counted} of the {previous.planned} patients of stage "
               f"{previous.stage_id!r} {_counted(observation)} so far. The next patient (stage {stage.stage_id!r}, "
               f"{level}) can be prescribed once all {previous.planned} have been "
               f"{'infused and observed' if observed else 'infused'}, so that how each of them tolerated {earlier} "
               f"is known first{_when(before.level_cells_per_kg, previous.planned - counted, observation)}")
    return replace(state, message=message, infusions_awaited=True)


def check_prescription(state: CohortState, cells_per_kg: Decimal) -> None:
    """A prescribed dose level must be the plan's level for the next patient, and that patient's stage must not be
    waiting for the previous stage's infusions (await_infusions)."""
    if state.complete:
        raise EscalationError(state.message)
    if state.decision_needed or state.infusions_awaited:
        raise EscalationError(state.message)
    if cells_per_kg != state.default_level_cells_per_kg:
        assert state.default_level_cells_per_kg is not None
        raise EscalationError(f"the plan calls for {format_cells_per_kg(state.default_level_cells_per_kg)}, "
                              f"not {format_cells_per_kg(cells_per_kg)} ({state.message})")
