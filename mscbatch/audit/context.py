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
