"""Backup and restore (EU GMP Annex 11 s.7.2: backups are restored and verified, not just taken).

SQLite: the online backup API copies a consistent snapshot while the application keeps writing.
PostgreSQL: pg_dump in custom format, restored with pg_restore into an empty database.
Every restore ends with the audit chain's verification of the restored database: a copy whose trail does not
verify is reported as a failure, never as a restore.

A restore over a database that already holds a trail, or onto the instance's own database (the one its checkpoint
file anchors), rolls the trail back to the backup: the events after the backup's head are gone. That is refused,
before anything is touched, unless the operator accepts the loss with a reason; then the restored database gets a
"restored" event (backup SHA-256, OS user, reason, heads before and after) and the checkpoint file is moved aside
and rewritten with the checkpoints the restored trail still holds plus one of its new head, so that `audit verify`
passes and says why.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import sqlite3

# subprocess runs pg_dump / pg_restore with an argument list, never through a shell.
import subprocess  # nosec B404
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import NullPool, create_engine, func, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mscbatch.audit import checkpoints
from mscbatch.audit.reconcile import Reconciliation, reconcile_database
from mscbatch.audit.verify import checkpoint_head, verify_checkpoints, verify_database
from mscbatch.core.audit_chain import GENESIS_HASH, ChainVerdict
from mscbatch.database import make_engine, normalise_url
from mscbatch.migrate import alembic_config

RESTORED_ACTION, RESTORED_ENTITY = "restored", "database"


class BackupError(RuntimeError):
    pass


def _libpq_url(url: str) -> str:
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def backup(database_url: str, target: Path) -> Path:
    url = make_url(normalise_url(database_url))
    target.parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "sqlite":
        source = sqlite3.connect(url.database or "")
        try:
            destination = sqlite3.connect(target)
            with destination:
                source.backup(destination)
            destination.close()
        finally:
            source.close()
        return target
    if url.get_backend_name() == "postgresql":
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={target}", _libpq_url(database_url)])
        return target
    raise BackupError(f"backup is not supported for {url.get_backend_name()}")


class RestoredChainBroken(BackupError):
    """The backup was restored, but its audit trail does not verify: it is not a trustworthy copy."""

    def __init__(self, database_url: str, verdict: ChainVerdict) -> None:
        self.verdict = verdict
        where = make_url(normalise_url(database_url)).render_as_string(hide_password=True)
        super().__init__(
            f"AUDIT TRAIL BROKEN in the restored database at event {verdict.first_bad_seq}: {verdict.problem} "
            f"({verdict.events_checked} events verified before it). The restored database is left at {where} "
            "for inspection: do not put it into use.")


class RestoredRecordsDiffer(BackupError):
    """The restored chain verifies, but records differ from what it says they are: the backup was edited."""

    def __init__(self, database_url: str, outcome: Reconciliation) -> None:
        self.outcome = outcome
        where = make_url(normalise_url(database_url)).render_as_string(hide_password=True)
        super().__init__("\n".join([*outcome.lines(), f"The restored database is left at {where} for inspection: "
                                     "do not put it into use."]))


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


class EventsWouldBeLost(BackupError):
    """Refused before anything was changed: the backup ends before events the database or the checkpoint file
    vouch for."""


@dataclass(frozen=True)
class Restored:
    verdict: ChainVerdict  # the restored chain, verified before the "restored" event was added
    lost: range  # the event seqs of the overwritten trail that the restored database does not hold
    event_seq: int | None = None  # the "restored" event (None: a plain copy into a new database)
    archived_checkpoints: Path | None = None  # the checkpoint file as it was before the restore
    records_compared: bool = True  # False: a backup of an older schema, its rows not yet reconciled with the trail
    unreadable_trail: str | None = None  # why the replaced database's trail could not be read (a damaged one)


def restore(backup_file: Path, database_url: str, *, audit_key: str | bytes, force: bool = False,
            checkpoint_file: Path | None = None, accept_lost_events: str | None = None,
            operator: str = "unknown") -> Restored:
    """Restore the backup into the database, then verify its audit chain (`mscbatch audit verify`) with the key:
    a restore is only done when its trail verifies. Raises RestoredChainBroken (a BackupError) when it does not,
    leaving the restored database in place.

    `checkpoint_file`: the instance's, given when the target is the instance's own database. Events the target
    or the checkpoint file hold beyond the backup's head would be lost: EventsWouldBeLost, nothing changed,
    unless `accept_lost_events` gives the reason. A restore over a trail, or onto the instance's database, then
    records a "restored" event and rewrites the checkpoint file (see the module's docstring)."""
    if not backup_file.is_file():
        raise BackupError(f"no backup file at {backup_file}")
    if not force:
        _refuse_existing(database_url)  # before anything is read or copied, on both engines
    key = audit_key.encode() if isinstance(audit_key, str) else audit_key
    lines = checkpoints.read_lines(checkpoint_file) if checkpoint_file else None
    anchored = _anchored(key, lines or [], checkpoint_file)
    backup_head = _backup_head(backup_file, database_url)
    accepted = bool(accept_lost_events and accept_lost_events.strip())
    unreadable = _unreadable_trail(database_url) if force else None  # without --force the target held nothing
    if unreadable is not None and not accepted:
        raise EventsWouldBeLost(_unreadable_message(backup_head, database_url, unreadable, anchored))
    before = _current_head(database_url)
    compared = _compare_trails(backup_file, database_url, anchored)
    lost = _lost_events(backup_head, before, anchored, compared)
    if lost and not accepted:
        raise EventsWouldBeLost(_loss_message(backup_head, before, anchored, lost, compared))
    _copy_into(backup_file, database_url, force=force)
    verdict = _verify_restored(database_url, audit_key)
    if not verdict.ok:
        raise RestoredChainBroken(database_url, verdict)
    records = _reconcile_restored(database_url, key)
    if records is not None and not records.ok:
        raise RestoredRecordsDiffer(database_url, records)
    kept_end = min(verdict.events_checked, lost.start - 1) if lost else verdict.events_checked
    if lines:
        _check_kept_checkpoints(database_url, audit_key, lines, kept_end, checkpoint_file)
    if before is None and checkpoint_file is None and not compared.target_events and unreadable is None:
        return Restored(verdict, lost, records_compared=records is not None)  # a copy into a new database
    archive = _archive_name(checkpoint_file) if lines is not None and checkpoint_file else None
    first = compared.first_lost
    details = {"backup_file": str(backup_file), "backup_sha256": _sha256(backup_file), "os_user": operator,
               "head_before": None if before is None else f"event {before.seq}, hash {before.hash}",
               "unreadable_trail": unreadable,
               "head_after": f"event {verdict.events_checked}, hash {backup_head.hash}",
               "lost_events": f"{lost.start}-{lost.stop - 1}" if lost else None,
               "lost_event_count": len(lost),
               "first_lost_event": f"event {first.seq} of {first.at}" if lost and first else None,
               "checkpoints_moved_to": str(archive) if archive else None}
    reason = (accept_lost_events or "").strip() if lost or unreadable else \
        ((accept_lost_events or "").strip() or "restore from backup, no audited event lost")
    event_seq, new_head = _record_restore(database_url, audit_key, details, f"{reason} (OS user {operator})")
    if archive and checkpoint_file:
        _rewrite_checkpoints(key, checkpoint_file, archive, lines or [], kept_end, new_head)
    return Restored(verdict, lost, event_seq, archive, records_compared=records is not None,
                    unreadable_trail=unreadable)


def _anchored(key: bytes, lines: list[str], path: Path | None) -> list[checkpoints.Checkpoint]:
    """The checkpoint file's lines, every one verified: a damaged or forged file cannot be reconciled."""
    entries = checkpoints.parse_lines(lines)
    for entry in entries:
        if isinstance(entry, checkpoints.Unreadable) or not hmac.compare_digest(
                checkpoints.checkpoint_mac(key, entry.seq, entry.hash, entry.at), entry.mac):
            raise BackupError(f"line {entry.line_no} of the checkpoint file {path} does not verify (forged or "
                              "damaged): nothing was restored. Run `mscbatch audit verify` and look at the file.")
    return [entry for entry in entries if isinstance(entry, checkpoints.Checkpoint)]


@dataclass(frozen=True)
class TargetEvent:
    seq: int
    at: str  # occurred_at as stored (UTC)


@dataclass(frozen=True)
class TrailComparison:
    """The target's audit trail against the backup's, event by event (seq, prev_hash and hash), read before
    anything is copied. `first_lost`: the target's first event the backup does not hold as it is (None: the
    target's trail is a prefix of the backup's); `missing`: how many of the target's events, from it on, the
    backup lacks; `off_checkpoints`: the checkpointed seqs (up to the backup's head) whose hash the backup's event
    at that seq does not have."""
    target_events: int = 0
    target_last: int = 0
    first_lost: TargetEvent | None = None
    missing: int = 0
    backup_differs: bool = False  # True: the backup holds first_lost's seq with another event
    off_checkpoints: tuple[int, ...] = ()


def _compare_trails(backup_file: Path, database_url: str,
                    anchored: list[checkpoints.Checkpoint]) -> TrailComparison:
    backup_events = iter(_backup_events(backup_file, database_url))
    wanted = {entry.seq: "" for entry in anchored}
    backup_last = 0
    if 0 in wanted:
        wanted[0] = GENESIS_HASH
    pending: tuple[int, str, str] | None = None
    count = last = missing = 0
    first: TargetEvent | None = None
    differs = False

    def backup_event(seq: int) -> tuple[int, str, str] | None:
        """The backup's event at seq (None: it has none), advancing through the backup's trail in seq order."""
        nonlocal pending, backup_last
        while True:
            if pending is None:
                pending = next(backup_events, None)
                if pending is None:
                    return None
                backup_last = pending[0]
                if pending[0] in wanted:
                    wanted[pending[0]] = pending[2]
            if pending[0] >= seq:
                return pending if pending[0] == seq else None
            pending = None

    for seq, at, prev_hash, event_hash in _target_events(database_url):
        count, last = count + 1, seq
        if first is not None:
            missing += 1
            continue
        held = backup_event(seq)
        if held is None or held[1] != prev_hash or held[2] != event_hash:
            first, missing, differs = TargetEvent(seq, at), 1, held is not None
    for seq, _prev, event_hash in backup_events:  # the rest of the backup: the hashes checkpoints name
        backup_last = seq
        if seq in wanted:
            wanted[seq] = event_hash
    off = sorted({entry.seq for entry in anchored
                  if entry.seq <= backup_last and not hmac.compare_digest(wanted[entry.seq], entry.hash)})
    return TrailComparison(count, last, first, missing, differs, tuple(off))


def _lost_events(backup_head: Head, before: Head | None, anchored: list[checkpoints.Checkpoint],
                 compared: TrailComparison) -> range:
    """The seqs of the audit events a restore would give up: from the first event of the target's trail, or of
    a checkpoint, that the backup does not hold as it is, to the newest the target or the checkpoint file
    vouches for."""
    off = set(compared.off_checkpoints)
    starts = [backup_head.seq + 1]
    if compared.first_lost is not None:
        starts.append(compared.first_lost.seq)
    starts += [entry.seq for entry in anchored if entry.seq in off]
    start = min(starts)
    newest = max([before.seq if before else 0, compared.target_last, *(entry.seq for entry in anchored)])
    return range(start, max(newest, start - 1) + 1)


def _loss_message(backup_head: Head, before: Head | None, anchored: list[checkpoints.Checkpoint],
                  lost: range, compared: TrailComparison) -> str:
    said = []
    first = compared.first_lost
    if first is not None and compared.backup_differs:
        said.append(f"this database's trail is not the backup's: its event {first.seq} (of {first.at} UTC) is "
                    f"not the backup's event {first.seq}, and the backup lacks {compared.missing} of the "
                    f"database's events ({first.seq} to {compared.target_last})")
    elif first is not None:
        said.append(f"the database now holds events up to {compared.target_last}: the backup lacks "
                    f"{compared.missing} of them, from event {first.seq} (of {first.at} UTC)")
    elif before is not None and before.seq > backup_head.seq:
        said.append(f"the database now holds events up to {before.seq}")
    off = set(compared.off_checkpoints)
    for entry in anchored:
        if entry.seq in off:
            said.append(f"the checkpoint of {entry.at} vouches for an event {entry.seq} that is not the backup's")
            break
    newest = max(anchored, key=lambda entry: entry.seq, default=None)
    if newest is not None and newest.seq > backup_head.seq:
        said.append(f"the checkpoint of {newest.at} vouches for events up to {newest.seq}")
    return (f"Refused: the backup ends at audit event {backup_head.seq}, but {' and '.join(said)}: restoring it "
            f"would lose {len(lost)} audit events ({lost.start} to {lost.stop - 1}). Nothing was changed. To "
            "restore anyway (disaster recovery), repeat with --accept-lost-events \"<reason>\": the restore and "
            "the lost events are then recorded in the audit trail.")


def _verify_restored(database_url: str, audit_key: str | bytes) -> ChainVerdict:
    engine = create_engine(normalise_url(database_url), poolclass=NullPool)
    try:
        with Session(engine) as session:
            return verify_database(session, audit_key)
    finally:
        engine.dispose()


def _reconcile_restored(database_url: str, key: bytes) -> Reconciliation | None:
    """The restored rows against their trail (`mscbatch audit reconcile`): an intact chain vouches for the events
    only, and a backup file's records can be edited without touching them. None when the backup comes from an
    older schema (reconcile reads today's tables): `mscbatch init` upgrades it, then `audit reconcile` compares."""
    engine = create_engine(normalise_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if MigrationContext.configure(connection).get_current_revision() != _head_revision():
                return None
        with Session(engine, info={"audit_key": key}) as session:
            return reconcile_database(session)
    except SQLAlchemyError as error:  # a damaged restore: said as a restore error, never a traceback
        raise BackupError(f"the restored database's records could not be compared with its audit trail: "
                          f"{error.__class__.__name__}: {str(error).splitlines()[0]}") from error
    finally:
        engine.dispose()


def _head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _copy_into(backup_file: Path, database_url: str, *, force: bool) -> None:
    url = make_url(normalise_url(database_url))
    if url.get_backend_name() == "sqlite":
        destination = Path(url.database or "")
        if destination.exists() and not force:
            raise BackupError(f"{destination} exists; restore into a new file or pass --force")
        check = sqlite3.connect(backup_file)
        try:
            if check.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"{backup_file} fails SQLite's integrity check")
        finally:
            check.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{destination}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(backup_file, destination)
        return
    if url.get_backend_name() == "postgresql":
        args = [_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={_libpq_url(database_url)}"]
        if force:
            args += ["--clean", "--if-exists"]
        _run(args + [str(backup_file)])
        return
    raise BackupError(f"restore is not supported for {url.get_backend_name()}")


def _backup_head(backup_file: Path, database_url: str) -> Head:
    """The audit head the backup holds, read before anything is restored (Head(0) when it has none: the restored
    chain then fails its verification)."""
    if make_url(normalise_url(database_url)).get_backend_name() == "sqlite":
        try:
            return _sqlite_head(backup_file) or Head(0, GENESIS_HASH)
        except sqlite3.DatabaseError as error:
            raise BackupError(f"{backup_file} is not a readable mscbatch backup: {error}") from error
    dumped = _run([_tool("pg_restore"), "--data-only", "--table=audit_head", "--file=-", str(backup_file)])
    return _copied_head(dumped)


def _backup_events(backup_file: Path, database_url: str) -> Iterator[tuple[int, str, str]]:
    """The backup's audit events as (seq, prev_hash, hash), in seq order, read without restoring anything."""
    if make_url(normalise_url(database_url)).get_backend_name() == "sqlite":
        try:
            yield from _sqlite_rows(backup_file, "SELECT seq, prev_hash, hash FROM audit_event ORDER BY seq")
        except sqlite3.DatabaseError as error:
            raise BackupError(f"{backup_file} is not a readable mscbatch backup: {error}") from error
        return
    dumped = _run([_tool("pg_restore"), "--data-only", "--table=audit_event", "--file=-", str(backup_file)])
    rows = []
    for values in _copied_rows(dumped, "audit_event"):
        try:
            rows.append((int(values["seq"]), values["prev_hash"], values["hash"]))
        except (KeyError, ValueError) as error:
            raise BackupError(f"{backup_file} holds an unreadable audit event ({error})") from error
    yield from sorted(rows)


def _target_events(database_url: str) -> Iterator[tuple[int, str, str, str]]:
    """The target's audit events as (seq, occurred_at, prev_hash, hash), in seq order (none for a new or empty
    database, or one whose trail cannot be read: there is nothing of it to lose)."""
    url = make_url(normalise_url(database_url))
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not url.database or not path.is_file():
            return
        try:
            for seq, at, prev_hash, event_hash in _sqlite_rows(
                    path, "SELECT seq, occurred_at, prev_hash, hash FROM audit_event ORDER BY seq"):
                yield int(seq), str(at), str(prev_hash), str(event_hash)
        except sqlite3.DatabaseError:
            return
        return
    from mscbatch.audit.models import AuditEvent

    engine = create_engine(normalise_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if not sa_inspect(connection).has_table(AuditEvent.__tablename__):
                return
            result = connection.execution_options(yield_per=5000).execute(
                select(AuditEvent.seq, AuditEvent.occurred_at, AuditEvent.prev_hash, AuditEvent.hash)
                .order_by(AuditEvent.seq))
            for seq, at, prev_hash, event_hash in result:
                yield int(seq), str(at), str(prev_hash), str(event_hash)
    except SQLAlchemyError:
        return
    finally:
        engine.dispose()


def _sqlite_rows(path: Path, sql: str) -> Iterator[tuple]:  # type: ignore[type-arg]
    """Rows of an SQLite file opened read-only (none when it has no audit_event table)."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_event'").fetchone():
            yield from connection.execute(sql)
    finally:
        connection.close()


def _copied_rows(dump: str, table: str) -> Iterator[dict[str, str]]:
    """The rows of one table in pg_restore's COPY text, as {column: text}."""
    lines = iter(dump.splitlines())
    for line in lines:
        if line.startswith("COPY ") and f"{table} (" in line:
            columns = [name.strip() for name in line[line.index("(") + 1:line.index(")")].split(",")]
            for row in lines:
                if row == "\\.":
                    return
                yield dict(zip(columns, row.split("\t"), strict=False))


def _unreadable_trail(database_url: str) -> str | None:
    """Why the target's audit trail cannot be read, when it holds something: a damaged database is what a restore
    is for, and the events it held cannot be counted, so the restore asks for the operator's reason instead of
    taking it as holding none (it did before). None for a missing or empty file, a database it cannot reach (the
    copy says why) and one without an audit trail (another application's, overwritten under --force)."""
    url = make_url(normalise_url(database_url))
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not url.database or not path.is_file() or path.stat().st_size == 0:
            return None
        try:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as error:
            return str(error)
        try:
            if not connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_event'"
                                      ).fetchone():
                return None
            # every page of the trail and its head, as the comparison will read them (a damaged page was read as
            # the end of the trail: the events after it were lost without a word)
            connection.execute("SELECT count(*), max(length(hash) + length(prev_hash)) FROM audit_event").fetchone()
            connection.execute("SELECT last_seq, last_hash FROM audit_head").fetchall()
        except sqlite3.Error as error:
            return str(error)
        finally:
            connection.close()
        return None
    from mscbatch.audit.models import AuditEvent, AuditHead

    engine = create_engine(normalise_url(database_url), poolclass=NullPool)
    try:
        try:
            connection = engine.connect()
        except SQLAlchemyError:
            return None
        with connection:
            try:
                if not sa_inspect(connection).has_table(AuditEvent.__tablename__):
                    return None
                connection.execute(select(func.count(), func.max(func.length(AuditEvent.hash)))).one()
                connection.execute(select(AuditHead.last_seq, AuditHead.last_hash)).all()
            except SQLAlchemyError as error:
                return (str(error.orig if getattr(error, "orig", None) else error).splitlines()
                        or [type(error).__name__])[0]
        return None
    finally:
        engine.dispose()


def _unreadable_message(backup_head: Head, database_url: str, why: str,
                        anchored: list[checkpoints.Checkpoint]) -> str:
    where = make_url(normalise_url(database_url)).render_as_string(hide_password=True)
    newest = max(anchored, key=lambda entry: entry.seq, default=None)
    vouched = (f"; the checkpoint of {newest.at} vouches for events up to {newest.seq}, at least "
               f"{newest.seq - backup_head.seq} of them lost" if newest is not None and newest.seq > backup_head.seq
               else "")
    return (f"Refused: the audit trail of {where} cannot be read ({why}), so the events it holds cannot be "
            f"counted: restoring the backup (audit events 1 to {backup_head.seq}) would lose any beyond them, "
            f"unknown{vouched}. Nothing was changed. To restore anyway (disaster recovery: a damaged database), repeat with "
            "--accept-lost-events \"<reason>\": the restore is then recorded in the audit trail, saying that the "
            "trail it replaced could not be read.")


def _refuse_existing(database_url: str) -> None:
    """Without --force, the target must not exist (SQLite) or must hold nothing (PostgreSQL): refused before
    anything is read from it or copied into it, in the same words on both engines."""
    url = make_url(normalise_url(database_url))
    if url.get_backend_name() == "sqlite":
        destination = Path(url.database or "")
        if url.database and destination.exists():
            raise BackupError(f"{destination} exists; restore into a new file or pass --force. Nothing was changed.")
        return
    if url.get_backend_name() != "postgresql":
        return
    where = url.render_as_string(hide_password=True)
    engine = create_engine(normalise_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            held = connection.execute(text(
                "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "        AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'), "
                "       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))")).one()
    except SQLAlchemyError as error:
        raise BackupError(f"cannot read the target database {where}: {str(error).splitlines()[0]}. "
                          "Nothing was changed.") from error
    finally:
        engine.dispose()
    relations, functions = int(held[0]), int(held[1])
    if relations or functions:
        raise BackupError(f"{where} exists and is not empty ({relations} tables, sequences or indexes, "
                          f"{functions} functions); restore into a new, empty database or pass --force. "
                          "Nothing was changed.")


def _sqlite_head(path: Path) -> Head | None:
    """The audit head row of an SQLite file, opened read-only (None when it has none)."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT last_seq, last_hash FROM audit_head WHERE id = 1").fetchone()
    finally:
        connection.close()
    return Head(int(row[0]), str(row[1])) if row else None


def _copied_head(dump: str) -> Head:
    """The head row in pg_restore's COPY text of audit_head."""
    lines = iter(dump.splitlines())
    for line in lines:
        if line.startswith("COPY ") and "audit_head" in line:
            columns = [name.strip() for name in line[line.index("(") + 1:line.index(")")].split(",")]
            for row in lines:
                if row == "\\.":
                    break
                values = dict(zip(columns, row.split("\t"), strict=False))
                if values.get("id") == "1":
                    return Head(int(values["last_seq"]), values["last_hash"])
    return Head(0, GENESIS_HASH)


def _current_head(database_url: str) -> Head | None:
    """The target's audit head as its record says (unverified: the database may be the damaged one being
    replaced), or None for a new or empty database, or one whose head cannot be read."""
    url = make_url(normalise_url(database_url))
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not url.database or not path.is_file():
            return None
        try:
            return _sqlite_head(path)
        except sqlite3.DatabaseError:
            return None
    engine = create_engine(normalise_url(database_url), poolclass=NullPool)
    try:
        from mscbatch.audit.models import AuditHead

        with engine.connect() as connection:
            found = connection.execute(select(AuditHead.last_seq, AuditHead.last_hash)
                                       .where(AuditHead.id == 1)).first()
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return Head(int(found[0]), str(found[1])) if found else None


class RestoredOffCheckpoints(BackupError):
    """The backup's trail is not the one the checkpoint file anchored (another instance's, or rewritten)."""


def _check_kept_checkpoints(database_url: str, audit_key: str | bytes, lines: list[str], chain_end: int,
                            path: Path | None) -> None:
    """Every checkpoint up to the restored head must name the restored trail's own event: the backup is of this
    instance's trail. Those after it are the accepted loss."""
    kept = _lines_up_to(lines, chain_end)
    engine = create_engine(normalise_url(database_url), poolclass=NullPool)
    try:
        with Session(engine) as session:
            held = verify_checkpoints(session, audit_key, kept, chain_end)
    finally:
        engine.dispose()
    if not held.ok:
        where = make_url(normalise_url(database_url)).render_as_string(hide_password=True)
        raise RestoredOffCheckpoints(f"The restored trail does not match the checkpoint file {path}: "
                                     f"{held.problem}. The backup is not of this database's trail; the restored "
                                     f"database is left at {where} for inspection: do not put it into use.")


def _lines_up_to(lines: list[str], seq: int) -> list[str]:
    parsed = checkpoints.parse_lines(lines)  # verified by _anchored: every entry is a Checkpoint
    return [lines[entry.line_no - 1] for entry in parsed
            if isinstance(entry, checkpoints.Checkpoint) and entry.seq <= seq]


def _record_restore(database_url: str, audit_key: str | bytes, details: dict[str, object],
                    reason: str) -> tuple[int, Head]:
    """The "restored" event, by the system (the OS user is in its reason and details), in the restored database."""
    from mscbatch.audit import trail
    from mscbatch.audit.context import use_case

    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with Session(engine) as session:
            session.info["audit_key"] = audit_key
            with use_case(session, None, reason):
                trail.record(session, RESTORED_ACTION, RESTORED_ENTITY, field="audit trail",
                             old=details["head_before"], new=details)
            seq, last_hash = checkpoint_head(session, audit_key)
    finally:
        engine.dispose()
    return seq, Head(seq, last_hash)


def _archive_name(path: Path) -> Path:
    stamp = checkpoints.utc_stamp().replace("-", "").replace(":", "")
    return path.with_name(f"{path.name}.before-restore-{stamp}")


def _rewrite_checkpoints(key: bytes, path: Path, archive: Path, lines: list[str], restored_end: int,
                         new_head: Head) -> None:
    """Move the file aside (kept whole, as evidence of the trail that was lost) and write the checkpoints the
    restored trail still holds, plus one of its new head (after the "restored" event). Written to a temporary
    file first: a crash leaves either the old file or the new one."""
    kept = _lines_up_to(lines, restored_end)
    kept.append(checkpoints.checkpoint_line(key, new_head.seq, new_head.hash, checkpoints.utc_stamp()))
    temporary = path.with_name(f"{path.name}.restoring")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in kept))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path, archive)
    os.replace(temporary, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def same_database(first: str, second: str) -> bool:
    """Whether two URLs name one database (SQLite: the same file, however the path is written)."""
    a, b = make_url(normalise_url(first)), make_url(normalise_url(second))
    if a.get_backend_name() == b.get_backend_name() == "sqlite":
        return bool(a.database and b.database) and Path(a.database or "").resolve() == Path(b.database or "").resolve()
    return (a.get_backend_name(), a.host, a.port or 5432, a.database) == \
        (b.get_backend_name(), b.host, b.port or 5432, b.database)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (Debian package postgresql-client)")
    return path


def _run(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False)  # nosec B603
    if result.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed: {result.stderr.strip()[:2000]}")
    return result.stdout
