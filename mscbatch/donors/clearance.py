"""Whether a donor clears the cells made from them, judged here once for every step that asks (the labels page and
its print, the label verification page, the FHIR export, dispatch, thaw and the bedside check), so that no two
steps tell one donor's story differently. Each step says the verdict in its own words.

A lot may be made, in quarantine, from a donor QA has not approved yet: its bags are not for use, but nothing
"reopened" that donor. Reopened means QA's signed approval was put back to review by new information (status
"pending_review" with an approval among the donor's signed decisions). A donor signed ineligible and then put back
to review was never approved: "not approved yet", as a donor still in screening.
"""
from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.donors.models import APPROVED, Donor, EligibilityDecision

NotCleared = Literal["ineligible", "reopened", "not_approved_yet"]


def clearance(status: str | None, approved_before: bool) -> NotCleared | None:
    """Why the donor does not clear their cells, or None when QA's approval stands (or the lot has no donor).
    `approved_before` is read only for a donor under review: whether a signed approval was what new information
    reopened."""
    if status is None or status == "approved":
        return None
    if status == "ineligible":
        return "ineligible"
    if status == "pending_review" and approved_before:
        return "reopened"
    return "not_approved_yet"  # screening (QA never signed), or only an ineligible decision, now reopened


def approved_before(session: Session, donor_id: int) -> bool:
    """Whether the donor under review was approved by QA before it was reopened. No decision row at all (data older
    than the decision records): the status alone says a signed decision was reopened, so it is taken as one."""
    meanings = set(session.scalars(select(EligibilityDecision.meaning)
                                   .where(EligibilityDecision.donor_id == donor_id).distinct()))
    return not meanings or APPROVED in meanings


def clearance_of(session: Session, donor_id: int | None, status: str | None) -> NotCleared | None:
    """clearance() for a donor whose status was already read: reads the decisions only for a donor under review."""
    reviewed = status == "pending_review" and donor_id is not None and approved_before(session, donor_id)
    return clearance(status, reviewed)


def donor_clearance(session: Session, donor_id: int) -> NotCleared | None:
    """clearance() of the donor, read from the database."""
    return clearance_of(session, donor_id, session.scalar(select(Donor.status).where(Donor.id == donor_id)))
