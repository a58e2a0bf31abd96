"""Backup and restore drill (issue 9 point 3; EU GMP Annex 11 s.7.2), SQLite and PostgreSQL.

1. A writer keeps registering patients and weights through the services while `mscbatch.backup` backs the
   database up. After each of its commits the writer records the digest of every table of the source (row
   count and a hash of every row): the list of every state the source has been in, since nothing else
   writes. The restore of the live backup is identical, table by table and row by row, to ONE of those
   states, and to one that existed while the backup ran: a snapshot of the source at a commit, updated rows
   (the audit head moves at every commit) included, not merely counts between before and after. It also
   passes the integrity and foreign key checks, every audited row has its insert event and every event its
   row, and its audit chain verifies.
2. With the writer stopped, a second backup restores to a database equal to the source table by table."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event

from mscbatch.backup import backup, restore
from mscbatch.database import normalise_url
from tests.conftest import TEST_CONFIG
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.reliability.support import (
    assert_chain_verifies,
    digests_of,
    fresh_postgres,
    integrity,
    unpaired_audit_rows,
)


@contextmanager
def restored(backup_file: Path, database_url: str, tmp_path: Path, name: str) -> Iterator[str]:
    """restore() verifies the restored chain itself (it raises when it does not): the drill checks it again."""
    if database_url.startswith("sqlite"):
        target = f"sqlite:///{tmp_path / name}.sqlite3"
        restore(backup_file, target, audit_key=TEST_CONFIG["AUDIT_KEY"])
        yield target
        return
    with fresh_postgres() as target:
        restore(backup_file, target, audit_key=TEST_CONFIG["AUDIT_KEY"])
        yield target


def _closest(snapshot: dict[str, tuple[int, str]], states: list[dict[str, tuple[int, str]]]) -> str:
    """The tables in which the restore differs from the source's nearest state, with their row counts."""
    nearest = min(states, key=lambda state: sum(state[t] != snapshot[t] for t in snapshot))
    return ", ".join(f"{t}: restored {snapshot[t][0]} rows, source {nearest[t][0]}"
                     for t in sorted(snapshot) if snapshot[t] != nearest[t])


class Writer(threading.Thread):
    """Registers patients and their weights (two use cases each) until stopped; after every commit of its
    session it records the digests of the whole source database in `states` (it is the only writer, and it
    waits for the digest: each entry is a state the source was in)."""

    def __init__(self, app: Any) -> None:
        super().__init__(daemon=True)
        self.app, self.stop, self.done, self.error = app, threading.Event(), 0, None
        self.progress = threading.Condition()
        self.reader = create_engine(normalise_url(app.config["DATABASE_URL"]))
        self.states: list[dict[str, tuple[int, str]]] = [digests_of(self.reader)]

    def _record_state(self, _session: Any) -> None:
        with self.progress:
            self.states.append(digests_of(self.reader))

    def run(self) -> None:
        session = self.app.extensions["mscbatch.db"].new_session()
        event.listen(session, "after_commit", self._record_state)
        try:
            clinician = user(session, "clinician")
            while not self.stop.is_set():
                patient(session, clinician, enrol=False)
                with self.progress:
                    self.done += 1
                    self.progress.notify_all()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            session.close()
            self.reader.dispose()

    def wait_for(self, count: int) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: self.done >= count or self.error, timeout=60), self.done
        assert self.error is None, self.error

    def states_so_far(self) -> int:
        with self.progress:
            return len(self.states)


def test_backup_under_writes_is_a_consistent_snapshot_and_a_quiet_backup_restores_identical(
        app, users, tmp_path):
    url = app.config["DATABASE_URL"]
    with app.extensions["mscbatch.db"].new_session() as session:  # signed records, bags, custody events
        tech = user(session, "technician")
        lot_with_bags(session, tech, donor(session, tech))
        patient(session, user(session, "clinician"))
    writer = Writer(app)
    writer.start()
    try:
        writer.wait_for(2)
        before = digests_of(url)
        first = writer.states_so_far() - 1  # the state at the start (or one whose digest is being recorded)
        backup(url, tmp_path / "live.backup")
        last = writer.states_so_far()  # the state at the end, at the latest (its digest may still be coming)
        writer.wait_for(writer.done + 2)  # the writer kept going during and after the backup
    finally:
        writer.stop.set()
        writer.join(60)
    assert writer.error is None, writer.error
    after = digests_of(url)
    assert after["patient"][0] > before["patient"][0]
    with restored(tmp_path / "live.backup", url, tmp_path, "live") as target:
        integrity(target)
        assert_chain_verifies(target)
        assert unpaired_audit_rows(target) == []
        snapshot = digests_of(target)
        matches = [n for n, state in enumerate(writer.states) if state == snapshot]
        assert matches, f"the live restore is no state the source was ever in: {_closest(snapshot, writer.states)}"
        assert first <= matches[-1] <= last, (matches, first, last)  # a state from during the backup
        for table, (count, _) in snapshot.items():
            assert before[table][0] <= count <= after[table][0], (table, before[table], count, after[table])
        assert snapshot["bag"] == before["bag"] == after["bag"]  # untouched by the writer: identical
    assert unpaired_audit_rows(url) == []

    backup(url, tmp_path / "quiet.backup")
    with restored(tmp_path / "quiet.backup", url, tmp_path, "quiet") as target:
        integrity(target)
        assert digests_of(target) == after
        assert assert_chain_verifies(target) == after["audit_event"][0] > 0
