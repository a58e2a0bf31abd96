"""Scale data (issue 9 point 1): fill an initialised, lot-free database with a realistic shape, fast.

`seed_scale(app, bags, seed=...)` plans N bags (mscbatch.scale.shape), builds each lot's records the way the
services would (mscbatch.scale.build) and writes them in bulk, chunk by chunk, each chunk one transaction with
its audit events chained like the flush hook's (mscbatch.scale.writer). Deterministic for a seed on a given day
(dates are relative to today, so that recent bags are still in date). `matching_pairs` names the bedside
pairs that answer MATCHES, for benchmarks and tests.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import queue
import secrets
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from mscbatch.database import utcnow

CHUNK_LOTS = 200  # about 2 000 bags: small enough for building and writing to overlap
SCALE_USERS = (
    ("scale-tech", "Sam Scale (technician)", ["technician"], "tech"),
    ("scale-qc", "Quincy Scale (QC technician)", ["technician"], "tech2"),
    ("scale-qa", "Quinn Scale (QA)", ["qa"], "qa"),
    ("scale-clinician", "Dr Cleo Scale", ["clinician"], "clinician"),
    ("scale-nurse", "Nell Scale (nurse)", ["nurse"], "nurse"),
    ("scale-nurse2", "Ned Scale (nurse)", ["nurse"], "nurse2"),
)


class ScaleRefused(Exception):
    """The database is not one to fill (not initialised, or it already holds lots)."""


@dataclass(frozen=True)
class ScaleReport:
    bags: int
    lots: int
    donors: int
    patients: int
    prescriptions: int
    custody_events: int
    infusions: int
    audit_events: int
    matching_bags: int
    seconds: float

    def lines(self) -> list[str]:
        return [f"{self.bags} bags in {self.lots} lots from {self.donors} donors; {self.patients} patients, "
                f"{self.prescriptions} signed prescriptions, {self.infusions} infusions",
                f"{self.custody_events} custody events, {self.audit_events} audit events (chain extended)",
                f"{self.matching_bags} bags answer MATCHES at the bedside for their patient "
                "(mscbatch.scale.matching_pairs)",
                f"written in {self.seconds:.1f} s"]


def matching_query(limit: int | None = None) -> Any:
    """Bags on the ward (received), in date, of a released lot, actively allocated by a signed, active
    prescription, with no active hold: the bedside check answers MATCHES for the allocated patient.

    SELECT p.wristband_id, b.din || b.check_character FROM bag b
      JOIN bag_allocation a ON a.active_bag_id = b.id JOIN prescription r ON r.id = a.prescription_id
      JOIN patient p ON p.id = a.patient_id JOIN lot l ON l.id = b.lot_id
     WHERE b.status = 'received' AND b.expires_at > now() AND l.status IN ('released', 'conditional_release')
       AND r.status = 'active' AND r.locked_at IS NOT NULL AND r.weight_measured_on >= today - weight_valid_days
       AND NOT EXISTS (SELECT 1 FROM bag_hold h WHERE h.bag_id = b.id AND h.lifted_at IS NULL)
    (generated lots are never exceptional releases, and a directed lot's patient is its donor's recipient).
    """
    from mscbatch.lots.models import Bag, Lot
    from mscbatch.patients.models import Allocation, Patient, Prescription
    from mscbatch.patients.queries import protocols
    from mscbatch.recall.models import BagHold
    from mscbatch.site import site_today

    held = select(BagHold.id).where(BagHold.bag_id == Bag.id, BagHold.lifted_at.is_(None)).exists()
    valid_days = min(p.dosing.weight_valid_days for p in protocols().values())
    weighed_since = site_today() - timedelta(days=valid_days)
    query = (select(Patient.wristband_id, Bag.din + Bag.check_character, Bag.id)
             .join(Allocation, Allocation.active_bag_id == Bag.id)
             .join(Prescription, Prescription.id == Allocation.prescription_id)
             .join(Patient, Patient.id == Allocation.patient_id).join(Lot, Lot.id == Bag.lot_id)
             .where(Bag.status == "received", Bag.expires_at > utcnow(),
                    Lot.status.in_(("released", "conditional_release")), Prescription.status == "active",
                    Prescription.locked_at.is_not(None), Prescription.weight_measured_on >= weighed_since, ~held)
             .order_by(Bag.id))
    return query if limit is None else query.limit(limit)


def matching_pairs(session: Session, limit: int = 100) -> list[tuple[str, str]]:
    """(wristband, bag scan text = DIN + check character) pairs that answer MATCHES, in bag id order, evenly
    spread over all of them (not the first `limit`): a benchmark then touches the whole database. About 1 %
    of the bags match (served by ix_bag_status), so reading their ids is cheap even at a million bags."""
    rows = session.execute(matching_query()).all()
    step = max(len(rows) / max(limit, 1), 1.0)
    picked = [rows[int(i * step)] for i in range(min(limit, len(rows)))]
    return [(wristband, scan) for wristband, scan, _id in picked]


def _users(app: Any) -> dict[str, Any]:
    """The scale data's own users (random passwords: nobody signs in as them), made once."""
    from mscbatch.auth.models import User
    from mscbatch.auth.services import create_user
    from mscbatch.scale.writer import system_actor

    db = app.extensions["mscbatch.db"]
    users: dict[str, Any] = {"system": system_actor()}
    with db.new_session() as session:
        for username, full_name, roles, role_key in SCALE_USERS:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                user = create_user(session, None, username=username, full_name=full_name,
                                   password=secrets.token_urlsafe(24), roles=roles,
                                   hash_profile=app.config["PASSWORD_HASH_PROFILE"])
            users[role_key] = user
    return users


