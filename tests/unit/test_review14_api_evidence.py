"""Review 14: an evidence bundle whose member bytes were changed inside the ZIP (its deflated data, its compression
method or its flags) is INVALID naming that file; `mscbatch evidence verify` used to die with a zlib.error or
NotImplementedError traceback instead of naming the changed file."""
from __future__ import annotations

import io
import struct
import zipfile

import pytest

from mscbatch.core import evidence

KEY = "k" * 32
BODY = b'{"events": [' + b'{"kind": "thawed"}, ' * 200 + b'{}]}'


def _bundle() -> tuple[bytes, zipfile.ZipInfo]:
    data = evidence.pack({"custody-timeline.json": BODY}, KEY, subject={"bag_id": 1}, generated_at="2026-12-05")
    return data, zipfile.ZipFile(io.BytesIO(data)).getinfo("custody-timeline.json")


def _central_entry(data: bytes, name: str) -> int:
    """Offset of the member's central directory entry (the one zipfile reads the method and flags from)."""
    entry = data.index(b"PK\x01\x02")
    while data[entry + 46:entry + 46 + len(name)] != name.encode():
        entry = data.index(b"PK\x01\x02", entry + 4)
    return entry


def test_the_untouched_bundle_is_valid() -> None:
    assert evidence.verify(_bundle()[0], KEY).valid


def test_a_member_whose_deflated_bytes_were_changed_is_invalid_and_named() -> None:
    data, info = _bundle()
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    tampered = bytearray(data)
    tampered[start] ^= 0xFF  # the first byte of the deflate stream: zlib cannot decode it any more
    verdict = evidence.verify(bytes(tampered), KEY)
    assert not verdict.valid and verdict.bad_file == "custody-timeline.json"


@pytest.mark.parametrize("offset, value", [(10, 99), (8, 0x0001)], ids=["compression method", "encrypted flag"])
def test_a_member_whose_central_directory_entry_was_changed_is_invalid_and_named(offset: int, value: int) -> None:
    data, _info = _bundle()
    entry = _central_entry(data, "custody-timeline.json")
    tampered = bytearray(data)
    tampered[entry + offset:entry + offset + 2] = struct.pack("<H", value)
    verdict = evidence.verify(bytes(tampered), KEY)
    assert not verdict.valid and verdict.bad_file == "custody-timeline.json"
