"""The patients list, a page at a time: the /patients page and GET /api/v1/patients. Both once showed the PAGE_SIZE
newest patients and nothing more, with no total and no word that the list stopped there; a search for "SLE-UC-1"
silently showed 50 of its matches, and a wristband id found no one (session 45 review). A page now says how many
patients match in all, which of them it shows, and the keyset (`before`, as the lots list) for the next; a search
matches the trial patient code (a part of it) or a wristband id (exactly, whatever its case and spacing, as the
bedside reads a band)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mscbatch.core.bounds import keyset
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import PAGE_SIZE, wristband_as_registered, wristband_identity


@dataclass(frozen=True)
class PatientPage:
    patients: list[Patient]
    total: int  # every patient the filters match, on every page
    first: int  # the position (1-based, newest first) of the page's first patient; 0 when the page is empty
    next_before: int | None  # keyset: the id to pass as `before` for the next (older) page

    @property
    def last(self) -> int:
        return self.first + len(self.patients) - 1 if self.patients else 0


def patient_conditions(session: Session, *, protocol_id: str = "", search: str = "") -> list[Any]:
    """The filters' WHERE: the protocol, and a search matching a part of the code or the whole wristband id."""
    conditions: list[Any] = []
    if protocol_id:
        conditions.append(Patient.protocol_id == protocol_id)
    text = (search or "").strip()
    if text:
        matches = [Patient.code.contains(text.upper(), autoescape=True)]
        identity = wristband_identity(text)
        if identity:
            matches.append(Patient.wristband_id == identity)
            earlier = wristband_as_registered(session, identity)  # a band stored before the one spelling
            if earlier is not None:
                matches.append(Patient.wristband_id == earlier)
        conditions.append(or_(*matches))
    return conditions


def patient_page(session: Session, *, protocol_id: str = "", search: str = "", before: int | None = None,
                 per_page: int = PAGE_SIZE) -> PatientPage:
    """Patients newest first (by id), filtered, `per_page` of them older than `before` (keyset, as lots.list_lots),
    with the number matching in all and the page's place among them."""
    conditions = patient_conditions(session, protocol_id=protocol_id, search=search)
    before = keyset(before)
    query = select(Patient).where(*conditions)
    if before:
        query = query.where(Patient.id < before)
    rows = list(session.scalars(query.order_by(Patient.id.desc()).limit(per_page + 1)))
    more = len(rows) > per_page
    rows = rows[:per_page]
    total = session.scalar(select(func.count(Patient.id)).where(*conditions)) or 0
    first = 0
    if rows:
        newer = session.scalar(select(func.count(Patient.id)).where(*conditions, Patient.id > rows[0].id)) or 0
        first = newer + 1
    return PatientPage(rows, int(total), first, rows[-1].id if more and rows else None)
