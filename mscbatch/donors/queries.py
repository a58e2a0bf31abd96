"""Reading donors: the rule sets, the live evaluation by the pure engine, the donor page and the list.

The evaluation is recomputed from the recorded data on every screen load (never cached): what QA signs is a
snapshot of it taken at decision time (mscbatch.donors.decisions).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.core.donor_rules import RuleSet, load_all_donor_rule_sets
from mscbatch.core.eligibility import Decision, DonorFacts, MarkerResult, evaluate
from mscbatch.core.eligibility_markers import SampleStanding, sample_standings
from mscbatch.database import locked_row
from mscbatch.donors.models import (
    Donor,
    DonorLookback,
    EligibilityDecision,
    QuestionnaireAnswer,
    ScreeningResult,
)
from mscbatch.errors import NotFound
from mscbatch.lots.models import Lot
from mscbatch.paths import config_dir
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import signatures_of
from mscbatch.site import site_day

#: Roles that see identity fields beyond the donor code (initials, date of birth): the lab registers and
#: checks the donor, QA reviews the screening. Clinicians, nurses and administrators see the code only.
IDENTITY_ROLES = ("technician", "qa")
PAGE_SIZE = 25


@cache
def rule_sets() -> dict[str, RuleSet]:
    """Every donor rule file of config/donor_rules, validated once (a bad file stops the app at start-up)."""
    return load_all_donor_rule_sets(config_dir() / "donor_rules")


def rule_set_of(donor: Donor) -> RuleSet:
    try:
        return rule_sets()[donor.rule_set_id]
    except KeyError:
        raise NotFound(f"Donor {donor.code} was registered under rule set {donor.rule_set_id!r}, "
                       "which is no longer in config/donor_rules.") from None


def can_see_identity(user: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.has_role(*IDENTITY_ROLES))


def get_donor(session: Session, donor_id: int) -> Donor:
    donor = session.get(Donor, donor_id)
    if donor is None:
        raise NotFound(f"No donor with id {donor_id}.")
    return donor


def lock_donor(session: Session, donor_id: int) -> Donor:
    """The donor row, locked for the rest of the transaction and read afresh. QA's decision, its reopening and a
    new screening result take this lock first: on PostgreSQL (READ COMMITTED) two QA people signing at the same
    moment would otherwise both find no decision in force and leave two (approved AND ineligible), and a result
    recorded while QA signs would neither be weighed by the signature nor reopen it. SQLite's BEGIN IMMEDIATE
    serialises writers already."""
    return locked_row(session, Donor, donor_id, "donor")


def results_of(session: Session, donor_id: int) -> list[ScreeningResult]:
    return list(session.scalars(select(ScreeningResult).where(ScreeningResult.donor_id == donor_id)
                                .order_by(ScreeningResult.sample_date, ScreeningResult.id)))


def answers_of(session: Session, donor_id: int) -> dict[str, QuestionnaireAnswer]:
    rows = session.scalars(select(QuestionnaireAnswer).where(QuestionnaireAnswer.donor_id == donor_id))
    return {row.question_id: row for row in rows}


def decisions_of(session: Session, donor_id: int) -> list[EligibilityDecision]:
    return list(session.scalars(select(EligibilityDecision).where(EligibilityDecision.donor_id == donor_id)
                                .order_by(EligibilityDecision.judged_at.desc(), EligibilityDecision.id.desc())))


def current_decision(session: Session, donor_id: int) -> EligibilityDecision | None:
    """The signed decision in force: the newest one not superseded by new information."""
    return session.scalar(select(EligibilityDecision).where(EligibilityDecision.donor_id == donor_id,
                                                            EligibilityDecision.superseded_at.is_(None))
                          .order_by(EligibilityDecision.id.desc()).limit(1))


def recalls_of_donor(session: Session, donor_id: int) -> list[Any]:
    """The recalls started from this donor, newest first (any status): the donor page says that the donor's lots
    are covered by one, as the lots' pages do, so that QA reading the donor never sees an approval alone."""
    from mscbatch.recall.models import Recall  # the recall package reads donors: imported when called

    return list(session.scalars(select(Recall).where(Recall.scope == "donor", Recall.donor_id == donor_id)
                                .order_by(Recall.id.desc())))


