"""Reading release data: who took part in a lot, its current release state (for bags, labels and issue 6),
the QA review page and the QA dashboard."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, String, and_, func, literal, or_, select, union_all
from sqlalchemy.orm import Session, aliased

from mscbatch.audit.models import AuditEvent
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag, Deviation, Lot, ProcessStep, ReagentUse, StorageMove
from mscbatch.recall.models import Recall
from mscbatch.recall.queries import IN_FORCE, OpenLookback, open_lookbacks, recalls_covering
from mscbatch.release.models import (
    ASSESSED_BEFORE_RELEASE,
    OOS_OPEN,
    DeviationAssessment,
    LotDisposition,
    OosInvestigation,
    ReleaseResult,
    ResultAttachment,
)

EXPIRY_WARNING_DAYS = 30
ENDOTOXIN_TEST_ID = "endotoxin"
ENDOTOXIN_UNIT = "EU/mL"
RELEASED_KINDS = ("release", "conditional_release", "completion", "exceptional_release")


NOT_MANUFACTURE_FIELDS = ("status", "status_changed_at", "status_changed_by_id", "locked_at")
# what QA's own OOS decision writes on a result (release.oos.invalidate_oos): not entering or correcting it
QA_RESULT_FIELDS = ("invalidated_at", "invalidated_reason")


def involvement(session: Session, lot: Lot, user_id: int) -> tuple[bool, bool]:
    """(entered or corrected any result of the lot, recorded any of its manufacture): segregation of duties,
    EU GMP ch. 2. Manufacture = the lot itself, its steps, deviations, reagent uses, bags and storage moves:
    whoever the rows name as author, or the audit trail as having inserted or changed one of them (a correction
    of a passage or of a reagent use is manufacture too; bags carry no author column). Four queries at most: it is
    read on every release page."""
    results = list(session.scalars(select(ReleaseResult).where(ReleaseResult.lot_id == lot.id)))
    result_ids = [r.id for r in results]
    entered = any(user_id in (r.entered_by_id, r.corrected_by_id) for r in results) or (bool(result_ids) and bool(
        session.scalar(select(ResultAttachment.id).where(ResultAttachment.result_id.in_(result_ids),
                                                         ResultAttachment.uploaded_by_id == user_id).limit(1))))
    if not entered and result_ids:
        # a result row keeps its first author and its last corrector only: the audit trail says who else changed
        # it (a correction a colleague corrected again must still bar its author from releasing)
        entered = bool(session.scalar(select(AuditEvent.seq).where(
            AuditEvent.actor_id == user_id, AuditEvent.action.in_(("insert", "update")),
            or_(AuditEvent.field.is_(None), AuditEvent.field.notin_(QA_RESULT_FIELDS)),
            AuditEvent.entity_type == "release_result",
            AuditEvent.entity_id.in_([str(i) for i in result_ids])).limit(1)))
    if lot.created_by_id == user_id:
        return entered, True
    rows = session.execute(_manufacture_records(lot.id)).all()
    if any(author == user_id for _kind, _id, author in rows):
        return entered, True
    # a record keeps its first author only: whoever inserted or changed a record since (a correction of a passage,
    # lots.corrections, or of a reagent use, lots.reagent_corrections) is named by the audit trail alone. QA's own
    # acts (a signature's lock, a status moved by release, recall or allocation) are not manufacture: counting them
    # would make the releasing QA person look like the lot's maker once it is released.
    touched: dict[str, list[str]] = {"lot": [str(lot.id)]}
    for kind, record_id, _author in rows:
        if kind in AUDITED_MANUFACTURE:
            touched.setdefault(kind, []).append(str(record_id))
    manufacture_events = select(AuditEvent.seq).where(
        AuditEvent.actor_id == user_id, AuditEvent.action.in_(("insert", "update")),
        or_(AuditEvent.field.is_(None), AuditEvent.field.notin_(NOT_MANUFACTURE_FIELDS)),
        or_(*(and_(AuditEvent.entity_type == kind, AuditEvent.entity_id.in_(ids)) for kind, ids in touched.items())))
    return entered, bool(session.scalar(manufacture_events.limit(1)))


#: the lot's manufacturing records whose audit events name who else inserted or changed them (the audit trail's
#: entity type is the table's name: lot_process_step, lot_deviation, reagent_use, bag)
AUDITED_MANUFACTURE = frozenset(model.__tablename__ for model in (ProcessStep, Deviation, ReagentUse, Bag))


def _manufacture_records(lot_id: int) -> Any:
    """(entity type, id, author) of each of the lot's manufacturing records, in one query: its steps, deviations,
    reagent uses, bags (no author column) and the storage moves of its bags."""
    bags = select(Bag.id).where(Bag.lot_id == lot_id)
    return union_all(*(
        select(literal(model.__tablename__, String), model.id, author).where(where)
        for model, author, where in (
            (ProcessStep, ProcessStep.recorded_by_id, ProcessStep.lot_id == lot_id),
            (Deviation, Deviation.recorded_by_id, Deviation.lot_id == lot_id),
            (ReagentUse, ReagentUse.recorded_by_id, ReagentUse.lot_id == lot_id),
            (Bag, literal(None, Integer), Bag.lot_id == lot_id),
            (StorageMove, StorageMove.moved_by_id, StorageMove.bag_id.in_(bags)))))


def dispositions_of(session: Session, lot_id: int) -> list[LotDisposition]:
    return list(session.scalars(select(LotDisposition).where(LotDisposition.lot_id == lot_id)
                                .order_by(LotDisposition.id)))


def latest_disposition(session: Session, lot_id: int) -> LotDisposition | None:
    found = dispositions_of(session, lot_id)
    return found[-1] if found else None


def exceptional_requests_of(session: Session, lot_id: int) -> list[LotDisposition]:
    """The lot's clinician requests for exceptional use, oldest first (signed by QA or not)."""
    return list(session.scalars(select(LotDisposition).where(
        LotDisposition.lot_id == lot_id, LotDisposition.kind == "exceptional_release").order_by(LotDisposition.id)))