def _refuse_unless_empty(connection: Any) -> None:
    from mscbatch.audit.models import AuditHead
    from mscbatch.lots.models import Lot

    if not inspect(connection).has_table("audit_head") or \
            connection.scalar(select(AuditHead.id).where(AuditHead.id == 1)) is None:
        raise ScaleRefused("The database is not initialised: run `mscbatch init` first.")
    from mscbatch.donors.models import Donor
    from mscbatch.patients.models import Patient

    # a unit's first donors and patients come before its first lot: any of them says this database is real
    held = [f"{count} {name}" for count, name in (
        (connection.scalar(select(func.count(Lot.id))), "lot(s)"),
        (connection.scalar(select(func.count(Donor.id))), "donor(s)"),
        (connection.scalar(select(func.count(Patient.id))), "patient(s)")) if count]
    if held:
        raise ScaleRefused(f"The database already holds {' and '.join(held)}: scale data goes only into a database "
                           "without lots, donors or patients (never a unit's real database). Use a new, empty "
                           "database.")


def _context(app: Any, connection: Any, plan: Any, users: dict[str, Any], now: Any) -> Any:
    from mscbatch.donors.queries import rule_sets
    from mscbatch.lots.models import Lot
    from mscbatch.lots.queries import product_catalogue
    from mscbatch.patients.queries import protocols
    from mscbatch.release.specs import spec_for_lot
    from mscbatch.scale.context import Context
    from mscbatch.scale.records import Ids
    from mscbatch.scale.writer import existing_sequences, next_ids
    from mscbatch.site import site_config

    catalogue = product_catalogue()
    specs = {p.product_class: spec_for_lot(Lot(product_class=p.product_class, lot_number=p.id))
             for p in catalogue.products}
    ctx = Context(now=now, seed=plan.seed, users=users, site=site_config(), products=catalogue, specs=specs,
                  rule_sets=rule_sets(), protocols={p.short_name: p for p in protocols().values()},
                  ids=Ids(next_ids(connection)), boxes=[], reagents={},
                  years_span=timedelta(days=plan.years * 365 + 60))
    existing_sequences(connection, ctx)
    return ctx


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return lambda done: None
    started = time.monotonic()

    def show(done: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        rate = done / max(time.monotonic() - started, 1e-6)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} bags ({rate:,.0f}/s)")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def _write_chunk(connection: Any, key: bytes, reason: str, chunk: tuple[Any, ...]) -> int:
    """One chunk, one transaction: its rows, its events chained after the head, counters and sequences moved
    (an interrupted run leaves a usable database). Returns the number of audit events written."""
    from mscbatch.scale.writer import chain_head, reset_sequences, save_counters, write_events, write_rows

    batch, first, fin, din_seq, lot_seq = chunk
    with connection.begin():
        if first:
            _refuse_unless_empty(connection)  # again, inside the first writing transaction
        seq, last_hash = chain_head(connection)
        batch.finish(seq, last_hash, utcnow())
        write_rows(connection, batch.rows)
        write_events(connection, batch)
        save_counters(connection, fin, din_seq, lot_seq)
        reset_sequences(connection)
    return len(batch.events)


def _writer(engine: Any, key: bytes, reason: str, inbox: Any, outbox: Any) -> None:
    """The writing process: chains and writes the chunks the building process sends, in order (the chain is
    sequential), while that process builds the next ones. Reports ("ok", events) or ("error", exception)."""
    engine.dispose(close=False)  # forked: never use the parent's pooled connections
    try:
        events = 0
        with engine.connect() as connection:
            while (chunk := inbox.get()) is not None:
                events += _write_chunk(connection, key, reason, chunk)
        outbox.put(("ok", events))
    except BaseException as error:  # noqa: BLE001 - handed to the parent, which raises it
        outbox.put(("error", error if _picklable(error) else RuntimeError(traceback.format_exc())))


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001 - any failure means "send text instead"
        return False
    return True


