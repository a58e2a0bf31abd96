"""Record types as users say them: the audit page's filter and rows, and monitoring's refused signatures, name a
record's type in the same words."""
from __future__ import annotations

#: record types whose words are not their table's name with spaces
RECORD_TYPE_WORDS = {"api_token": "API token", "database": "Database (restore)", "label_print": "Label printing",
                     "label_print_item": "Label printing: one label", "release_oos": "Release OOS investigation",
                     "two_person_check": "Bedside two-person check"}


def record_type_words(entity_type: str) -> str:
    """A record type as users say it: "user_account" -> "User account"."""
    return RECORD_TYPE_WORDS.get(entity_type) or entity_type.replace("_", " ").capitalize()
