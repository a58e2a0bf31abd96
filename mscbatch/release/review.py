"""Everything the QA review page and the certificate of analysis show, read once (issue 5 points 4 and 7)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.release_spec import UNIT_SHOWN, ReleaseSpec, shown_number
from mscbatch.core.verdicts import VIABLE_COUNT_TEST_ID, LotVerdict, Verdict, VerdictStatus
from mscbatch.donors.models import Donor
from mscbatch.lots.models import Bag, Deviation, Lot, ProcessStep
from mscbatch.lots.queries import bags_of, get_lot
from mscbatch.lots.record_corrections import RecordCorrection, record_corrections
from mscbatch.lots.services import current_gate, expiry_passed
from mscbatch.recall.models import Recall
from mscbatch.recall.queries import recalls_of_lot
from mscbatch.release.models import (
    ASSESSED_BEFORE_RELEASE,
    OOS_INVALIDATED,
    DeviationAssessment,
    LotDisposition,
    OosInvestigation,
    ReleaseResult,
    ResultAttachment,
    assessment_outcomes,
)
from mscbatch.release.oos import involved_words, oos_of, retest_candidates
from mscbatch.release.queries import (
    RELEASED_KINDS,
    ReleaseState,
    assessments_of,
    deviations_before_release,
    deviations_to_assess,
    dispositions_of,
    release_state,
    released_at,
    superseded_by,
    users_named,
    waiting_of,
)
from mscbatch.release.release import count_discrepancy, page_fingerprint, patient_refusal, refusals
from mscbatch.release.results import accepts_results
from mscbatch.release.specs import lot_verdict, results_of, spec_of_lot
from mscbatch.signatures.models import Signature
from mscbatch.signatures.services import signatures_of
from mscbatch.site import local_and_utc


@dataclass
class TestRow:
    """One line of the spec-vs-result table: the test, its verdict and every result entered for it."""

    verdict: Verdict
    results: list[ReleaseResult]
    unit: str
    method: str
    note: str = ""  # the specification's note on the test ("Site value to confirm", why it is informative)

    @property
    def current(self) -> ReleaseResult | None:
        """The result the verdict was judged from: a failing result that stands, not a later passing retest
        (which would print a passing value beside FAIL); else the latest valid one."""
        judged = self.verdict.result.result_id if self.verdict.result is not None else None
        for result in self.results:
            if judged is not None and result.id == judged:
                return result
        valid = [r for r in self.results if r.invalidated_at is None]
        return valid[-1] if valid else None


@dataclass
class Review:
    lot: Lot
    donor: Donor
    gate: str
    spec: ReleaseSpec
    verdict: LotVerdict
    rows: list[TestRow]
    attachments: dict[int, list[ResultAttachment]]
    oos: list[OosInvestigation]
    retests: dict[int, list[ReleaseResult]]
    dispositions: list[tuple[LotDisposition, list[Signature]]]
    oos_signatures: dict[int, list[Signature]]
    deviations: list[Deviation]
    steps: list[ProcessStep]
    bag_count: int
    refusals: list[str]
    state: ReleaseState
    users: dict[int, str]
    released_at: datetime | None = None  # QA's last release signature
    # {deviation id: (QA's signed assessment, its signatures)}, before or after the release
    assessments: dict[int, tuple[DeviationAssessment, list[Signature]]] = field(default_factory=dict)
    # ids of the deviations QA still has to assess: release.queries.deviations_to_assess, the rule the assessment
    # itself, the release refusal and the dashboard apply, read here rather than restated; `awaiting_before` are
    # those of them recorded before release (deviations_before_release)
    awaiting: frozenset[int] = frozenset()
    awaiting_before: frozenset[int] = frozenset()
    # the recalls that cover or covered the lot, each with its signatures (start, and end once found invalid)
    recalls: list[tuple[Recall, list[Signature]]] = field(default_factory=list)
    # the tests whose results a technician may still correct (release.results.accepts_results)
    correctable: frozenset[str] = frozenset()
    # the viable cell count above the harvest's, unresolved (release.release.count_discrepancy), else None
    count_discrepancy: str | None = None
    bags: list[Bag] = field(default_factory=list)  # in bag-number order (the certificate lists their DINs)
    # why the waiting exceptional request can no longer be countersigned (its patient withdrawn since, ...), else
    # None: the page says it instead of offering a button that the countersignature would refuse
    exceptional_refusal: str | None = None
    # why the reader (a QA person who entered results or recorded the manufacture) may not conclude the lot's OOS
    # investigations (release.oos.involved_words), said above the form the service would refuse, else None
    oos_refusal: str | None = None
    # why a conditional release cannot be signed now, whichever pending tests QA names (conditional_refusals), else
    # [] (or for a reader who does not sign it)
    conditional_refusals: list[str] = field(default_factory=list)
    # what the page shows that a signature on it rests on (release.release.page_fingerprint): each signature form
    # posts it as `seen`, and the signature is refused if the lot's record changed since
    fingerprint: str = ""
    # every correction of the manufacturing record after first entry (lots.record_corrections), oldest first: the
    # page shows them to QA before signing and the certificate prints them (EU GMP Annex 11 8.2)
    corrections: list[RecordCorrection] = field(default_factory=list)

    @staticmethod
    def shown(result: ReleaseResult, value: str | None = None) -> str:
        """A result as the page and the certificate print it: counts in x10^6 cells, as the limits are."""
        return f"{shown_number(result.unit, result.value if value is None else value)} " \
               f"{UNIT_SHOWN.get(result.unit, result.unit)}".strip()

    def record_note(self, test_id: str) -> str:
        """What the manufacturing record says beside a result: the harvest's viable cells beside the viable count
        (frozen cells do not multiply: the count cannot be above it)."""
        if test_id != VIABLE_COUNT_TEST_ID or self.lot.harvest_viable_cells is None:
            return ""
        return (f"Manufacturing record: {shown_number('cells', Decimal(self.lot.harvest_viable_cells))} x10^6 viable "
                "cells at harvest")

    @property
    def blockers(self) -> tuple[list[str], list[str]]:
        """The release refusals in two groups: what is wrong (a failed test, an open OOS, the donor, a deviation to
        assess...) first, then the results still awaited, so that one failed test is not lost among twenty pending."""
        awaited = {v.reason for v in self.verdict.verdicts if v.status is VerdictStatus.PENDING}
        return [r for r in self.refusals if r not in awaited], [r for r in self.refusals if r in awaited]

    @property
    def release_blockers(self) -> list[str]:
        """Why a release signature (or the completion of a conditional release) is refused now, whatever QA types in
        the form: the refusals (release.refusals, the rule the signature itself applies, read here rather than
        restated) but a viable cell count above the harvest, which QA may justify in the form, signing it."""
        return [r for r in self.refusals if r != self.count_discrepancy]

    @property
    def expired_words(self) -> str | None:
        """A released (or conditionally released) lot whose shelf life has run out: its bags are refused everywhere
        (allocation, dispatch, bedside), but its status stays "released" until someone marks it expired
        (lots.services), so the page and the certificate say it in red rather than read as a lot in use."""
        if self.lot.status not in ("released", "conditional_release") or not expiry_passed(self.lot):
            return None
        assert self.lot.expires_at is not None
        when = local_and_utc(self.lot.expires_at)
        return (f"EXPIRED on {when}: not for clinical use (its shelf life has run out; the lot is still recorded as "
                f"{self.lot.status.replace('_', ' ')} until it is marked expired)")

    @property
    def first_released_at(self) -> datetime | None:
        """QA's first release signature (conditional, full or exceptional): what came before it, it weighed."""
        return min((d.signed_at for d, _s in self.dispositions
                    if d.kind in RELEASED_KINDS and d.signed_at is not None), default=None)

    def after_release(self, deviation: Deviation) -> bool:
        """Recorded after a release signature that did not weigh it. One awaiting assessment is as
        deviations_after_release decides; an assessed one, if recorded after the lot's first release signature
        (e.g. after a conditional release, assessed before the completion that is now the last signature); else,
        recorded after the last release signature (e.g. on a lot recalled since, which no one assesses)."""
        if deviation.id in self.awaiting:
            return deviation.id not in self.awaiting_before
        if deviation.id in self.assessments:
            first = self.first_released_at
            return first is not None and deviation.recorded_at > first
        return self.released_at is not None and deviation.recorded_at > self.released_at

    @property
    def late_deviations(self) -> list[Deviation]:
        return [d for d in self.deviations if self.after_release(d)]

    @property
    def serious_deviations(self) -> list[Deviation]:
        """Major and critical deviations recorded before release: each is assessed before the release signature
        (the page's "Deviations to assess"), or was weighed by it on a lot released before that rule."""
        return [d for d in self.deviations if d.severity in ASSESSED_BEFORE_RELEASE and not self.after_release(d)]

    @property
    def next_to_assess(self) -> Deviation | None:
        """The first deviation awaiting QA's assessment: the page shows its form (one at a time)."""
        return next((d for d in self.serious_deviations + self.late_deviations if self.awaiting_assessment(d)), None)

    def awaiting_assessment(self, deviation: Deviation) -> bool:
        """QA still has to assess it (release.deviations): before the release, or while the lot's bags may be given."""
        return deviation.id in self.awaiting

    def outcomes_for(self, deviation: Deviation) -> dict[str, str]:
        """The outcomes QA chooses from for this deviation (release.models.assessment_outcomes)."""
        return assessment_outcomes(deviation.id in self.awaiting_before, self.lot.status)

    @property
    def open_oos(self) -> list[OosInvestigation]:
        return [o for o in self.oos if o.status == "open"]

    @property
    def under_investigation(self) -> dict[int, int]:
        """{result id: its open OOS investigation's id}: such a result is not corrected (release.results)."""
        return {o.result_id: o.id for o in self.open_oos}

    @property
    def closing_retests(self) -> dict[int, int]:
        """{result id: the OOS investigation closed with it}: locked under QA's signature (release.results)."""
        return {o.retest_result_id: o.id for o in self.oos if o.retest_result_id is not None}

    def invalidations(self, row: TestRow) -> list[str]:
        """Each failing result of the row's test that an OOS invalidation replaced, in words, so that a reader of
        the results alone sees the failure existed and why it no longer counts: "retest; first result 94.6 %
        invalidated, OOS 3: Instrument or equipment failure" when the row's result is the retest that closed it."""
        results = {result.id: result for result in row.results}
        current = row.current
        words = []
        for o in self.oos:
            failing = results.get(o.result_id)
            if o.status != OOS_INVALIDATED or failing is None:
                continue
            first = f"{self.shown(failing)} invalidated, OOS {o.id}: {o.cause_words}"
            if current is not None and current.id == o.retest_result_id:
                words.append(f"retest; first result {first}")
            else:
                retest = results.get(o.retest_result_id) if o.retest_result_id is not None else None
                words.append(f"result {first}" + (f" (retest {self.shown(retest)})" if retest is not None else ""))
        return words

    @property
    def signatures(self) -> list[Signature]:
        return [s for _d, sigs in self.dispositions for s in sigs]

    @property
    def exceptional_requests(self) -> list[LotDisposition]:
        return [d for d, _s in self.dispositions if d.kind == "exceptional_release"]

    @property
    def exceptional_request(self) -> LotDisposition | None:
        """The one request waiting for QA's countersignature (queries.waiting_exceptional_request: the latest,
        unsigned by QA): the page shows its patient and justification beside the button, whose form names it."""
        return waiting_of(self.exceptional_requests)

    def superseded_by(self, disposition: LotDisposition) -> LotDisposition | None:
        """The later request that withdrew this clinician's request, which QA never signed (else None)."""
        if disposition.kind != "exceptional_release":
            return None
        return superseded_by(self.exceptional_requests, disposition)


