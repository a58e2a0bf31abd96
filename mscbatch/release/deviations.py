"""QA's signed assessment of a deviation, one at a time (the dashboard's "assess each").

After release: a deviation recorded after its lot's release was weighed by no release signature, so QA signs,
for each, either that the released bags are unaffected or that the lot is recalled. The recall starts in the same
transaction as the signed assessment (its unused bags held, the patients to notify listed), as a confirmed late
OOS does.

Before release: a major or critical deviation is investigated before the lot is certified (EU GMP Annex 16
1.7.17, Part I 1.4(xiv)), so QA signs, for each, that it has no impact on the lot's quality (release may proceed)
or that the lot is rejected, the rejection signed in the same transaction as a confirmed OOS rejects. Until then
the release is refused (release.release.awaiting_assessment). An assessed deviation leaves the dashboard."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.models import Deviation
from mscbatch.lots.queries import get_lot
from mscbatch.release.models import ASSESSMENT_OUTCOMES, DeviationAssessment, assessment_outcomes
from mscbatch.release.queries import deviations_after_release, deviations_before_release, involvement
from mscbatch.release.texts import too_long
from mscbatch.signatures.services import sign

ASSESSED_MEANING = "Deviation after release assessed"
ASSESSED_BEFORE_RELEASE_MEANING = "Deviation assessed before release"
MIN_RATIONALE = 10


def _outcome_refused(allowed: dict[str, str], before_release: bool) -> ValidationFailed:
    choices = " or ".join(f"“{words}”" for words in allowed.values())
    when = "is not released yet" if before_release else "is already released"
    return ValidationFailed(f"This lot {when}: choose {choices}.", field="outcome")


def assess_deviation(session: Session, signer: Any, deviation_id: int, *, outcome: str, rationale: str,
                     password: str, seen: str | None = None) -> DeviationAssessment:
    """`seen`: what the lot's review page showed QA (release.release.check_seen: refused if the lot's record changed
    since); None (no page): not checked."""
    from mscbatch.recall.services import start_recall_in_use_case
    from mscbatch.release.release import check_seen, reject_in_use_case

    rationale = (rationale or "").strip()
    if outcome not in ASSESSMENT_OUTCOMES:
        raise ValidationFailed("Choose the outcome: no impact (the lot may be released or stays in use), or reject "
                               "or recall the lot.", field="outcome")
    if len(rationale) < MIN_RATIONALE:
        raise ValidationFailed(f"Rationale: say why, in at least {MIN_RATIONALE} characters (what was checked, "
                               "why the bags are or are not affected).", field="rationale")
    too_long(rationale, "Rationale", "rationale")
    with use_case(session, signer, f"deviation {deviation_id} assessed"):
        # locked: a second QA person assessing at the same moment waits, then finds it assessed (409, not a 500
        # from the unique constraint); SQLite's BEGIN IMMEDIATE serialises the two already
        deviation = session.scalar(select(Deviation).where(Deviation.id == deviation_id).with_for_update()
                                   .execution_options(populate_existing=True))
        if deviation is None:
            raise NotFound(f"No deviation with id {deviation_id}.")
        before = deviation.id in {d.id for d, _lot in deviations_before_release(session, deviation.lot_id)}
        after = deviation.id in {d.id for d, _lot in deviations_after_release(session, deviation.lot_id)}
        if not (before or after):
            raise Conflict("This deviation waits for no assessment: it was weighed by the lot's release signature (a minor "
                           "one, or recorded before the rule), is assessed already, or the lot is no longer in use.")
        lot = get_lot(session, deviation.lot_id)
        check_seen(session, lot, seen)
        allowed = assessment_outcomes(before, lot.status)
        if outcome not in allowed:
            raise _outcome_refused(allowed, before)
        # the same rule as for release: whoever recorded the lot's manufacture (its deviations included) or results
        if any(involvement(session, lot, signer.id)):
            raise Conflict("You recorded this deviation, or the lot's manufacture or results: another QA person "
                           "assesses it (segregation of duties). Nothing was signed.")
        assessment = DeviationAssessment(
            deviation_id=deviation.id, lot_id=deviation.lot_id, severity=deviation.severity,
            description=deviation.description, outcome=outcome, rationale=rationale, assessed_by_id=signer.id)
        session.add(assessment)
        session.flush()
        sign(session, signer, password, assessment, ASSESSED_BEFORE_RELEASE_MEANING if before else ASSESSED_MEANING,
             required_role="qa")
        what = "before release" if before else "after release"
        reason = f"Deviation {what} ({deviation.severity}): {deviation.description}. QA: {rationale}"
        if outcome == "recall":
            start_recall_in_use_case(session, signer, scope="lot", target_id=deviation.lot_id, password=password,
                                     reason=reason)
        elif outcome == "reject":
            reject_in_use_case(session, signer, deviation.lot_id, password, reason)
    return assessment