def waiting_exceptional_request(session: Session, lot_id: int) -> LotDisposition | None:
    """The one request for exceptional use waiting for QA's countersignature: the lot's latest request, while QA has
    not signed it. One waits at a time: a new request supersedes (withdraws) the one waiting
    (release.request_exceptional_release), and QA countersigns the request it read, named by its id."""
    return waiting_of(exceptional_requests_of(session, lot_id))


def waiting_of(requests: list[LotDisposition]) -> LotDisposition | None:
    """Of a lot's requests for exceptional use in order, the one waiting: the latest, while QA has not signed it."""
    return requests[-1] if requests and requests[-1].signed_at is None else None


def superseded_by(requests: list[LotDisposition], request: LotDisposition) -> LotDisposition | None:
    """The later request that withdrew this one, if QA never signed it (`requests`: exceptional_requests_of)."""
    if request.signed_at is not None:
        return None
    return next((r for r in requests if r.id > request.id), None)


def pending_conditional_tests(session: Session, lot: Lot) -> list[str]:
    """The tests named pending at the lot's (signed) conditional release, while it is conditionally released."""
    if lot.status != "conditional_release":
        return []
    return named_pending(dispositions_of(session, lot.id))


def named_pending(dispositions: list[LotDisposition]) -> list[str]:
    """The tests named pending by the latest signed conditional release among these dispositions (none: [])."""
    for disposition in reversed(dispositions):
        if disposition.kind == "conditional_release" and disposition.signed_at is not None:
            return [t for t in disposition.pending_tests.split(",") if t]
    return []