def review_of(session: Session, lot_id: int, user: Any = None) -> Review:
    lot = get_lot(session, lot_id)
    donor = session.get(Donor, lot.donor_id)
    assert donor is not None
    spec = spec_of_lot(session, lot)
    verdict = lot_verdict(session, lot, spec)
    all_results = results_of(session, lot.id)
    rows = [TestRow(v, [r for r in all_results if r.test_id == v.test_id], spec.test(v.test_id).unit,
                    spec.test(v.test_id).method, spec.test(v.test_id).note) for v in verdict.verdicts]
    ids = [r.id for r in all_results]
    attachments: dict[int, list[ResultAttachment]] = {}
    if ids:
        for a in session.scalars(select(ResultAttachment).where(ResultAttachment.result_id.in_(ids))):
            attachments.setdefault(a.result_id, []).append(a)
    investigations = oos_of(session, lot.id)
    dispositions = [(d, signatures_of(session, d)) for d in dispositions_of(session, lot.id)]
    deviations = list(session.scalars(select(Deviation).where(Deviation.lot_id == lot.id).order_by(Deviation.id)))
    steps = list(session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot.id).order_by(ProcessStep.id)))
    bags = bags_of(session, lot.id)
    user_ids = {lot.created_by_id, *(r.entered_by_id for r in all_results), *(r.corrected_by_id for r in all_results),
                *(d.recorded_by_id for d in deviations), *(o.closed_by_id for o in investigations),
                *(d.clinician_id for d, _s in dispositions)}
    return Review(lot=lot, donor=donor, gate=current_gate(session, lot), spec=spec, verdict=verdict, rows=rows,
                  attachments=attachments, oos=investigations,
                  retests={o.id: retest_candidates(session, o) for o in investigations if o.status == "open"},
                  dispositions=dispositions, oos_signatures={o.id: signatures_of(session, o) for o in investigations},
                  deviations=deviations, steps=steps, bag_count=len(bags), bags=bags,
                  refusals=refusals(session, lot, user, (), verdict) if user is not None else [],
                  state=release_state(session, lot), users=users_named(session, user_ids),
                  released_at=released_at(session, lot.id),
                  assessments={d: (a, signatures_of(session, a)) for d, a in assessments_of(session, lot.id).items()},
                  awaiting=frozenset(d.id for d, _lot in deviations_to_assess(session, lot.id)),
                  awaiting_before=frozenset(d.id for d, _lot in deviations_before_release(session, lot.id)),
                  recalls=[(r, signatures_of(session, r)) for r in recalls_of_lot(session, lot)],
                  correctable=frozenset(t.id for t in spec.tests if accepts_results(session, lot, t.id)),
                  count_discrepancy=count_discrepancy(session, lot, verdict),
                  corrections=record_corrections(session, lot),
                  exceptional_refusal=_exceptional_refusal(session, lot, dispositions),
                  conditional_refusals=(conditional_refusals(session, lot, user, verdict)
                                        if user is not None and user.has_role("qa") and lot.status == "quarantine"
                                        else []),
                  # only QA's page (its signatures, the OOS conclusions) and the clinician's (the request for
                  # exceptional use) have signature forms that carry it
                  fingerprint=(page_fingerprint(session, lot, verdict)
                               if user is not None and (user.has_role("qa") or user.has_role("clinician")) else ""),
                  oos_refusal=(involved_words(session, lot, user) if user is not None and user.has_role("qa")
                               and any(o.status == "open" for o in investigations) else None))


#: a conditional release with no pending test named would be a release: said beside its button instead
NOTHING_TO_WAIT_FOR = ("no test the specification allows to be pending at conditional release is still pending: "
                       "nothing to release conditionally")


def conditional_refusals(session: Session, lot: Lot, user: Any, verdict: LotVerdict) -> list[str]:
    """Why `user` cannot sign a conditional release of the lot now, whichever pending tests are named: the release's
    refusals (release.refusals, the service's rule) with every pending test the specification allows to wait named
    (naming fewer only adds reasons), but the viable count above the harvest, which QA may justify in the form."""
    waiting = [v.test_id for v in verdict.verdicts
               if v.status is VerdictStatus.PENDING and v.may_be_pending_at_conditional_release]
    if not waiting:
        return [NOTHING_TO_WAIT_FOR]
    discrepancy = count_discrepancy(session, lot, verdict)
    return [r for r in refusals(session, lot, user, waiting, verdict) if r != discrepancy]


def _exceptional_refusal(session: Session, lot: Lot, dispositions: list[Any]) -> str | None:
    waiting = waiting_of([d for d, _s in dispositions if d.kind == "exceptional_release"])
    return patient_refusal(session, lot, waiting.patient_code or "") if waiting is not None else None
