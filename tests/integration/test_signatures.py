"""Electronic signatures: password re-entry, content binding, locking (21 CFR 11.50 / 11.70 / 11.200)."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Integer, MetaData, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mscbatch.audit.context import use_case
from mscbatch.audit.models import AuditEvent
from mscbatch.audit.trail import Audited, Lockable
from mscbatch.auth.models import User
from mscbatch.errors import AuthenticationFailed, PermissionDenied, RecordLocked, ValidationFailed
from mscbatch.signatures import services as signatures
from mscbatch.signatures.models import Signature
from tests.conftest import PASSWORD
from tests.integration.stand_in import stand_in_session


class _TestBase(DeclarativeBase):
    metadata = MetaData()


class Memo(Audited, Lockable, _TestBase):
    """A stand-in for any signable record (donor decisions, lot releases...)."""

    __tablename__ = "test_memo"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(200))

    def signed_content(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text}


@pytest.fixture
def session(app, users):  # type: ignore[no-untyped-def]
    yield from stand_in_session(app, _TestBase)


def _user(session, name):  # type: ignore[no-untyped-def]
    return session.scalar(select(User).where(User.username == name))


def _signed_memo(session, text="Release lot L-1"):  # type: ignore[no-untyped-def]
    qa = _user(session, "qa")
    with use_case(session, qa):
        memo = Memo(text=text)
        session.add(memo)
        signature = signatures.sign(session, qa, PASSWORD, memo, "Approved", required_role="qa")
    return memo, signature


def test_a_signature_shows_printed_name_utc_time_and_meaning(session):
    memo, signature = _signed_memo(session)
    assert signature.printed_name == "Qa" and signature.meaning == "Approved"
    assert signature.signed_at.tzinfo is not None
    assert "Qa" in signature.manifestation() and "UTC" in signature.manifestation()
    assert signatures.verify(session, signature, memo).valid
    assert memo.locked_at == signature.signed_at


def test_a_wrong_password_creates_no_signature_and_is_audited(session):
    qa = _user(session, "qa")
    with pytest.raises(AuthenticationFailed), use_case(session, qa):
        memo = Memo(text="will not exist")
        session.add(memo)
        signatures.sign(session, qa, "wrong password", memo, "Approved")
    assert session.scalars(select(Signature)).all() == []
    assert session.scalars(select(Memo)).all() == []  # the whole use case was rolled back
    refused = session.scalars(select(AuditEvent).where(AuditEvent.action == "signature_refused")).all()
    assert len(refused) == 1 and refused[0].actor_name == "qa"


def test_a_signer_without_the_required_role_is_refused(session):
    tech = _user(session, "technician")
    with pytest.raises(PermissionDenied), use_case(session, tech):
        memo = Memo(text="x")
        session.add(memo)
        signatures.sign(session, tech, PASSWORD, memo, "Approved", required_role="qa")


def test_a_signed_record_is_locked(session):
    memo, _ = _signed_memo(session)
    with pytest.raises(RecordLocked, match="signed and locked"), use_case(session, _user(session, "admin"), "fix"):
        memo.text = "something else"
    session.refresh(memo)
    assert memo.text == "Release lot L-1"


def test_a_signed_record_keeps_the_time_it_was_locked(session):
    """A second signing of a record already locked (a double submit whose session read it before the first
    committed) may not move its lock: the trail would show the record locked twice, at two times."""
    from datetime import timedelta

    memo, signature = _signed_memo(session)
    with pytest.raises(RecordLocked, match="locked_at cannot be changed"), use_case(session, _user(session, "qa")):
        memo.locked_at = signature.signed_at + timedelta(minutes=1)
    session.refresh(memo)
    assert memo.locked_at.replace(tzinfo=None) == signature.signed_at.replace(tzinfo=None)  # the stand-in's column


def test_a_signed_record_cannot_be_deleted(session):
    memo, _ = _signed_memo(session)
    with pytest.raises(RecordLocked), use_case(session, _user(session, "admin"), "cleanup"):
        session.delete(memo)


def test_editing_recorded_data_needs_a_reason(session):
    qa = _user(session, "qa")
    with use_case(session, qa):
        memo = Memo(text="draft")
        session.add(memo)
    with pytest.raises(ValidationFailed, match="reason is required"), use_case(session, qa):
        memo.text = "edited"
    with use_case(session, qa, "typo"):
        memo.text = "edited"


def test_verification_fails_when_the_record_changed_after_signing(session, app):
    memo, signature = _signed_memo(session)
    engine = app.extensions["mscbatch.db"].engine
    with engine.begin() as connection:  # behind the application's back
        connection.execute(Memo.__table__.update().values(text="Release lot L-2"))
    session.expire_all()
    check = signatures.verify(session, signature, session.get(Memo, memo.id))
    assert not check.valid and check.problem == "the record changed after it was signed"


def test_a_signature_moved_to_another_record_fails_verification(session):
    memo, signature = _signed_memo(session, "first")
    other, _ = _signed_memo(session, "first")  # same content, other record
    check = signatures.verify(session, signature, other)
    assert not check.valid and check.problem == "this signature belongs to another record"
    forged = Signature(**{c: getattr(signature, c) for c in ("signer_id", "printed_name", "signed_at", "meaning",
                                                             "entity_type", "content_sha256", "mac")},
                       entity_id=str(other.id))
    assert signatures.verify(session, forged, other).problem == "the signature row was altered"


def test_signatures_are_never_updated(session):
    _, signature = _signed_memo(session)
    with pytest.raises(RecordLocked), use_case(session, _user(session, "admin"), "try"):
        signature.meaning = "Rejected"


def test_a_field_changed_after_the_signature_in_the_same_transaction_is_refused(session):  # type: ignore[no-untyped-def]
    """sign() hashes the content at its flush and sets the lock; an edit made beside the lock, before the commit,
    would leave a signature vouching for another content. Before: the lock check read only the committed lock."""
    qa = _user(session, "qa")
    with pytest.raises(RecordLocked, match="signed and locked; text cannot be changed"), use_case(session, qa):
        memo = Memo(text="Release lot L-1")
        session.add(memo)
        signatures.sign(session, qa, PASSWORD, memo, "Approved")
        memo.text = "Release lot L-2"
        session.flush()
    assert session.scalars(select(Signature)).all() == [] and session.scalars(select(Memo)).all() == []