class _Pipeline:
    """Chunks handed to a forked writing process (two cores: building and writing overlap), or written here
    when the database cannot be shared with another process (in-memory SQLite)."""

    def __init__(self, engine: Any, key: bytes, reason: str):
        self.engine, self.key, self.reason, self.events = engine, key, reason, 0
        self.process: Any = None
        self.connection: Any = None
        if engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, "", ":memory:"):
            self.connection = engine.connect()
            return
        context = multiprocessing.get_context("fork")
        self.inbox, self.outbox = context.Queue(maxsize=2), context.Queue()
        self.process = context.Process(target=_writer, args=(engine, key, reason, self.inbox, self.outbox),
                                       daemon=True)
        self.process.start()

    def send(self, chunk: tuple[Any, ...]) -> None:
        if self.process is None:
            self.events += _write_chunk(self.connection, self.key, self.reason, chunk)
            return
        while True:
            try:
                self.inbox.put(chunk, timeout=1)
                return
            except queue.Full:
                if not self.process.is_alive() or not self.outbox.empty():
                    self.close()  # raises the writer's error

    def close(self) -> int:
        """Wait for the writer; raise its error (once: a second call after an error returns 0)."""
        if self.process is None:
            if self.connection is not None:
                self.connection.close()
                self.connection = None
            return self.events
        process, self.process = self.process, None
        if process.is_alive() and self.outbox.empty():
            # a writer that stopped taking chunks cannot take the end mark either: its report (or its death)
            # is read below all the same
            with contextlib.suppress(queue.Full):
                self.inbox.put(None, timeout=5)
        while True:
            try:
                status, value = self.outbox.get(timeout=1)
                break
            except queue.Empty:
                if not process.is_alive():
                    status, value = "error", RuntimeError(f"the writing process ended with code {process.exitcode}")
                    break
        process.join(timeout=60)
        if status == "error":
            # chunks the dead writer never read would keep this process from exiting (the queue's feeder
            # thread waits for a reader): drop them, they are not in the database and never will be
            self.inbox.cancel_join_thread()
            raise value
        return int(value)


def seed_scale(app: Any, bags: int, *, seed: int = 1, progress: bool = False) -> ScaleReport:
    """Fill the app's database with `bags` bags of scale data (see the module docstring)."""
    from mscbatch.scale import shape
    from mscbatch.scale.build import LotBuilder
    from mscbatch.scale.records import Batch
    from mscbatch.scale.writer import reagent_rows, storage_rows

    started = time.monotonic()
    plan = shape.plan(bags, seed)
    engine = app.extensions["mscbatch.db"].engine
    key = app.config["AUDIT_KEY"]
    key_bytes = key.encode() if isinstance(key, str) else key
    reason = f"scale data (mscbatch seed-scale --bags {bags} --seed {seed})"
    with engine.connect() as connection:
        _refuse_unless_empty(connection)
    users = _users(app)
    now = utcnow()
    show = _progress(progress, bags)
    with engine.connect() as connection:
        ctx = _context(app, connection, plan, users, now)
        connection.rollback()  # end the reading transaction before the writing ones
    pipeline = _Pipeline(engine, key_bytes, reason)
    try:
        for start in [-1, *range(0, len(plan.lots), CHUNK_LOTS)]:
            batch = Batch(key_bytes, reason)
            if start == -1:  # storage tree and reagent lots first
                storage_rows(ctx, batch, bags)
                first_year = (now - ctx.years_span).year
                reagent_rows(ctx, batch, range(first_year, now.year + 1))
            else:
                for lot_plan in plan.lots[start:start + CHUNK_LOTS]:
                    LotBuilder(ctx, batch, lot_plan).build()
            pipeline.send((batch, start == -1, ctx.site.fin, dict(ctx.din_seq), dict(ctx.lot_seq)))
            show(ctx.counts["bags"])
    finally:
        audit_events = pipeline.close()
    with engine.connect() as connection:
        matching = int(connection.scalar(select(func.count()).select_from(matching_query().subquery())) or 0)
        connection.rollback()
    counts = ctx.counts
    return ScaleReport(bags=counts["bags"], lots=counts["lots"], donors=counts["donors"], patients=counts["patients"],
                       prescriptions=counts["prescriptions"], custody_events=counts["custody_events"],
                       infusions=counts["infusions"], audit_events=audit_events, matching_bags=matching,
                       seconds=time.monotonic() - started)