def lookbacks_of(session: Session, donor_id: int) -> list[DonorLookback]:
    return list(session.scalars(select(DonorLookback).where(DonorLookback.donor_id == donor_id)
                                .order_by(DonorLookback.opened_at.desc(), DonorLookback.id.desc())))


def facts_of(session: Session, donor: Donor, collected_on: date | None = None) -> DonorFacts:
    """The donor's facts, judged at the planned collection, or at `collected_on` (the day a lot's tissue was
    really collected: the serology and NAT windows are counted from the donation itself)."""
    answers = {qid: {"yes": True, "no": False}.get(a.answer) for qid, a in answers_of(session, donor.id).items()}
    results = tuple(MarkerResult(r.marker, r.method, r.result, r.sample_date) for r in results_of(session, donor.id))
    return facts_from(donor, answers, results, collected_on)


def facts_from(donor: Donor, answers: dict[str, bool | None], results: tuple[MarkerResult, ...],
               collected_on: date | None = None) -> DonorFacts:
    """The engine's facts of a donor from its answers and results already read (results in results_of's order): one
    builder for facts_of and the donor list's grouped reads (status_notes), so the two never judge apart."""
    return DonorFacts(collection_date=collected_on or donor.planned_collection_date, date_of_birth=donor.date_of_birth,
                      sex=donor.sex, weight_kg=donor.weight_kg, consent_signed=donor.consent_signed,
                      consent_date=donor.consent_date,
                      social_security=donor.social_security, relationship=donor.relationship,
                      childbearing_potential=donor.childbearing_potential, contraception=donor.contraception,
                      results=results, answers=answers, retest_180_days_negative=donor.retest_180_days_negative)


def evaluate_donor(session: Session, donor: Donor, collected_on: date | None = None) -> Decision:
    """The pure engine's verdict on what is recorded now (DOMAIN.md section 3), at the planned collection or at
    a lot's real collection day."""
    return evaluate(rule_set_of(donor), facts_of(session, donor, collected_on))


# the donor's fields that QA's decisions and reopenings move: not screening data
DECIDED_FIELDS = ("status",)


def screening_enterers(session: Session, donor: Donor) -> set[int]:
    """Everyone who entered or changed this donor's screening data (segregation of duties for QA). The rows keep
    only their first author and their last corrector; the audit trail says who else changed them, so a person
    whose correction a colleague later re-corrected still counts."""
    results = results_of(session, donor.id)
    answers = answers_of(session, donor.id).values()
    ids = {donor.registered_by_id, donor.updated_by_id}
    for result in results:
        ids.update({result.entered_by_id, result.corrected_by_id})
    ids.update(a.answered_by_id for a in answers)
    touched = [("donor", [str(donor.id)]), ("donor_screening_result", [str(r.id) for r in results]),
               ("donor_questionnaire_answer", [str(a.id) for a in answers])]
    ids.update(session.scalars(select(AuditEvent.actor_id).distinct().where(
        AuditEvent.action.in_(("insert", "update")), AuditEvent.actor_id.is_not(None),
        or_(AuditEvent.field.is_(None), AuditEvent.field.notin_(DECIDED_FIELDS)),
        or_(*(and_(AuditEvent.entity_type == kind, AuditEvent.entity_id.in_(keys)) for kind, keys in touched if keys)))))
    ids.discard(None)
    return ids  # type: ignore[return-value]


@dataclass(frozen=True)
class DecisionRecord:
    decision: EligibilityDecision
    signatures: list[Signature]


