"""inline_constants: a hot statement's constants written into its SQL, its inputs still bound."""
from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, create_engine, select
from sqlalchemy.dialects import postgresql, sqlite

from mscbatch.inline_constants import inline_constants

TABLE = Table("bag_demo", MetaData(), Column("id", Integer, primary_key=True), Column("status", String),
              Column("name", String))


def _statement():
    return (select(TABLE.c.id).where(TABLE.c.status.in_(["released", "quarantine"]), TABLE.c.id > 2,
                                     TABLE.c.name != "O'Brien", TABLE.c.name == bindparam("name"))
            .order_by(TABLE.c.id))


def test_constants_are_written_and_the_input_stays_bound() -> None:
    compiled = inline_constants(_statement(), keep=("name",)).compile(dialect=postgresql.psycopg.dialect())
    sql = str(compiled)
    assert "IN ('released', 'quarantine')" in sql
    assert "> 2" in sql
    assert "'O''Brien'" in sql  # the dialect's own quoting: a quote in a constant cannot end the literal
    assert "POSTCOMPILE" not in sql
    assert set(compiled.binds) == {"name"}


def test_without_inlining_the_same_statement_binds_every_constant() -> None:
    compiled = _statement().compile(dialect=sqlite.dialect())
    assert len(compiled.binds) > 1 and "POSTCOMPILE" in str(compiled)  # what inline_constants removes


def test_the_inlined_statement_finds_the_same_rows() -> None:
    engine = create_engine("sqlite://")
    TABLE.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(TABLE.insert(), [
            {"id": n, "status": status, "name": name} for n, status, name in [
                (1, "released", "A"), (3, "released", "A"), (4, "quarantine", "A"), (5, "recalled", "A"),
                (6, "released", "B"), (7, "released", "O'Brien")]])
        for name in ("A", "B", "O'Brien", "x' OR '1'='1"):
            plain = connection.execute(_statement(), {"name": name}).scalars().all()
            inlined = connection.execute(inline_constants(_statement(), keep=("name",)), {"name": name}).scalars().all()
            assert inlined == plain
        assert connection.execute(inline_constants(_statement(), keep=("name",)), {"name": "A"}).scalars().all() == [3, 4]


def test_the_bedside_facts_statement_binds_only_its_three_inputs() -> None:
    from mscbatch.custody.checks import _facts_statement

    compiled = _facts_statement().compile(dialect=postgresql.psycopg.dialect())
    assert set(compiled.binds) == {"din", "wristband", "since"}
    assert "POSTCOMPILE" not in str(compiled)
