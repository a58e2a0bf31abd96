"""Demo labels (`make run`): the bags of every released lot carry their released label, printed by the
technician, as a unit labels a released lot before any bag leaves it (custody dispatch asks for it). Idempotent:
a lot with a bag printed before is left alone."""
from __future__ import annotations

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.custody.demo import _label_key
from mscbatch.labelling.services import print_labels, printed_before
from mscbatch.lots.models import Lot
from mscbatch.lots.queries import bags_of

#: where the demo labels' QR codes point: `make run` serves on this address unless told otherwise
DEMO_BASE_URL = "http://127.0.0.1:5000/"


def seed_labels(session: Session) -> list[str]:
    tech = session.scalar(select(User).where(User.username == "tech"))
    base_url = (current_app.config.get("LABEL_BASE_URL") if has_app_context() else None) or DEMO_BASE_URL
    lines = []
    for lot in session.scalars(select(Lot).where(Lot.status.in_(("released", "conditional_release")))
                               .order_by(Lot.id)).all():
        bags = bags_of(session, lot.id)
        if tech is None or printed_before(session, [bag.id for bag in bags]):
            continue  # labelled already (a second `make run`), or by hand: no reprint without a reason
        print_labels(session, tech, lot.id, print_format="lot", base_url=base_url, key=_label_key())
        lines.append(f"  {lot.lot_number}: released labels printed by {tech.username} for its {len(bags)} bags")
    return lines or ["  (every released lot's bags already carry their released label)"]