@dataclass(frozen=True)
class CollectionDay:
    """A day the samples are counted from: the planned collection (what the checklist and QA's decision judge)
    and each day a lot's tissue was really collected (what that lot's donor gate judges). `standings` follow the
    donor's results in order (sample_standings)."""

    day: date
    planned: bool
    lots: tuple[str, ...]
    standings: tuple[SampleStanding | None, ...]

    def counts(self, index: int) -> bool:
        standing = self.standings[index]
        return standing is None or standing.inside


def collection_days(session: Session, donor: Donor, results: list[ScreeningResult]) -> list[CollectionDay]:
    """The planned collection, then every other day a lot of this donor was collected, oldest first."""
    lots_by_day: dict[date, list[str]] = {}
    for number, collected_at in session.execute(select(Lot.lot_number, Lot.collection_at)
                                                .where(Lot.donor_id == donor.id).order_by(Lot.id)):
        lots_by_day.setdefault(site_day(collected_at), []).append(number)
    days = sorted(set(lots_by_day) | ({donor.planned_collection_date} if donor.planned_collection_date else set()))
    rule_set = rule_set_of(donor)
    facts = [MarkerResult(r.marker, r.method, r.result, r.sample_date) for r in results]
    return [CollectionDay(day, day == donor.planned_collection_date, tuple(lots_by_day.get(day, ())),
                          sample_standings(rule_set, day, facts, donor.retest_180_days_negative)) for day in days]


@dataclass(frozen=True)
class DonorScreening:
    """Everything the donor page shows."""

    donor: Donor
    rule_set: RuleSet
    results: list[ScreeningResult]
    answers: dict[str, QuestionnaireAnswer]
    evaluation: Decision
    current: EligibilityDecision | None
    history: list[DecisionRecord]
    lookbacks: list[DonorLookback]
    users: dict[int, str]
    days: list[CollectionDay]

    @property
    def locked(self) -> bool:
        return self.current is not None

    def counts(self, index: int) -> bool:
        """The result's sample falls inside its window from every day its samples are judged at. False with no day
        at all (no planned collection, no lot): a window needs a day to count from, and the checklist says the
        marker is missing."""
        return bool(self.days) and all(day.counts(index) for day in self.days)

    def outside(self, index: int) -> list[CollectionDay]:
        """The days from which the result's sample falls outside its window (it does not count for them)."""
        return [day for day in self.days if not day.counts(index)]


def screening_of(session: Session, donor_id: int) -> DonorScreening:
    donor = get_donor(session, donor_id)
    results = results_of(session, donor.id)
    answers = answers_of(session, donor.id)
    history = [DecisionRecord(d, signatures_of(session, d)) for d in decisions_of(session, donor.id)]
    lookbacks = lookbacks_of(session, donor.id)
    user_ids = {donor.registered_by_id, *(r.entered_by_id for r in results), *(r.corrected_by_id for r in results),
                *(a.answered_by_id for a in answers.values()), *(h.decision.decided_by_id for h in history),
                *(lb.opened_by_id for lb in lookbacks), *(lb.closed_by_id for lb in lookbacks)}
    users = {row.id: row.full_name for row in session.execute(
        select(User.id, User.full_name).where(User.id.in_(user_ids - {None})))}
    return DonorScreening(donor, rule_set_of(donor), results, answers, evaluate_donor(session, donor),
                          current_decision(session, donor.id), history, lookbacks, users,
                          collection_days(session, donor, results))


@dataclass(frozen=True)
class EarlierReactive:
    """A result recorded (or corrected) as not negative, corrected since: QA reads it before approving, so that a
    correction never obscures the news it removed (DOMAIN.md section 9)."""

    result_id: int
    marker: str
    was: str
    now: str
    recorded_at: Any
    corrected_at: Any
    corrected_by: str
    reason: str

    def words(self) -> str:
        """The site's days (not UTC's) and the corrector's printed name, as every signature names people."""
        from mscbatch.site import site_day

        return (f"{self.marker} was recorded {self.was.upper()} on {site_day(self.recorded_at):%Y-%m-%d}, corrected to "
                f"{self.now} on {site_day(self.corrected_at):%Y-%m-%d} by {self.corrected_by}: "
                f"{self.reason or 'no reason'}")


