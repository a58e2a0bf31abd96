"""Rows the unit of work deletes by itself (delete-orphan, cascades) are audited and refused like session.delete().

session.deleted never lists a row removed from its parent's collection: the audit hook reads the flush instead.
Stand-in models, like tests/integration/test_signatures.py's Memo: a folder owning notes (lockable) and entries
(append-only), both removed with the folder or when taken out of its lists."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import ForeignKey, Integer, MetaData, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.audit.trail import Audited, Lockable
from mscbatch.auth.models import User
from mscbatch.database import utcnow
from mscbatch.errors import RecordLocked
from tests.integration.stand_in import stand_in_session


class _TestBase(DeclarativeBase):
    metadata = MetaData()


class Folder(Audited, _TestBase):
    __tablename__ = "test_folder"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notes: Mapped[list[Note]] = relationship(cascade="all, delete-orphan")
    entries: Mapped[list[Entry]] = relationship(cascade="all, delete-orphan")


class Note(Audited, Lockable, _TestBase):
    __tablename__ = "test_note"
    __audit_requires_reason__ = False
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("test_folder.id"))
    text: Mapped[str] = mapped_column(String(100))


class Entry(Audited, _TestBase):
    __tablename__ = "test_entry"
    __append_only__ = True
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("test_folder.id"))
    text: Mapped[str] = mapped_column(String(100))


@pytest.fixture
def session(app, users):  # type: ignore[no-untyped-def]
    yield from stand_in_session(app, _TestBase)


def _admin(session):  # type: ignore[no-untyped-def]
    return session.scalar(select(User).where(User.username == "admin"))


def _folder(session, notes=("a", "b"), entries=()):  # type: ignore[no-untyped-def]
    with use_case(session, _admin(session)):
        folder = Folder(notes=[Note(text=t) for t in notes], entries=[Entry(text=t) for t in entries])
        session.add(folder)
    return folder


def _last_seq(session) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.coalesce(func.max(AuditEvent.seq), 0)))


def _deletes_since(session, seq):  # type: ignore[no-untyped-def]
    return session.scalars(select(AuditEvent).where(AuditEvent.seq > seq, AuditEvent.action == "delete")
                           .order_by(AuditEvent.seq)).all()


def test_a_row_taken_out_of_its_parents_list_gets_a_delete_event_with_the_reason(session):
    folder = _folder(session)
    note = folder.notes[0]
    before = _last_seq(session)
    with use_case(session, _admin(session), "filed twice"):
        folder.notes.remove(note)
    assert session.get(Note, note.id) is None
    [event] = _deletes_since(session, before)
    assert (event.entity_type, event.entity_id, event.reason, event.actor_name) == \
        ("test_note", str(note.id), "filed twice", "admin")
    assert json.loads(event.old_value)["text"] == "a"
    # the orphan was dirty too (its parent changed): no update event beside its delete
    assert session.scalar(select(func.count()).where(AuditEvent.seq > before)) == 1


def test_a_row_both_orphaned_and_deleted_gets_one_event(session):
    folder = _folder(session)
    note = folder.notes[0]
    before = _last_seq(session)
    with use_case(session, _admin(session), "filed twice"):
        folder.notes.remove(note)
        session.delete(note)
    assert [e.entity_id for e in _deletes_since(session, before)] == [str(note.id)]


def test_deleting_the_parent_audits_every_row_deleted_with_it(session):
    folder = _folder(session, notes=("a", "b"))
    ids = sorted([str(folder.id)] + [f"n{n.id}" for n in folder.notes])
    before = _last_seq(session)
    with use_case(session, _admin(session), "opened by mistake"):
        session.delete(folder)
    events = _deletes_since(session, before)
    assert sorted(e.entity_id if e.entity_type == "test_folder" else f"n{e.entity_id}" for e in events) == ids
    assert {e.reason for e in events} == {"opened by mistake"}


def test_a_locked_row_is_not_deleted_by_taking_it_out_of_its_parents_list(session):
    folder = _folder(session)
    note = folder.notes[0]
    with use_case(session, _admin(session)):
        note.locked_at = utcnow()  # as a signature locks it
    before = _last_seq(session)
    with pytest.raises(RecordLocked, match="cannot be deleted"), use_case(session, _admin(session), "tidy"):
        folder.notes.remove(note)
    session.expire_all()
    assert session.get(Note, note.id) is not None and _last_seq(session) == before


def test_an_append_only_row_is_not_deleted_by_taking_it_out_of_its_parents_list(session):
    folder = _folder(session, notes=(), entries=("first",))
    entry = folder.entries[0]
    before = _last_seq(session)
    with pytest.raises(RecordLocked, match="cannot be deleted"), use_case(session, _admin(session), "tidy"):
        folder.entries.remove(entry)
    session.expire_all()
    assert session.get(Entry, entry.id) is not None and _last_seq(session) == before
