"""Review 13 (Part 11): a column set on a record whose values were not loaded (expired by a rolled-back use case or
expire()) is audited with its real old value and judged by the lock. SQLAlchemy keeps no old value for such a set:
the event said old None, and a column set to None was no change at all to the audit hook, so a signed record's
locked_at set to None was neither refused nor audited, while the UPDATE cleared it (the record then editable)."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Integer, MetaData, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.audit.trail import Audited, Lockable
from mscbatch.auth.models import User
from mscbatch.errors import RecordLocked
from mscbatch.signatures import services as signatures
from tests.conftest import PASSWORD
from tests.integration.stand_in import stand_in_session


class _Base(DeclarativeBase):
    metadata = MetaData()


class Note(Audited, Lockable, _Base):
    __tablename__ = "test_review13_note"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str | None] = mapped_column(String(200))

    def signed_content(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text}


@pytest.fixture
def session(app, users):  # type: ignore[no-untyped-def]
    yield from stand_in_session(app, _Base)


def _events(session, entity_type: str, entity_id: Any, field: str) -> list[tuple[str | None, str | None]]:
    return [(e.old_value, e.new_value) for e in session.scalars(
        select(AuditEvent).where(AuditEvent.entity_type == entity_type, AuditEvent.entity_id == str(entity_id),
                                 AuditEvent.field == field).order_by(AuditEvent.seq))]


def test_a_value_set_on_an_unloaded_record_is_audited_with_its_old_value(session):
    qa = session.scalar(select(User).where(User.username == "qa"))
    with use_case(session, None, "set up"):
        note = Note(text="first")
        session.add(note)
    session.expire(note)
    with use_case(session, qa, "corrected"):
        note.text = "second"
    session.expire(note)
    with use_case(session, qa, "emptied"):
        note.text = None
    assert _events(session, "test_review13_note", note.id, "text") == [("first", "second"), ("second", None)]


def test_a_signed_record_cannot_be_unlocked_through_an_unloaded_value(session):
    qa = session.scalar(select(User).where(User.username == "qa"))
    with use_case(session, qa):
        note = Note(text="Release lot L-1")
        session.add(note)
        signatures.sign(session, qa, PASSWORD, note, "Approved", required_role="qa")
    note_id = note.id
    session.expire(note)
    with pytest.raises(RecordLocked), use_case(session, qa, "unlock it"):
        note.locked_at = None
    assert session.get(Note, note_id).locked_at is not None


def test_an_account_field_emptied_on_an_unloaded_row_is_audited(session):
    with use_case(session, None, "locked"):
        nurse = session.scalar(select(User).where(User.username == "nurse"))
        nurse.failed_logins = 5
    session.expire(nurse)
    with use_case(session, None, "cleared"):
        nurse.failed_logins = 0
    assert _events(session, "user_account", nurse.id, "failed_logins")[-2:] == [("0", "5"), ("5", "0")]