@dataclass(frozen=True)
class ReleaseState:
    """How a lot stands for use: `released` covers full, conditional and exceptional release."""

    lot_status: str
    released: bool
    conditional: bool
    exceptional: bool
    patient_code: str | None  # exceptional release: the one patient it may be given to
    pending_tests: tuple[str, ...]
    flag: str
    failed_late: tuple[str, ...] = ()  # tests with an open late OOS: the lot may no longer be used
    #: the pending tests by their specification names ("Sterility"), for the words; pending_tests keeps the ids
    pending_names: tuple[str, ...] = ()

    @classmethod
    def of(cls, lot_status: str, exceptional_for: str | None, signed_exceptional: bool,
           pending: tuple[str, ...], failed_late: tuple[str, ...] = (),
           pending_names: tuple[str, ...] | None = None) -> ReleaseState:
        """The state from the lot's status, its signed exceptional release, if any, and the tests that failed
        after a conditional release (pure). A late failure withdraws the release at once, before QA has
        confirmed the OOS (and rejected or recalled the lot): a bag that may be contaminated is not given
        while its investigation is open. `pending_names`: the pending tests as the specification names them
        (spec_test_names); the ids when not given."""
        names = pending if pending_names is None else pending_names
        conditional = lot_status == "conditional_release"
        released = lot_status in ("released", "conditional_release") and not failed_late
        exceptional = released and signed_exceptional
        flag = ""
        if failed_late:
            flag = ("LATE OOS: " + ", ".join(failed_late) + " failed after the conditional release; "
                    "NOT FOR USE while the investigation is open")
        elif exceptional:
            flag = (f"EXCEPTIONAL RELEASE of an OOS batch for patient {exceptional_for} only "
                    "(EU GMP Part IV 11.5)")
        elif conditional:
            flag = "CONDITIONAL RELEASE: pending " + ", ".join(names)
        return cls(lot_status, released, conditional, exceptional, exceptional_for if exceptional else None,
                   pending, flag, failed_late, names)


def _signed_exceptional(lot_id: Any) -> Any:
    return select(LotDisposition.patient_code).where(
        LotDisposition.lot_id == lot_id, LotDisposition.kind == "exceptional_release",
        LotDisposition.signed_at.is_not(None)).order_by(LotDisposition.id).limit(1)


def exceptional_release_of(lot_id: Any) -> tuple[Any, Any]:
    """Correlated (patient code, exists) of the lot's first signed exceptional release: the one definition that
    release_state and the bedside check's single statement both read."""
    query = _signed_exceptional(lot_id)
    return query.scalar_subquery(), query.exists()


def has_late_oos(lot_id: Any) -> Any:
    """Correlated EXISTS: an open OOS of a test that failed after the lot's conditional release (the bedside
    check reads it in its one statement and asks failed_late_tests for the names only when it is true)."""
    return select(OosInvestigation.id).where(OosInvestigation.lot_id == lot_id, OosInvestigation.late.is_(True),
                                             OosInvestigation.status == OOS_OPEN).exists()


def failed_late_tests(session: Session, lot_id: int) -> tuple[str, ...]:
    """The tests of the lot's open late OOS investigations, in the order they failed, by the names the lot's
    specification gives them ("Sterility", not the id "sterility"): the LATE OOS flag and the bedside STOP print
    them to QA, technicians and nurses."""
    ids = tuple(dict.fromkeys(session.scalars(select(OosInvestigation.test_id).where(
        OosInvestigation.lot_id == lot_id, OosInvestigation.late.is_(True), OosInvestigation.status == OOS_OPEN)
        .order_by(OosInvestigation.id))))
    return spec_test_names(session, lot_id, ids)


def spec_test_names(session: Session, lot_id: int, test_ids: tuple[str, ...]) -> tuple[str, ...]:
    """Each test id by its name in the lot's specification (release.specs.spec_of_lot). An id is kept as it is
    when the specification cannot be read or has no such test: the stop it explains must still be said (a
    configuration error is shown where specifications are used, never in place of a DO NOT USE)."""
    if not test_ids:
        return ()
    from mscbatch.errors import DomainError
    from mscbatch.release.specs import spec_of_lot

    lot = session.get(Lot, lot_id)
    try:
        names = {test.id: test.name for test in spec_of_lot(session, lot).tests} if lot is not None else {}
    except DomainError:  # SpecificationUnusable, or no specification names the lot's product class
        names = {}
    return tuple(names.get(test_id, test_id) for test_id in test_ids)


def exceptional_patients(session: Session, lot_ids: Iterable[int]) -> dict[int, str | None]:
    """lot id -> the one patient its signed exceptional release names (lots without one are absent)."""
    ids = list(lot_ids)
    if not ids:
        return {}
    out: dict[int, str | None] = {}
    for lot_id, code in session.execute(select(LotDisposition.lot_id, LotDisposition.patient_code).where(
            LotDisposition.lot_id.in_(ids), LotDisposition.kind == "exceptional_release",
            LotDisposition.signed_at.is_not(None)).order_by(LotDisposition.id)):
        out.setdefault(lot_id, code)  # the first signed one, as exceptional_release_of reads it
    return out


