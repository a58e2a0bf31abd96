"""Allocation of DIN sequences and lot numbers: unique, never reused, safe under concurrent requests.

DOMAIN.md section 7: a DIN (FIN + year + 6-digit sequence) is unique per FIN and year and never reused. A
counter row per (FIN, year) is created if missing (INSERT ... ON CONFLICT DO NOTHING) and then incremented
with a single UPDATE ... RETURNING, inside the caller's transaction:
- PostgreSQL: the UPDATE takes the row lock, so a concurrent allocation waits for this transaction to end
  and then reads the incremented value (READ COMMITTED re-evaluates the row): no two get the same range;
- SQLite: every write transaction is BEGIN IMMEDIATE (mscbatch.database), writers are serialised anyway.
If the transaction rolls back, the range was never given to anything and nothing printed carries it. The
unique constraint bag(din_fin, din_year, din_sequence) is the last guard.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mscbatch.core.identifiers import Din, make_din
from mscbatch.errors import Conflict
from mscbatch.lots.models import DinCounter, LotNumberCounter

MAX_SEQUENCE = 999_999


def _insert(session: Session, model: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert(model) if dialect == "postgresql" else sqlite.insert(model))


def _increment(session: Session, model: Any, key: dict[str, Any], count: int) -> int:
    """Add `count` to the counter row identified by `key`; return the new last value."""
    session.execute(_insert(session, model).values(**key, last_sequence=0).on_conflict_do_nothing())
    statement = update(model).values(last_sequence=model.last_sequence + count)
    for column, value in key.items():
        statement = statement.where(getattr(model, column) == value)
    return int(session.execute(statement.returning(model.last_sequence)).scalar_one())


def allocate_dins(session: Session, fin: str, year: int, count: int) -> list[Din]:
    """`count` consecutive new DINs for FIN and 2-digit year, in the caller's transaction."""
    if count < 1:
        raise ValueError("count must be at least 1")
    year = year % 100
    last = _increment(session, DinCounter, {"fin": fin, "year": year}, count)
    if last > MAX_SEQUENCE:
        raise Conflict(f"The DIN sequence for FIN {fin} and year {year:02d} is exhausted (999999 used).")
    return [make_din(fin, year, sequence) for sequence in range(last - count + 1, last + 1)]


def allocate_lot_sequence(session: Session, year: int) -> int:
    """The next lot number sequence of the (4-digit) year."""
    return _increment(session, LotNumberCounter, {"year": year}, 1)