def _plain(value: str | None) -> str:
    """An audit event's stored value as a word (the trail may keep a string JSON-quoted)."""
    text = value or ""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def earlier_reactive_of(session: Session, donor: Donor, results: list[ScreeningResult]) -> list[EarlierReactive]:
    """Every correction of one of the donor's results away from a value that was not negative, oldest first, named
    by the marker the result had when it was recorded so (read back from the audit trail), never by the marker it
    has now: a correction that also changed the marker (refused since s40, possible before) must not show QA
    "CMV IgM was recorded POSITIVE" for an Anti-HIV-1/2 positive. A change of marker alone on such a result is one
    too: the positive moved to another marker."""
    if not results:
        return []
    by_id = {str(r.id): r for r in results}
    rule_set = rule_sets().get(donor.rule_set_id)

    def name(marker_id: str) -> str:
        marker = rule_set.marker(marker_id) if rule_set is not None else None
        return marker.name if marker is not None else marker_id

    events = list(session.scalars(select(AuditEvent).where(
        AuditEvent.entity_type == ScreeningResult.__tablename__, AuditEvent.entity_id.in_(list(by_id)),
        AuditEvent.action == "update", AuditEvent.field.in_(("marker", "result"))).order_by(AuditEvent.seq)))
    actor_ids = {e.actor_id for e in events if e.actor_id is not None}
    names: dict[int, str] = {}
    if actor_ids:
        names = {uid: full for uid, full in session.execute(select(User.id, User.full_name).where(
            User.id.in_(actor_ids)))}
    # one correction = the events of one result written by one flush (one time stamp): its marker and its result
    corrections: dict[tuple[str, Any], list[AuditEvent]] = {}
    for event in events:
        corrections.setdefault((event.entity_id or "", event.occurred_at), []).append(event)
    # each result's marker and result before and after each correction, walked back from the row as it is now
    states: dict[tuple[str, Any], tuple[dict[str, str], dict[str, str]]] = {}
    now_of = {key: {"marker": row.marker, "result": row.result} for key, row in by_id.items()}
    for key in reversed(list(corrections)):
        after = dict(now_of[key[0]])
        before = dict(after)
        for event in corrections[key]:
            before[event.field or ""] = _plain(event.old_value)
        states[key] = (before, after)
        now_of[key[0]] = before
    found = []
    for key, group in corrections.items():
        before, after = states[key]
        was = before["result"]
        if was == "negative" or not was:
            continue
        now = after["result"] if after["marker"] == before["marker"] else f"{name(after['marker'])} {after['result']}"
        row, event = by_id[key[0]], group[0]
        found.append(EarlierReactive(row.id, name(before["marker"]), was, now, row.entered_at, event.occurred_at,
                                     names.get(event.actor_id or 0, event.actor_name), event.reason or ""))
    return found


@dataclass(frozen=True)
class DonorPage:
    donors: list[Donor]
    page: int
    pages: int
    total: int
    notes: dict[int, list[str]]


