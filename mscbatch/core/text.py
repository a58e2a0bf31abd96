"""Text typed or scanned: the characters that show nothing (pure)."""
from __future__ import annotations

import unicodedata

#: the Unicode categories of characters that show nothing: format (Cf: zero-width space U+200B, byte-order mark U+FEFF,
#: soft hyphen, word joiner, direction marks) and control (Cc: a scanner's suffix, GS U+001D, CR, tab)
INVISIBLE = frozenset({"Cf", "Cc"})


def first_invisible(text: str) -> str | None:
    """The first character of `text` that shows nothing (INVISIBLE), or None: pasted with a name or a lot number, it
    makes a record no one can read or a second spelling of one that reads exactly the same."""
    return next((letter for letter in text if unicodedata.category(letter) in INVISIBLE), None)


def letters_and_digits(text: str | None) -> str | None:
    """`text` in lower case with only its letters and digits: "FBS – 0099", "fbs/0099" and "FBS-0099" are one
    supplier lot to a recall (lots.queries.recall_key; SQLite calls it by that name, PostgreSQL folds alike)."""
    return None if text is None else "".join(letter for letter in text.lower() if letter.isalnum())


def identity_fold(text: str | None) -> str | None:
    """`text` as a supplier means it, for registration's identity (lots.queries.identity_key; SQLite calls it by that
    name): no spaces, lower case in every alphabet ("Lönza" = "LÖNZA"). SQLite's own lower() folds ASCII letters
    only, so "LOT-É9" and "lot-é9" were registered twice there; PostgreSQL's lower() folds them."""
    return None if text is None else text.replace(" ", "").lower()
