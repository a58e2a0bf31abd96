"""One use case = one transaction, with the actor and reason the audit hook needs."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session


def actor_of(user: Any) -> tuple[int | None, str]:
    if user is None:
        return (None, "system")
    if isinstance(user, tuple):
        return user
    return (user.id, user.username)


@contextmanager
def use_case(session: Session, actor: Any, reason: str | None = None) -> Iterator[Session]:
    """Run one use case: everything inside commits together, or nothing does.

    `actor` is a User, (id, name) or None for the system. `reason` is written on every audit event of the
    transaction (required by the audit hook for edits of recorded data).
    """
    session.info["actor"] = actor_of(actor)
    session.info["audit_reason"] = reason.strip() if reason else None
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop("actor", None)
        session.info.pop("audit_reason", None)


@contextmanager
def acting_as(session: Session, person: Any) -> Iterator[Session]:
    """Inside a use case, attribute the audit events of what `person` does to them, not to the use case's actor
    (e.g. the second person of a bedside check: their confirmation and their signature are theirs, though the
    person who scanned runs the use case). What is pending is flushed first under the actor it belongs to, and
    what is done inside is flushed before the actor is restored. The reason and the transaction are the use case's.
    On an error nothing more is flushed: the use case rolls back."""
    if "actor" not in session.info:
        raise RuntimeError("acting_as() is used inside use_case()")
    session.flush()
    before = session.info["actor"]
    session.info["actor"] = actor_of(person)
    try:
        yield session
        session.flush()
    finally:
        if "actor" in session.info:  # a nested use case (a refused signature's) ends by removing it: left so
            session.info["actor"] = before