def release_state(session: Session, lot: Lot) -> ReleaseState:
    """Issue 6 asks this before allocating, labelling or dispatching a bag of the lot."""
    code, signed = exceptional_release_of(lot.id)
    exceptional_for, exceptional = session.execute(select(code, signed)).one()
    pending = tuple(pending_conditional_tests(session, lot))
    return ReleaseState.of(lot.status, exceptional_for, bool(exceptional), pending, failed_late_tests(session, lot.id),
                           pending_names=spec_test_names(session, lot.id, pending))


def bag_release(session: Session, bag_id: int) -> ReleaseState:
    """Is this bag released / conditionally released / exceptionally released (and for whom)?"""
    bag = session.get(Bag, bag_id)
    if bag is None:
        from mscbatch.errors import NotFound

        raise NotFound(f"No bag with id {bag_id}.")
    lot = session.get(Lot, bag.lot_id)
    assert lot is not None
    return release_state(session, lot)


def may_give_bag_to(session: Session, bag_id: int, patient_code: str) -> tuple[bool, str]:
    """Whether a bag's lot is released for this patient (an exceptional release names one patient)."""
    state = bag_release(session, bag_id)
    if not state.released:
        return False, f"the lot is {state.lot_status.replace('_', ' ')}"
    if state.exceptional and (patient_code or "").strip().upper() != state.patient_code:
        return False, f"exceptionally released for patient {state.patient_code} only"
    return True, state.flag or "released"


def endotoxin_eu_per_ml(session: Session, lots: Iterable[Lot]) -> dict[int, Decimal]:
    """lot id -> the endotoxin concentration (EU/mL) its release counts, for the dose's K/M check (issue 6).

    The value is the one the lot's endotoxin verdict is judged from (core.verdicts.judge_test): the latest
    valid result, except that a valid failing result stands until its OOS investigation invalidates it (so an
    exceptionally released OOS batch is dosed with its failing value, never a later retest). Invalidated
    results never count. A result below the detection limit ("< 0.05") counts as its limit, the most it can be; one
    above the test's range ("> 5") has no upper bound and refuses the calculation (Conflict). A lot without a valid
    result, whose specification has no endotoxin test, or whose
    test is not in EU/mL is left out: the dose then reports "no result" rather than a guessed load. A
    specification that cannot be used (release.specs.SpecificationUnusable: the files unreadable, the signed
    version of a released lot edited in place or removed, no specification for the lot's product class) refuses
    the calculation: the K/M check is never skipped in silence for a configuration fault."""
    from mscbatch.core.release_spec import Censored, ResultValueError, parse_result_value
    from mscbatch.core.verdicts import judge_test
    from mscbatch.errors import Conflict, NotFound
    from mscbatch.release.specs import SpecificationUnusable, lab_results, spec_of_lot, unreadable

    wanted = {lot.id: lot for lot in lots}
    if not wanted:
        return {}
    found: dict[int, list[ReleaseResult]] = {}
    for row in session.scalars(select(ReleaseResult).where(
            ReleaseResult.lot_id.in_(list(wanted)), ReleaseResult.test_id == ENDOTOXIN_TEST_ID,
            ReleaseResult.invalidated_at.is_(None)).order_by(ReleaseResult.entered_at, ReleaseResult.id)):
        found.setdefault(row.lot_id, []).append(row)
    out: dict[int, Decimal] = {}
    for lot_id, rows in found.items():
        try:
            spec = spec_of_lot(session, wanted[lot_id])
        except (NotFound, SpecificationUnusable) as error:  # the lot's specification is missing or changed:
            # refused, never dropped
            raise SpecificationUnusable(
                f"The dose cannot be calculated: the endotoxin limit (K/M, Ph. Eur. 5.1.10) of lot "
                f"{wanted[lot_id].lot_number} cannot be checked. {error.message} Until an administrator fixes this, no "
                "dose is calculated for a patient whose calculation would consider this lot's bags; nothing was "
                "saved.") from None
        try:
            test = spec.test(ENDOTOXIN_TEST_ID)
        except KeyError:  # the specification has no endotoxin test: "no result"
            continue
        if test.unit != ENDOTOXIN_UNIT:
            continue
        try:  # a result the spec in force cannot read (its file edited in place): refused, not guessed
            judged = judge_test(test, lab_results(rows)).result
            value = None if judged is None else parse_result_value(test, judged.value, judged.unit)
        except ResultValueError as error:
            raise unreadable(wanted[lot_id], spec, error) from None
        if isinstance(value, Censored):  # "< 0.05": its limit is the most it can be, the load's upper bound
            if value.relation != "<":  # "> 5": no upper bound, so no load to check: refused, never skipped
                raise Conflict(
                    f"The dose cannot be calculated: the endotoxin result of lot {wanted[lot_id].lot_number} is "
                    f"{test.format(value)}, above the range of the test, so the endotoxin the dose would carry has no "
                    "upper limit and the K/M limit (Ph. Eur. 5.1.10) cannot be checked. A technician enters a retest "
                    "that measures it (a dilution); nothing was saved.")
            out[lot_id] = value.bound
        elif isinstance(value, Decimal):
            out[lot_id] = value
    return out


