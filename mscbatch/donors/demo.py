"""Demo donors for `make run`: one per situation a newcomer should see, entered through the services by the
demo technician and signed by the demo QA (mscbatch.demo.DEMO_USERS).

Three umbilical-cord donors: "CD" stays awaiting the QA signature (so QA can try signing), "GH" is approved by QA
and gives the UC-MSC lot that the demo carries through release to the lupus patient's prescription (issue 6), "RA"
is anti-HBc positive with HBsAg negative (EU 2006/17/EC Annex II 1.3): it awaits QA's documented risk assessment,
which QA writes in the comment when approving it. "JK", approved too, gives a second released UC-MSC lot, so a
newcomer has bags to prescribe to the enrolled patient who has no prescription yet.
Idempotent: each donor is created only when missing (an instance seeded by an older demo gains the new one)."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.donors import decisions, services
from mscbatch.donors.models import APPROVED, INELIGIBLE, Donor
from mscbatch.donors.queries import rule_sets
from mscbatch.site import site_today

DEMO_PASSWORD = "mscbatch-demo"
#: initials of the demo cord donors (how the later demo steps find them)
PENDING_CORD_INITIALS = "CD"
CHAIN_CORD_INITIALS = "GH"
RISK_CORD_INITIALS = "RA"
SECOND_CHAIN_CORD_INITIALS = "JK"


def demo_cord_donor(session: Session, initials: str) -> Donor | None:
    """The demo umbilical-cord donor with these initials (PENDING_CORD_INITIALS or CHAIN_CORD_INITIALS)."""
    return session.scalar(select(Donor).where(Donor.tissue_source == "umbilical_cord", Donor.initials == initials)
                          .order_by(Donor.id))


def _screen(session: Session, tech: User, donor: Donor, sample: date, positives: dict[str, str] | None = None,
            yes: dict[str, str] | None = None) -> None:
    """A complete panel (negative unless listed in `positives`) and every question answered."""
    rule_set = rule_sets()[donor.rule_set_id]
    for n, marker in enumerate(m for m in rule_set.markers if m.required):
        services.record_result(session, tech, donor.id, marker=marker.id, result=(positives or {}).get(marker.id, "negative"),
                               sample_date=sample, lab_reference=f"LAB-{donor.code}-{n + 1:02d}")
    answers = {q.id: ("yes", (yes or {})[q.id]) if q.id in (yes or {}) else ("no", "") for q in rule_set.questions}
    services.answer_questionnaire(session, tech, donor.id, answers)


def _approved_cord_donor(session: Session, tech: User, qa: User, initials: str = CHAIN_CORD_INITIALS,
                         born: date = date(1990, 2, 17), days_ago: int = 26) -> Donor:
    """A cord donor screened complete and approved by QA, delivered `days_ago` days ago: the start of a demo chain
    to a patient (the lot of mscbatch.lots.demo starts on the delivery day)."""
    today = site_today()
    delivery = today - timedelta(days=days_ago)
    cord = services.register_donor(session, tech, services.DonorDetails(
        tissue_source="umbilical_cord", rule_set_id="cord_eu", donor_type="unrelated", initials=initials,
        date_of_birth=born, sex="female", consent_signed=True, consent_date=today - timedelta(days=60),
        planned_collection_date=delivery))
    _screen(session, tech, cord, delivery - timedelta(days=1))
    decisions.decide(session, qa, cord.id, APPROVED, DEMO_PASSWORD)
    return cord


def _risk_assessment_cord_donor(session: Session, tech: User) -> Donor:
    """A cord donor whose mother is anti-HBc positive, HBsAg negative: pending a documented risk assessment."""
    today = site_today()
    delivery = today - timedelta(days=2)
    cord = services.register_donor(session, tech, services.DonorDetails(
        tissue_source="umbilical_cord", rule_set_id="cord_eu", donor_type="unrelated", initials=RISK_CORD_INITIALS,
        date_of_birth=date(1988, 6, 9), sex="female", consent_signed=True, consent_date=today - timedelta(days=40),
        planned_collection_date=delivery))
    _screen(session, tech, cord, delivery - timedelta(days=1), positives={"anti_hbc": "positive"})
    return cord


def _second_chain_donor(session: Session, tech: User, qa: User) -> Donor:
    """The cord donor of the second released UC-MSC lot, delivered a day after the first chain's donor."""
    return _approved_cord_donor(session, tech, qa, SECOND_CHAIN_CORD_INITIALS, date(1994, 11, 8), days_ago=25)


def seed_donors(session: Session) -> list[str]:
    existing = session.scalars(select(Donor).order_by(Donor.id)).all()
    tech = session.scalar(select(User).where(User.username == "tech"))
    qa = session.scalar(select(User).where(User.username == "qa"))
    if existing:
        if demo_cord_donor(session, CHAIN_CORD_INITIALS) is None and tech is not None and qa is not None:
            _approved_cord_donor(session, tech, qa)
            existing = session.scalars(select(Donor).order_by(Donor.id)).all()
        if demo_cord_donor(session, RISK_CORD_INITIALS) is None and tech is not None:
            _risk_assessment_cord_donor(session, tech)
            existing = session.scalars(select(Donor).order_by(Donor.id)).all()
        if demo_cord_donor(session, SECOND_CHAIN_CORD_INITIALS) is None and tech is not None and qa is not None:
            _second_chain_donor(session, tech, qa)
            existing = session.scalars(select(Donor).order_by(Donor.id)).all()
        return [f"  {d.code:<12} {d.tissue_source:<15} {d.status}" for d in existing]
    if tech is None or qa is None:
        return ["  (skipped: the demo users tech and qa are missing)"]
    today = site_today()
    details = services.DonorDetails
    adipose = services.register_donor(session, tech, details(
        tissue_source="adipose_tissue", rule_set_id="adipose_at_don", donor_type="unrelated", initials="AB",
        date_of_birth=date(1985, 4, 12), sex="female", weight_kg="64.5", consent_signed=True,
        consent_date=today - timedelta(days=30), planned_collection_date=today - timedelta(days=24)))
    _screen(session, tech, adipose, today - timedelta(days=23))  # the demo lot is collected 24 days ago
    decisions.decide(session, qa, adipose.id, APPROVED, DEMO_PASSWORD)

    cord = services.register_donor(session, tech, details(
        tissue_source="umbilical_cord", rule_set_id="cord_eu", donor_type="unrelated", initials=PENDING_CORD_INITIALS,
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
    chain = _approved_cord_donor(session, tech, qa)
    risk = _risk_assessment_cord_donor(session, tech)
    second = _second_chain_donor(session, tech, qa)
    return [f"  {adipose.code}  adipose tissue, approved by QA (Quentin QA)",
            f"  {cord.code}  umbilical cord, screening complete, awaiting the QA signature",
            f"  {marrow.code}  bone marrow (sibling of SSC-BM-007), ineligible: Xylocaine allergy",
            f"  {chain.code}  umbilical cord, approved by QA (Quentin QA): gives the UC-MSC lot for the lupus patient",
            f"  {risk.code}  umbilical cord, anti-HBc positive / HBsAg negative: awaits QA's documented risk "
            "assessment (write it in the comment to approve)",
            f"  {second.code}  umbilical cord, approved by QA (Quentin QA): gives a second UC-MSC lot, bags to prescribe"]
