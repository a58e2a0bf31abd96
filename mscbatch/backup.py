"""Backup and restore (EU GMP Annex 11 s.7.2: backups are restored and verified, not just taken).

SQLite: the online backup API copies a consistent snapshot while the application keeps writing.
PostgreSQL: pg_dump in custom format, restored with pg_restore into an empty database.
"""
from __future__ import annotations

import shutil
import sqlite3

# subprocess runs pg_dump / pg_restore with an argument list, never through a shell.
import subprocess  # nosec B404
from pathlib import Path

from sqlalchemy.engine import make_url

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


def restore(backup_file: Path, database_url: str, *, force: bool = False) -> None:
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
