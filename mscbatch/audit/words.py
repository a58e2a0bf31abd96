"""Record types as users say them: the audit page's filter and rows, and monitoring's refused signatures, name a
record's type in the same words."""
from __future__ import annotations

from typing import Any

from mscbatch.core.identifiers import din_shown

#: record types whose words are not their table's name with spaces
RECORD_TYPE_WORDS = {"api_token": "API token", "database": "Database (restore)", "label_print": "Label printing",
                     "label_print_item": "Label printing: one label", "release_oos": "Release OOS investigation",
                     "two_person_check": "Bedside two-person check"}


def record_type_words(entity_type: str) -> str:
    """A record type as users say it: "user_account" -> "User account"."""
    return RECORD_TYPE_WORDS.get(entity_type) or entity_type.replace("_", " ").capitalize()


#: the record types users know by a name of their own rather than an id
NAMED_TYPES = ("bag", "donor", "lot", "recall")


def known_name(entity_type: str, record: Any) -> str | None:
    """The name users know a record by, without its type: a bag's DIN as its label prints it, a donor's code, a
    lot's number, a recall's R-number; None for a record known by its id alone. The audit page and monitoring say
    a record in these same words."""
    if entity_type == "bag":
        return din_shown(record)
    if entity_type == "donor":
        return str(record.code)
    if entity_type == "lot":
        return str(record.lot_number)
    if entity_type == "recall":
        return f"R-{record.id}"
    return None
