"""Writing a scale plan into the database in bulk: one transaction per chunk of lots, each ending consistent
(rows, their audit events and the chain head move together), so an interrupted run leaves a valid database.

Rows go in with explicit primary keys: PostgreSQL through COPY (text lines) on the session's own connection
(much faster than INSERT), SQLite through the DBAPI's executemany with values converted once per column type.
Afterwards PostgreSQL's sequences are moved past the new ids and the DIN and lot number counters past the
identifiers handed out, so the application goes on from there.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.engine import Connection

from mscbatch.audit.models import AuditEvent, AuditHead
from mscbatch.core.audit_chain import head_mac
from mscbatch.database import Base, UTCDateTime
from mscbatch.lots.models import DinCounter, LotNumberCounter, ReagentLot, StorageLocation
from mscbatch.scale.context import Context
from mscbatch.scale.records import Batch

#: tables in foreign-key order (parents first)
TABLE_ORDER = (
    "reagent_lot", "storage_location", "donor", "donor_screening_result", "donor_questionnaire_answer",
    "donor_eligibility_decision", "lot", "lot_process_step", "reagent_use", "bag", "release_result",
    "release_disposition", "patient", "patient_weight", "patient_enrolment_check", "prescription", "bag_allocation",
    "two_person_check", "infusion", "custody_event", "signature",
)
ID_TABLES = TABLE_ORDER
BOX_ROWS = BOX_COLUMNS = 10
BOXES_PER_RACK, RACKS_PER_TANK = 20, 25


def next_ids(connection: Connection) -> dict[str, int]:
    tables = Base.metadata.tables
    return {name: (connection.scalar(select(func.max(tables[name].c.id))) or 0) + 1 for name in ID_TABLES}


def _copy_text(value: Any) -> str:
    """A value in COPY's text format (what psycopg's dumpers would send, without their per-value dispatch)."""
    kind = type(value)
    if kind is str:
        if "\\" in value or "\n" in value or "\t" in value or "\r" in value:
            return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
        return value  # type: ignore[no-any-return]
    if value is None:
        return "\\N"
    if kind is bool:
        return "t" if value else "f"
    if kind is int:
        return str(value)
    if kind is datetime:
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.isoformat()
    if kind is date or kind is Decimal:
        return str(value)
    raise TypeError(f"no COPY text for {kind.__name__}")


def _copy(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY in text format, written as whole lines (one write per table, not one per row)."""
    columns = [c.key for c in table.columns]
    driver = connection.connection.driver_connection
    names = ", ".join(f'"{c.name}"' for c in table.columns)
    text_of = _copy_text
    lines = ["\t".join([text_of(row[c]) for c in columns]) for row in rows]
    with driver.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        copy.write("\n".join(lines) + "\n")


_INSERTS: dict[tuple[str, str], tuple[str, list[str], list[tuple[int, Any]]]] = {}


def _sqlite_utc(value: datetime | None) -> str | None:
    """UTCDateTime's bind processing on SQLite (to UTC, then SQLAlchemy's storage text) in two C calls."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given for a UTC column")
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def _executemany(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """SQLite: the DBAPI's executemany with the values already converted by each column type's bind
    processor (prepared once per table): SQLAlchemy's per-row parameter processing costs more than SQLite."""
    dialect = connection.dialect
    prepared = _INSERTS.get((dialect.name, table.name))
    if prepared is None:
        keys = [c.key for c in table.columns]
        marks = ", ".join("?" for _ in keys)
        sql = f'INSERT INTO "{table.name}" ({", ".join(chr(34) + c.name + chr(34) for c in table.columns)}) ' \
              f"VALUES ({marks})"
        processors = [(i, _sqlite_utc if isinstance(c.type, UTCDateTime) else c.type._cached_bind_processor(dialect))
                      for i, c in enumerate(table.columns)]
        prepared = _INSERTS[(dialect.name, table.name)] = (sql, keys, [(i, p) for i, p in processors if p])
    sql, keys, processors = prepared
    values = []
    for row in rows:
        line = [row[k] for k in keys]
        for i, process in processors:
            line[i] = process(line[i])
        values.append(line)
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, values)
    finally:
        cursor.close()


def write_rows(connection: Connection, rows: dict[str, list[dict[str, Any]]]) -> None:
    tables = Base.metadata.tables
    write = _copy if connection.dialect.name == "postgresql" else _executemany
    for name in TABLE_ORDER:
        batch = rows.get(name)
        if batch:
            write(connection, tables[name], batch)


def write_events(connection: Connection, batch: Batch) -> None:
    if not batch.events:
        return
    write = _copy if connection.dialect.name == "postgresql" else _executemany
    write(connection, AuditEvent.__table__, batch.events)  # type: ignore[arg-type]
    connection.execute(update(AuditHead).where(AuditHead.id == 1).values(
        last_seq=batch.seq, last_hash=batch.hash, mac=head_mac(batch.key, batch.seq, batch.hash)))


