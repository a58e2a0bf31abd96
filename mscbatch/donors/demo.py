"""Demo donors for `make run`: one per situation a newcomer should see, entered through the services by the
demo technician and signed by the demo QA (mscbatch.demo.DEMO_USERS)."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.donors import decisions, services
from mscbatch.donors.models import APPROVED, INELIGIBLE, Donor
from mscbatch.donors.queries import rule_sets

DEMO_PASSWORD = "mscbatch-demo"


def _screen(session: Session, tech: User, donor: Donor, sample: date, positives: dict[str, str] | None = None,
            yes: dict[str, str] | None = None) -> None:
    """A complete panel (negative unless listed in `positives`) and every question answered."""
    rule_set = rule_sets()[donor.rule_set_id]
    for n, marker in enumerate(m for m in rule_set.markers if m.required):
        services.record_result(session, tech, donor.id, marker=marker.id, result=(positives or {}).get(marker.id, "negative"),
                               sample_date=sample, lab_reference=f"LAB-{donor.code}-{n + 1:02d}")
    answers = {q.id: ("yes", (yes or {})[q.id]) if q.id in (yes or {}) else ("no", "") for q in rule_set.questions}
    services.answer_questionnaire(session, tech, donor.id, answers)


def seed_donors(session: Session) -> list[str]:
    existing = session.scalars(select(Donor).order_by(Donor.id)).all()
    if existing:
        return [f"  {d.code:<12} {d.tissue_source:<15} {d.status}" for d in existing]
    tech = session.scalar(select(User).where(User.username == "tech"))
    qa = session.scalar(select(User).where(User.username == "qa"))
    if tech is None or qa is None:
        return ["  (skipped: the demo users tech and qa are missing)"]
    today = date.today()
    details = services.DonorDetails
    adipose = services.register_donor(session, tech, details(
        tissue_source="adipose_tissue", rule_set_id="adipose_at_don", donor_type="unrelated", initials="AB",
        date_of_birth=date(1985, 4, 12), sex="female", weight_kg="64.5", consent_signed=True,
        consent_date=today - timedelta(days=20), planned_collection_date=today - timedelta(days=3)))
    _screen(session, tech, adipose, today - timedelta(days=2))
    decisions.decide(session, qa, adipose.id, APPROVED, DEMO_PASSWORD)

    cord = services.register_donor(session, tech, details(
        tissue_source="umbilical_cord", rule_set_id="cord_eu", donor_type="unrelated", initials="CD",
        date_of_birth=date(1992, 9, 3), sex="female", consent_signed=True, consent_date=today - timedelta(days=30),
        planned_collection_date=today - timedelta(days=1)))
    _screen(session, tech, cord, today - timedelta(days=4))

    marrow = services.register_donor(session, tech, details(
        tissue_source="bone_marrow", rule_set_id="marrow_ssc_bm", donor_type="familial", relationship="sibling",
        recipient_code="SSC-BM-007", initials="EF", date_of_birth=date(1970, 1, 20), sex="male", weight_kg="81",
        consent_signed=True, consent_date=today - timedelta(days=15), social_security=True,
        planned_collection_date=today + timedelta(days=5)))
    _screen(session, tech, marrow, today - timedelta(days=10),
            yes={"xylocaine_allergy": "Urticaria after lidocaine at the dentist, 2019"})
    decisions.decide(session, qa, marrow.id, INELIGIBLE, DEMO_PASSWORD)
    return [f"  {adipose.code}  adipose tissue, approved by QA (Quentin QA)",
            f"  {cord.code}  umbilical cord, screening complete, awaiting the QA signature",
            f"  {marrow.code}  bone marrow (sibling of SSC-BM-007), ineligible: Xylocaine allergy"]