@dataclass(frozen=True)
class Dashboard:
    awaiting_review: list[Lot]
    open_oos: list[tuple[OosInvestigation, Lot]]
    conditional: list[Lot]
    exceptional_requests: list[tuple[LotDisposition, Lot]]
    expiring: list[Lot]
    after_release: list[tuple[Deviation, Lot]] = field(default_factory=list)
    before_release: list[tuple[Deviation, Lot]] = field(default_factory=list)  # major/critical, to assess first
    lookbacks: list[OpenLookback] = field(default_factory=list)  # donors reopened by a late result: recall or not
    # {lot id: the recalls in force covering it (recall.queries.recalls_covering, the query the review page's release
    # refusal reads)} for every lot the dashboard lists, so each list marks a lot under recall ("RECALL R-4")
    recalls: dict[int, list[Recall]] = field(default_factory=dict)

    def recalls_of(self, lot: Lot) -> list[Recall]:
        return self.recalls.get(lot.id, [])


def released_at(session: Session, lot_id: int) -> datetime | None:
    """When QA last signed the lot's release (conditional, its completion, full or exceptional): the last
    signature that weighed the record."""
    return session.scalar(select(func.max(LotDisposition.signed_at)).where(
        LotDisposition.lot_id == lot_id, LotDisposition.signed_at.is_not(None),
        LotDisposition.kind.in_(RELEASED_KINDS)))


def deviations_after_release(session: Session, lot_id: int | None = None) -> list[tuple[Deviation, Lot]]:
    """Deviations recorded after their lot's last release signature, while its bags may still be given, and not
    yet assessed: no release signature weighed them, so QA must assess each (release.deviations)."""
    last_release = (select(LotDisposition.lot_id, func.max(LotDisposition.signed_at).label("signed_at"))
                     .where(LotDisposition.signed_at.is_not(None), LotDisposition.kind.in_(RELEASED_KINDS))
                     .group_by(LotDisposition.lot_id).subquery())
    assessed = select(DeviationAssessment.id).where(DeviationAssessment.deviation_id == Deviation.id).exists()
    return [(d, lot) for d, lot in session.execute(
        select(Deviation, Lot).join(Lot, Lot.id == Deviation.lot_id).join(last_release, last_release.c.lot_id == Lot.id)
        .where(Deviation.recorded_at > last_release.c.signed_at, ~assessed,
               Lot.status.in_(("released", "conditional_release")),
               *([Lot.id == lot_id] if lot_id is not None else []))
        .order_by(Deviation.id))]


def deviations_before_release(session: Session, lot_id: int | None = None) -> list[tuple[Deviation, Lot]]:
    """Major and critical deviations recorded before their lot's release, not yet assessed, while a release
    signature may still come (in process, in quarantine, or conditionally released and waiting for the completion):
    each needs QA's own signed assessment before that signature (EU GMP Annex 16 1.7.17; release.deviations).
    Minor ones are weighed by the release signature itself."""
    last_release = (select(LotDisposition.lot_id, func.max(LotDisposition.signed_at).label("signed_at"))
                    .where(LotDisposition.signed_at.is_not(None), LotDisposition.kind.in_(RELEASED_KINDS))
                    .group_by(LotDisposition.lot_id).subquery())
    assessed = select(DeviationAssessment.id).where(DeviationAssessment.deviation_id == Deviation.id).exists()
    return [(d, lot) for d, lot in session.execute(
        select(Deviation, Lot).join(Lot, Lot.id == Deviation.lot_id)
        .outerjoin(last_release, last_release.c.lot_id == Lot.id)
        .where(Deviation.severity.in_(ASSESSED_BEFORE_RELEASE), ~assessed,
               Lot.status.in_(("in_process", "quarantine", "conditional_release")),
               # one recorded after a conditional release is deviations_after_release's (any severity)
               or_(last_release.c.signed_at.is_(None), Deviation.recorded_at <= last_release.c.signed_at),
               *([Lot.id == lot_id] if lot_id is not None else []))
        .order_by(Deviation.id))]


