"""The pure core: rules, arithmetic and identifiers.

Nothing in this package imports Flask, SQLAlchemy or anything that touches a request or a database; it is
tested with plain values (tests/unit).
"""
