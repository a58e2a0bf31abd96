"""The SQL statements a block of test code sends: for tests that a page or a query reads in a bounded number of
statements, or writes only what it should."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event


@contextmanager
def statements_sent(app: Any, starting: str = "") -> Iterator[list[str]]:
    """Every statement sent to the app's database in the block (only those starting with `starting`, case
    ignored, when given)."""
    engine, seen = app.extensions["mscbatch.db"].engine, []

    def sent(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(starting.upper()):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", sent)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", sent)
