"""Electronic signatures as one reusable service (21 CFR 11.50, 11.70, 11.200).

sign() re-checks the signer's password (the second component beside the signed-in identity), writes the
signature and locks the record, inside the caller's use case. A wrong password creates no signature: the
caller's transaction is rolled back and the refusal alone is committed to the audit trail.

A signable record is a mapped object with the Lockable mixin and a `signed_content()` method returning the
fields the signature vouches for.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from mscbatch.audit import trail
from mscbatch.audit.context import use_case
from mscbatch.auth.lockout import count_wrong_password
from mscbatch.auth.models import User
from mscbatch.auth.passwords import verify_password
from mscbatch.auth.services import admin_beside_words, password_too_old
from mscbatch.core.signing import content_hash, signature_mac
from mscbatch.database import utcnow
from mscbatch.errors import AuthenticationFailed, PermissionDenied
from mscbatch.signatures.models import Signature


class PasswordNotTyped(AuthenticationFailed):
    """No password typed: nothing to verify, so nothing is counted or audited as a wrong password (a blank is a
    slip of the hand, not a guess). An AuthenticationFailed, so that callers that name which person's password was
    refused (the bedside check's scanner) still do; 422 like any other empty required field."""

    status = 422
    title = "Invalid input"


#: the answer to a signature with an empty password field
PASSWORD_NOT_TYPED = "Type your password to sign. Nothing was signed."


class Signable(Protocol):
    __tablename__: str
    locked_at: Any

    def signed_content(self) -> dict[str, Any]: ...


def _content(record: Signable, meaning: str) -> dict[str, Any]:
    """What a signature with this meaning vouches for. A record signed twice for different things (a recall's
    start, then its end) says so with `signed_content_for(meaning)`; others have one content."""
    per_meaning = getattr(record, "signed_content_for", None)
    return per_meaning(meaning) if per_meaning is not None else record.signed_content()


_PARENTS = (("lot_id", "lot"), ("donor_id", "donor"), ("patient_id", "patient"))


def _parent_of(record: Signable) -> tuple[str, str] | None:
    """The lot, donor or patient a record belongs to (where a refused signature on a record that was to be created,
    a disposition, a decision, a prescription, is filed: that record does not exist)."""
    for attribute, table in _PARENTS:
        value = getattr(record, attribute, None)
        if value is not None:
            return table, str(value)
    return None


def sign(session: Session, signer: User, password: str, record: Signable, meaning: str,
         *, required_role: str | None = None, lock: bool = True) -> Signature:
    """Sign `record` inside the current transaction (call it within the use case that it concludes)."""
    if required_role and not signer.has_role(required_role):
        raise PermissionDenied(f"Only a user with the {required_role} role may sign '{meaning}'.")
    if signer.locked_out_at is not None or not signer.is_enabled:
        raise AuthenticationFailed("Signature refused: this account is locked or disabled. Ask an administrator.")
    why = admin_beside_words(signer)  # locked and disabled are refused above: the rest of User.is_active
    if why:  # an account not allowed to sign in may not sign either
        raise PermissionDenied(f"Signature refused: the account {signer.username} is not active, as {why}. Nothing "
                               "was signed.")
    # the administrator who chose the password could sign; a password past its age is changed before any signature
    if getattr(signer, "must_change_password", False) or (isinstance(signer, User) and password_too_old(signer)):
        raise PermissionDenied("Signature refused: this account's password must be changed first (an administrator "
                               "chose it, or it is too old). Change it on My account; nothing was signed.")
    if not password:  # refused before verification: an empty field is not a wrong password and is not counted
        raise PasswordNotTyped(PASSWORD_NOT_TYPED, field="password")
    if not verify_password(signer.password_hash, password):
        own, parent = (record.__tablename__, trail.entity_id_of(record)), _parent_of(record)
        session.rollback()  # nothing of the refused use case is kept ...
        # a record the refused use case created (flushed or not) is gone with it: its lot, donor or patient is audited
        gone = inspect(record).transient or own[1] in ("", "None")
        entity = (parent or (record.__tablename__, None)) if gone else own
        with use_case(session, signer, "wrong password at signature"):  # ... but the refusal is, and it counts
            # counted on the account's row read afresh under its lock; the lockout ends the account's sessions
            locked = count_wrong_password(signer, session)
            trail.record(session, "signature_refused", entity[0], entity[1], new=meaning)
        if locked:
            raise AuthenticationFailed("Signature refused: wrong password. Nothing was signed. The account is now "
                                       "locked after too many wrong passwords; ask an administrator to unlock it.")
        raise AuthenticationFailed("Signature refused: wrong password. Nothing was signed.")
    if signer.failed_logins:
        signer.failed_logins = 0  # a right password ends the run of failures, as at sign-in
    session.flush()  # the record needs its id and final content before it is hashed
    signed_at = utcnow()
    entity_type, entity_id = record.__tablename__, trail.entity_id_of(record)
    digest = content_hash(_content(record, meaning))
    signature = Signature(signer_id=signer.id, printed_name=signer.full_name, signed_at=signed_at, meaning=meaning,
                          entity_type=entity_type, entity_id=entity_id, content_sha256=digest,
                          mac=signature_mac(trail.audit_key(session), signer_id=signer.id, printed_name=signer.full_name,
                                            signed_at=signed_at, meaning=meaning, entity_type=entity_type,
                                            entity_id=entity_id, content_sha256=digest))
    session.add(signature)
    if lock and record.locked_at is None:
        record.locked_at = signed_at
    return signature


@dataclass(frozen=True)
class SignatureCheck:
    valid: bool
    problem: str | None = None


def verify(session: Session, signature: Signature, record: Signable) -> SignatureCheck:
    """Is this signature genuine, attached to this record, and is the record unchanged since?"""
    entity_type, entity_id = record.__tablename__, trail.entity_id_of(record)
    expected_mac = signature_mac(trail.audit_key(session), signer_id=signature.signer_id, printed_name=signature.printed_name,
                                 signed_at=signature.signed_at, meaning=signature.meaning,
                                 entity_type=signature.entity_type, entity_id=signature.entity_id,
                                 content_sha256=signature.content_sha256)
    # constant time (a MAC is a secret's output), on bytes: a tampered non-ASCII value must not raise TypeError
    if not hmac.compare_digest(expected_mac.encode(), (signature.mac or "").encode()):
        return SignatureCheck(False, "the signature row was altered")
    if (signature.entity_type, signature.entity_id) != (entity_type, entity_id):
        return SignatureCheck(False, "this signature belongs to another record")
    if content_hash(_content(record, signature.meaning)) != signature.content_sha256:
        return SignatureCheck(False, "the record changed after it was signed")
    return SignatureCheck(True)


def signatures_of(session: Session, record: Signable) -> list[Signature]:
    return list(session.scalars(select(Signature).where(
        Signature.entity_type == record.__tablename__, Signature.entity_id == trail.entity_id_of(record))
        .order_by(Signature.signed_at, Signature.id)))
