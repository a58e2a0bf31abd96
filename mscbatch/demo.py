"""Demo data for `make run`: users for every role (passwords printed), extended by each capability so a
newcomer can click through the whole flow at once. Never run this against a production database."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mscbatch.auth import services as auth
from mscbatch.auth.models import User

# (user name, full name, roles, password); one demo password for all, printed by `make run`.
# Two QA people and two nurses: release needs a QA who did not enter the results, and the bedside check
# needs a second person.
DEMO_USERS = [
    ("tech", "Tom Technician", ["technician"], "mscbatch-demo"),
    ("tech2", "Tina Technician", ["technician"], "mscbatch-demo"),
    ("qa", "Quentin QA", ["qa"], "mscbatch-demo"),
    ("qa2", "Quinn QA", ["qa"], "mscbatch-demo"),
    ("clinician", "Dr Clara Clinician", ["clinician"], "mscbatch-demo"),
    ("nurse", "Nina Nurse", ["nurse"], "mscbatch-demo"),
    ("nurse2", "Noah Nurse", ["nurse"], "mscbatch-demo"),
    ("admin", "Ada Admin", ["admin"], "mscbatch-demo"),
]

# Each capability appends a step: (name, function(session) -> list of lines to print).
DEMO_STEPS: list[tuple[str, Callable[[Session], list[str]]]] = []


def not_the_demos(session: Session) -> str | None:
    """What in this database the demo did not make, in words (None: a new database or the demo's own).

    The demo's own: its accounts (user name and full name as above), the accounts its administrator created
    (a newcomer trying the Users page) and the lots those accounts made. Anything else is real: seed-demo
    must not add accounts with the published demo password beside it."""
    from mscbatch.audit.models import AuditEvent
    from mscbatch.lots.models import Lot

    demo_names = {(username, full_name) for username, full_name, _roles, _password in DEMO_USERS}
    accounts = session.execute(select(User.id, User.username, User.full_name)).all()
    demo_ids = {user_id for user_id, username, full_name in accounts if (username, full_name) in demo_names}
    made_in_demo = set(session.scalars(select(AuditEvent.entity_id).where(
        AuditEvent.entity_type == User.__tablename__, AuditEvent.action == "insert",
        AuditEvent.actor_id.in_(demo_ids)))) if demo_ids else set()
    ours = demo_ids | {user_id for user_id, *_ in accounts if str(user_id) in made_in_demo}
    others = sorted(username for user_id, username, _ in accounts if user_id not in ours)
    lots = session.scalar(select(func.count()).select_from(Lot).where(Lot.created_by_id.not_in(ours))) if \
        accounts else session.scalar(select(func.count()).select_from(Lot))
    said = []
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        said.append(f"{len(others)} account(s) the demo did not make ({shown})")
    if lots:
        said.append(f"{lots} lot(s) the demo did not make")
    return " and ".join(said) or None


def holds_the_demo(session: Session) -> bool:
    """Whether every demo account is here (user name and full name): the demo's own database, whatever was added
    to it since (an account made with `mscbatch create-user` while trying the demo). A unit's own database never
    holds all of them unless seed-demo once ran on it, which put the published password there already."""
    found = {(username, full_name) for username, full_name in session.execute(select(User.username, User.full_name)
                                                                               .where(User.username.in_([u for u, *_ in DEMO_USERS])))}
    return all((username, full_name) in found for username, full_name, *_ in DEMO_USERS)


def demo_summary(session: Session) -> list[str]:
    """What `make run` prints when seed-demo adds nothing: the demo accounts and where the ward walk-through
    stands, read from the database (nothing is written)."""
    from mscbatch.custody.demo import seed_custody

    lines = ["Demo users (user name, password, roles):"]
    for username, _full_name, roles, password in DEMO_USERS:
        lines.append(f"  {username:<10} {password:<22} {', '.join(roles)}")
    return [*lines, "Demo chain of custody:", *seed_custody(session)]


def seed_users(session: Session, hash_profile: str = "standard") -> list[str]:
    lines = []
    for username, full_name, roles, password in DEMO_USERS:
        if session.scalar(select(User.id).where(User.username == username)) is None:
            auth.create_user(session, None, username=username, full_name=full_name, password=password,
                             roles=roles, hash_profile=hash_profile)
        lines.append(f"  {username:<10} {password:<22} {', '.join(roles)}")
    return lines


def seed_demo(session: Session, hash_profile: str = "standard") -> list[str]:
    lines = ["Demo users (user name, password, roles):", *seed_users(session, hash_profile)]
    for name, step in DEMO_STEPS:
        lines.append(f"{name}:")
        lines.extend(step(session))
    return lines


def _demo_donors(session: Session) -> list[str]:
    from mscbatch.donors.demo import seed_donors

    return seed_donors(session)


DEMO_STEPS.append(("Demo donors (code, source, status)", _demo_donors))


def _demo_lots(session: Session) -> list[str]:
    from mscbatch.lots.demo import seed_lots

    return seed_lots(session)


DEMO_STEPS.append(("Demo lots, storage and reagent lots (issue 4)", _demo_lots))


def _demo_release(session: Session) -> list[str]:
    from mscbatch.release.demo import seed_release

    return seed_release(session)


DEMO_STEPS.append(("Demo release testing and QA release (issue 5)", _demo_release))


def _demo_labels(session: Session) -> list[str]:
    from mscbatch.labelling.demo import seed_labels

    return seed_labels(session)


DEMO_STEPS.append(("Demo bag labels of the released lots (issue 7)", _demo_labels))


def _demo_patients(session: Session) -> list[str]:
    from mscbatch.patients.demo import seed_patients

    return seed_patients(session)


DEMO_STEPS.append(("Demo trial patients and prescription (issue 6)", _demo_patients))


def _demo_custody(session: Session) -> list[str]:
    from mscbatch.custody.demo import seed_custody

    return seed_custody(session)


DEMO_STEPS.append(("Demo chain of custody: a bag on the ward (issue 7)", _demo_custody))


def _demo_returned(session: Session) -> list[str]:
    from mscbatch.custody.demo_returns import seed_returned

    return seed_returned(session)


DEMO_STEPS.append(("Demo bag returned to the unit, waiting for QA's assessment", _demo_returned))


def _demo_recall(session: Session) -> list[str]:
    from mscbatch.recall.demo import seed_recall

    return seed_recall(session)


DEMO_STEPS.append(("Demo recall: a late positive marker recalls a donor's lot", _demo_recall))


def _demo_recall_notices(session: Session) -> list[str]:
    from mscbatch.recall.demo_notices import seed_recall_notices

    return seed_recall_notices(session)


DEMO_STEPS.append(("Demo recall reaching patients: a late sterility OOS after a conditional release, clinicians to "
                   "notify", _demo_recall_notices))