def deviations_to_assess(session: Session, lot_id: int | None = None) -> list[tuple[Deviation, Lot]]:
    """Every deviation waiting for QA's signed assessment, before or after release, oldest first: the one list
    the release refusal, the review page and the dashboard read."""
    found = deviations_before_release(session, lot_id) + deviations_after_release(session, lot_id)
    return sorted(found, key=lambda pair: pair[0].id)


def assessments_of(session: Session, lot_id: int) -> dict[int, DeviationAssessment]:
    """{deviation id: QA's signed assessment} for the lot's assessed deviations (before or after its release)."""
    return {a.deviation_id: a for a in session.scalars(
        select(DeviationAssessment).where(DeviationAssessment.lot_id == lot_id))}


def dashboard(session: Session, days: int = EXPIRY_WARNING_DAYS) -> Dashboard:
    from mscbatch.release.oos import recalled_awaiting_results  # oos builds on these queries

    now = utcnow()
    lots = lambda *where: list(session.scalars(select(Lot).where(*where).order_by(Lot.id)))  # noqa: E731
    board = Dashboard(
        awaiting_review=lots(Lot.status == "quarantine"),
        open_oos=[(o, lot) for o, lot in session.execute(select(OosInvestigation, Lot).join(
            Lot, Lot.id == OosInvestigation.lot_id).where(OosInvestigation.status == "open")
            .order_by(OosInvestigation.id))],
        # a lot recalled from its conditional release still awaits the tests it named pending (a late failure
        # names the patients to notify): listed with the conditional releases until they are in
        conditional=lots(Lot.status == "conditional_release") + recalled_awaiting_results(session),
        exceptional_requests=_waiting_requests(session),
        expiring=lots(Lot.status.in_(("released", "conditional_release", "quarantine")), Lot.expires_at.is_not(None),
                      Lot.expires_at <= now + timedelta(days=days)),
        after_release=deviations_after_release(session),
        before_release=deviations_before_release(session),
        lookbacks=open_lookbacks(session),
    )
    listed = [*board.awaiting_review, *board.conditional, *board.expiring,
              *(lot for _row, lot in [*board.open_oos, *board.exceptional_requests, *board.after_release,
                                      *board.before_release]),
              *(traced.lot for o in board.lookbacks for traced in o.trace.lots)]
    # one statement a listed lot (the review page's own query), none when no recall is in force at all
    in_force = session.scalar(select(Recall.id).where(Recall.status.in_(IN_FORCE)).limit(1)) is not None
    for lot in {lot.id: lot for lot in listed}.values() if in_force else ():
        covering = recalls_covering(session, lot)
        if covering:
            board.recalls[lot.id] = covering
    return board


def _waiting_requests(session: Session) -> list[tuple[LotDisposition, Lot]]:
    """Each quarantined lot's one waiting request for exceptional use (waiting_exceptional_request): its latest,
    not signed by QA; the earlier ones it superseded are not listed."""
    later = aliased(LotDisposition)
    superseded = select(later.id).where(later.lot_id == LotDisposition.lot_id, later.kind == "exceptional_release",
                                        later.id > LotDisposition.id).exists()
    return [(d, lot) for d, lot in session.execute(select(LotDisposition, Lot).join(
        Lot, Lot.id == LotDisposition.lot_id).where(LotDisposition.kind == "exceptional_release",
                                                  LotDisposition.signed_at.is_(None), ~superseded,
                                                  Lot.status == "quarantine").order_by(LotDisposition.id))]


def users_named(session: Session, ids: Any) -> dict[int, str]:
    from mscbatch.auth.models import User

    ids = {i for i in ids if i}
    return {i: n for i, n in session.execute(select(User.id, User.full_name).where(User.id.in_(ids)))} if ids else {}
