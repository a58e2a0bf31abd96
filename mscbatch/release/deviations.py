"""QA assesses a deviation recorded after its lot's release (the dashboard's "assess each"): no release signature
weighed it, so QA signs, for each, either that the released bags are unaffected or that the lot is recalled. The
recall starts in the same transaction as the signed assessment (its unused bags held, the patients to notify
listed), as a confirmed late OOS does. An assessed deviation leaves the dashboard."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.lots.models import Deviation
from mscbatch.lots.queries import get_lot
from mscbatch.release.models import ASSESSMENT_OUTCOMES, DeviationAssessment
from mscbatch.release.queries import deviations_after_release, involvement
from mscbatch.signatures.services import sign

ASSESSED_MEANING = "Deviation after release assessed"
MIN_RATIONALE = 10


def assess_deviation(session: Session, signer: Any, deviation_id: int, *, outcome: str, rationale: str,
                     password: str) -> DeviationAssessment:
    from mscbatch.recall.services import start_recall_in_use_case

    rationale = (rationale or "").strip()
    if outcome not in ASSESSMENT_OUTCOMES:
        raise ValidationFailed("Choose the outcome: no impact on the released bags, or recall the lot.",
                               field="outcome")
    if len(rationale) < MIN_RATIONALE:
        raise ValidationFailed(f"Rationale: say why, in at least {MIN_RATIONALE} characters (what was checked, "
                               "why the bags are or are not affected).", field="rationale")
    with use_case(session, signer, f"deviation {deviation_id} assessed after release"):
        # locked: a second QA person assessing at the same moment waits, then finds it assessed (409, not a 500
        # from the unique constraint); SQLite's BEGIN IMMEDIATE serialises the two already
        deviation = session.scalar(select(Deviation).where(Deviation.id == deviation_id).with_for_update()
                                   .execution_options(populate_existing=True))
        if deviation is None:
            raise NotFound(f"No deviation with id {deviation_id}.")
        if deviation.id not in {d.id for d, _lot in deviations_after_release(session, deviation.lot_id)}:
            raise Conflict("This deviation waits for no assessment: it was weighed by the lot's release signature, "
                           "is assessed already, or the lot is no longer in use.")
        # the same rule as for release: whoever recorded the lot's manufacture (its deviations included) or results
        if any(involvement(session, get_lot(session, deviation.lot_id), signer.id)):
            raise Conflict("You recorded this deviation, or the lot's manufacture or results: another QA person "
                           "assesses it (segregation of duties).", field="password")
        assessment = DeviationAssessment(
            deviation_id=deviation.id, lot_id=deviation.lot_id, severity=deviation.severity,
            description=deviation.description, outcome=outcome, rationale=rationale, assessed_by_id=signer.id)
        session.add(assessment)
        session.flush()
        sign(session, signer, password, assessment, ASSESSED_MEANING, required_role="qa")
        if outcome == "recall":
            start_recall_in_use_case(session, signer, scope="lot", target_id=deviation.lot_id, password=password,
                                     reason=f"Deviation after release ({deviation.severity}): "
                                            f"{deviation.description}. QA: {rationale}")
    return assessment
