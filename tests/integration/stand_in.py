"""Stand-in audited models for the audit and signature tests: their tables exist for one test only."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def stand_in_session(app: Any, base: Any) -> Iterator[Any]:
    """A session on the app's database with `base`'s tables created for the test and dropped after it (use with
    `yield from` in a fixture)."""
    engine = app.extensions["mscbatch.db"].engine
    base.metadata.create_all(engine)
    with app.app_context():
        session = app.extensions["mscbatch.db"].new_session()
        yield session
        session.close()
    base.metadata.drop_all(engine)
