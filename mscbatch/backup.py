"""Backup and restore (EU GMP Annex 11 s.7.2: backups are restored and verified, not just taken).

SQLite: the online backup API copies a consistent snapshot while the application keeps writing.
PostgreSQL: pg_dump in custom format, restored with pg_restore into an empty database.
Every restore ends with the audit chain's verification of the restored database: a copy whose trail does not
verify is reported as a failure, never as a restore.
"""
from __future__ import annotations

import shutil
import sqlite3

# subprocess runs pg_dump / pg_restore with an argument list, never through a shell.
import subprocess  # nosec B404
from pathlib import Path

from sqlalchemy import NullPool, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from mscbatch.audit.verify import verify_database
from mscbatch.core.audit_chain import ChainVerdict
from mscbatch.database import normalise_url


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


def restore(backup_file: Path, database_url: str, *, audit_key: str | bytes, force: bool = False) -> ChainVerdict:
    """Restore the backup into the database, then verify its audit chain (`mscbatch audit verify`) with the key:
    a restore is only done when its trail verifies. Raises RestoredChainBroken (a BackupError) when it does not,
    leaving the restored database in place. Returns the verdict (how many events were verified)."""
    _copy_into(backup_file, database_url, force=force)
    verdict = _verify_restored(database_url, audit_key)
    if not verdict.ok:
        raise RestoredChainBroken(database_url, verdict)
    return verdict


def _verify_restored(database_url: str, audit_key: str | bytes) -> ChainVerdict:
    engine = create_engine(normalise_url(database_url), poolclass=NullPool)
    try:
        with Session(engine) as session:
            return verify_database(session, audit_key)
    finally:
        engine.dispose()


def _copy_into(backup_file: Path, database_url: str, *, force: bool) -> None:
    url = make_url(normalise_url(database_url))
    if not backup_file.is_file():
        raise BackupError(f"no backup file at {backup_file}")
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


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (Debian package postgresql-client)")
    return path


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)  # nosec B603
    if result.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed: {result.stderr.strip()[:2000]}")