def screening_verdicts(session: Session, donors: list[Donor]) -> dict[int, str | None]:
    """The screening's verdict ("eligible", "pending", "ineligible") of each donor QA has not signed or whose decision
    was reopened (status screening or pending review), judged as evaluate_donor judges it (facts_of's facts), from
    the results and the answers of all of them read in one statement each (not two statements a donor). None: the
    donor's rule set is no longer configured."""
    screening = [d for d in donors if d.status in ("screening", "pending_review")]
    results: dict[int, list[MarkerResult]] = {d.id: [] for d in screening}
    answers: dict[int, dict[str, bool | None]] = {d.id: {} for d in screening}
    if screening:
        for row in session.scalars(select(ScreeningResult).where(
                ScreeningResult.donor_id.in_(list(results))).order_by(ScreeningResult.sample_date, ScreeningResult.id)):
            results[row.donor_id].append(MarkerResult(row.marker, row.method, row.result, row.sample_date))
        for donor_id, question_id, answer in session.execute(select(
                QuestionnaireAnswer.donor_id, QuestionnaireAnswer.question_id, QuestionnaireAnswer.answer).where(
                QuestionnaireAnswer.donor_id.in_(list(answers)))):
            answers[donor_id][question_id] = {"yes": True, "no": False}.get(answer)
    verdicts: dict[int, str | None] = {}
    for donor in screening:
        try:
            rule_set = rule_set_of(donor)
        except NotFound:
            verdicts[donor.id] = None
            continue
        verdicts[donor.id] = evaluate(rule_set, facts_from(donor, answers[donor.id], tuple(results[donor.id]))).status
    return verdicts


def status_notes(session: Session, donors: list[Donor]) -> dict[int, list[str]]:
    """What the donor list's Status column says beside the status: a reactive result, the screening's verdict when QA
    has not signed, a recall of the donor in force, an open lookback, an approval signed on a risk assessment."""
    from mscbatch.donors.decisions import is_risk_assessed  # decisions read this module
    from mscbatch.recall.models import Recall  # the recall package reads donors: imported when called
    from mscbatch.recall.queries import IN_FORCE

    ids = [d.id for d in donors]
    notes: dict[int, list[str]] = {d.id: [] for d in donors}
    if not ids:
        return notes
    for donor_id, result in session.execute(select(ScreeningResult.donor_id, ScreeningResult.result).distinct().where(
            ScreeningResult.donor_id.in_(ids), ScreeningResult.result != "negative")
            .order_by(ScreeningResult.donor_id, ScreeningResult.result.desc())):
        notes[donor_id].append("REACTIVE result" if result == "positive" else f"{result.upper()} result")
    for donor_id, verdict in screening_verdicts(session, donors).items():
        notes[donor_id].append("rule set no longer configured" if verdict is None else f"screening says {verdict}")
    for recall_id, donor_id in session.execute(select(Recall.id, Recall.donor_id).where(
            Recall.scope == "donor", Recall.donor_id.in_(ids), Recall.status.in_(IN_FORCE)).order_by(Recall.id)):
        notes[donor_id].append(f"recall R-{recall_id} in force")
    for lookback_id, donor_id in session.execute(select(DonorLookback.id, DonorLookback.donor_id).where(
            DonorLookback.donor_id.in_(ids), DonorLookback.closed_at.is_(None)).order_by(DonorLookback.id)):
        notes[donor_id].append(f"lookback L-{lookback_id} open")
    for decision in session.scalars(select(EligibilityDecision).where(
            EligibilityDecision.donor_id.in_(ids), EligibilityDecision.superseded_at.is_(None))):
        if is_risk_assessed(decision):
            notes[decision.donor_id].append("approved on a risk assessment")
    return notes


def list_donors(session: Session, *, source: str = "", status: str = "", search: str = "", page: int = 1,
                per_page: int = PAGE_SIZE) -> DonorPage:
    """Donors by source and status, newest first; search matches the donor code or the recipient code."""
    query = select(Donor)
    if source:
        query = query.where(Donor.tissue_source == source)
    if status:
        query = query.where(Donor.status == status)
    if search.strip():
        pattern = f"%{search.strip().upper()}%"
        query = query.where(or_(func.upper(Donor.code).like(pattern), func.upper(Donor.recipient_code).like(pattern)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    donors = list(session.scalars(query.order_by(Donor.id.desc()).offset((page - 1) * per_page).limit(per_page)))
    return DonorPage(donors, page, pages, total, status_notes(session, donors))
