"""audit verify's signature check writes the signature's MAC message directly (audit.verify.row_signature_mac): it
must be core.signing.signature_mac's, byte for byte, whatever the text holds, or every signature would read as
altered (or a forged one as intact)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mscbatch.audit.verify import row_signature_mac
from mscbatch.core.signing import signature_mac

KEY = b"k" * 32
NAMES = ["Quinn QA", 'Pa"weł \\ Łukasiewicz', "Zoë ≤ 报告\n\t", "\u2028\u0000", "", "Иван Петров"]
INSTANTS = [datetime(2026, 3, 29, 1, 30, tzinfo=UTC), datetime(2026, 10, 25, 2, 30, 0, 5, tzinfo=UTC),
            datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=1))), datetime(2026, 1, 1, 12)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("signed_at", INSTANTS)
def test_the_direct_message_is_signature_macs(name: str, signed_at: datetime) -> None:
    fields = {"signer_id": 42, "printed_name": name, "signed_at": signed_at, "meaning": f"“Released” {name}",
              "entity_type": "release_disposition", "entity_id": "17", "content_sha256": "ab" * 32}
    assert row_signature_mac(KEY, *fields.values()) == signature_mac(KEY, **fields)


@pytest.mark.parametrize("odd", [{"signer_id": None}, {"signer_id": True}, {"printed_name": None}, {"signed_at": None},
                                 {"entity_id": 17}, {"signer_id": "42"}])
def test_values_of_other_types_go_through_signature_mac(odd: dict) -> None:
    fields = {"signer_id": 42, "printed_name": "Quinn QA", "signed_at": INSTANTS[0], "meaning": "Released",
              "entity_type": "release_disposition", "entity_id": "17", "content_sha256": "ab" * 32, **odd}
    assert row_signature_mac(KEY, *fields.values()) == signature_mac(KEY, **fields)
