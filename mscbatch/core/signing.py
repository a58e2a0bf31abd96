"""Electronic signature binding (21 CFR 11.70): pure functions.

A signature stores the SHA-256 of the signed record's canonical content, and an HMAC over everything it
says (who, when, meaning, which record, content hash). Changing the record breaks the content hash; moving
the signature row to another record, or editing its name, time or meaning, breaks its HMAC.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from mscbatch.core.audit_chain import canonical_json, canonical_value


def content_hash(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({k: canonical_value(v) for k, v in content.items()}).encode()).hexdigest()


def signature_mac(key: bytes, *, signer_id: int, printed_name: str, signed_at: Any, meaning: str,
                  entity_type: str, entity_id: str, content_sha256: str) -> str:
    message = canonical_json({"signer_id": signer_id, "printed_name": printed_name,
                              "signed_at": canonical_value(signed_at), "meaning": meaning,
                              "entity_type": entity_type, "entity_id": entity_id,
                              "content_sha256": content_sha256})
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