def chain_head(connection: Connection) -> tuple[int, str]:
    head = connection.execute(select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1)
                              .with_for_update()).first()
    if head is None:
        raise LookupError("the audit chain has no head: run `mscbatch init` first")
    return int(head[0]), str(head[1])


def storage_rows(ctx: Context, batch: Batch, bags: int) -> None:
    """Site -> LN2 tanks -> racks -> boxes of 10 x 10, enough for every bag."""
    tech = ctx.users["tech"]
    at = ctx.now.replace(microsecond=0) - ctx.years_span

    def location(kind: str, name: str, parent: int | None, **extra: Any) -> int:
        row = batch.add(StorageLocation, tech, id=ctx.ids("storage_location"), kind=kind, name=name,
                        parent_id=parent, created_by_id=tech.id, created_at=at,
                        **{"temperature_max_c": None, "rows": None, "columns": None, **extra})
        return int(row["id"])

    site = location("site", "Scale cell therapy unit", None)
    boxes_needed = -(-bags // (BOX_ROWS * BOX_COLUMNS))
    per_tank = BOXES_PER_RACK * RACKS_PER_TANK
    for tank_number in range(-(-boxes_needed // per_tank)):
        tank = location("tank", f"LN2 tank S{tank_number + 1}", site, temperature_max_c=Decimal(-150))
        for rack_number in range(RACKS_PER_TANK):
            if len(ctx.boxes) >= boxes_needed:
                break
            rack = location("rack", f"Rack {rack_number + 1}", tank)
            for box_number in range(BOXES_PER_RACK):
                if len(ctx.boxes) >= boxes_needed:
                    break
                name = f"Box S{tank_number + 1}-{rack_number + 1}-{box_number + 1}"
                ctx.boxes.append((location("box", name, rack, rows=BOX_ROWS, columns=BOX_COLUMNS), name, BOX_COLUMNS))


def reagent_rows(ctx: Context, batch: Batch, years: range) -> None:
    """A lot of each reagent the products require (culture medium, platelet lysate, trypsin, DMSO: config/products.toml
    `required_reagent_types`) per year, in date for that whole year."""
    tech = ctx.users["tech"]
    for year in years:
        for kind, name, supplier in (("medium", "alpha-MEM", "ScaleBio"), ("platelet_lysate", "Human platelet lysate",
                                                                          "ScaleHeme"),
                                     ("trypsin", "TrypLE Select", "ScaleBio"), ("dmso", "DMSO Cryo grade", "ScaleChem")):
            row = batch.add(ReagentLot, tech, id=ctx.ids("reagent_lot"), reagent_type=kind, name=name,
                            supplier=supplier, lot_number=f"{kind.upper()}-S{year}", expiry_date=date(year + 1, 6, 30),
                            registered_by_id=tech.id, registered_at=datetime(year - 1, 12, 1, 9, tzinfo=UTC))
            ctx.reagents[(kind, year)] = int(row["id"])


def existing_sequences(connection: Connection, ctx: Context) -> None:
    """Continue the unit's counters: donor codes per year, patient codes per protocol, DIN and lot sequences."""
    from mscbatch.donors.models import Donor
    from mscbatch.patients.models import Patient

    for code in connection.scalars(select(Donor.code)):
        match = re.fullmatch(r"D-(\d{4})-(\d+)", code)
        if match:
            year = int(match[1])
            ctx.donor_seq[year] = max(ctx.donor_seq.get(year, 0), int(match[2]))
    ctx.taken_codes.update(connection.scalars(select(Patient.code)))
    for row in connection.execute(select(DinCounter.year, DinCounter.last_sequence)
                                  .where(DinCounter.fin == ctx.site.fin)):
        ctx.din_seq[int(row[0])] = int(row[1])
    for row in connection.execute(select(LotNumberCounter.year, LotNumberCounter.last_sequence)):
        ctx.lot_seq[int(row[0])] = int(row[1])


def save_counters(connection: Connection, fin: str, din_seq: dict[int, int], lot_seq: dict[int, int]) -> None:
    for model, values in ((DinCounter, din_seq), (LotNumberCounter, lot_seq)):
        for year, last in values.items():
            where = [model.year == year] + ([DinCounter.fin == fin] if model is DinCounter else [])
            found = connection.execute(update(model).where(*where).values(last_sequence=last))
            if not found.rowcount:
                extra = {"fin": fin} if model is DinCounter else {}
                connection.execute(insert(model).values(year=year, last_sequence=last, **extra))


def reset_sequences(connection: Connection) -> None:
    """PostgreSQL: move each id sequence past the ids written, so the application inserts after them."""
    if connection.dialect.name != "postgresql":
        return
    for name in ID_TABLES:
        connection.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), COALESCE((SELECT MAX(id) FROM \"{name}\"), 0) + 1,"
            " false)"))


def system_actor() -> Any:
    return SimpleNamespace(id=None, username="system", full_name="system")

