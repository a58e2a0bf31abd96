"""A statement run at every request, with the constants of its conditions written into its SQL text.

`Prescription.status == "active"` makes a bound parameter: the statement's SQL says `status = ?` and the value is
bound at every execution. The bedside check's one statement (custody.checks) joins the owning domains' own
subqueries and so carries some seventy such constants, two of them IN lists that SQLAlchemy expands into the SQL
text at each execution; binding and expanding them cost about as much as SQLite's whole run of the statement.

`inline_constants()` returns the same statement with each constant written as an SQL literal, rendered once by the
dialect's own literal rendering (the cached compilation then holds the finished text), leaving only the parameters
named in `keep` to bind. The values are the code's own constants (status words, numbers), never user input: user
input only ever comes in through the kept parameters. PostgreSQL plans its prepared statement with the constants
seen, as it would for the same text typed by hand.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


class InlineConstant(ColumnElement[Any]):
    """A constant rendered as an SQL literal at compile time (a list as `(a, b)` for IN)."""

    inherit_cache = False  # its own cache key, from _traverse_internals: the value is part of the SQL text
    _traverse_internals = [("value", InternalTraversal.dp_plain_obj), ("type", InternalTraversal.dp_type)]

    def __init__(self, value: Any, type_: Any) -> None:
        self.value = tuple(value) if isinstance(value, list) else value
        self.type = type_


@compiles(InlineConstant)
def _render(element: InlineConstant, compiler: Any, **kw: Any) -> str:
    if isinstance(element.value, tuple):
        return "(" + ", ".join(compiler.render_literal_value(v, element.type) for v in element.value) + ")"
    return compiler.render_literal_value(element.value, element.type)


def inline_constants(statement: Any, keep: Collection[str]) -> Any:
    """The statement with every bound constant written into its text, but the parameters named in `keep` (which
    must have no value of their own: they are the statement's inputs)."""
    def replace(element: Any, **_: Any) -> Any:
        if not isinstance(element, BindParameter) or element.key in keep:
            return None
        if element.callable is not None or element.value is None:  # not a constant known now: left to bind
            return None
        return InlineConstant(element.value, element.type)

    return visitors.replacement_traverse(statement, {}, replace)
