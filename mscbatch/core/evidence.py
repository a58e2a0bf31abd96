"""Inspectors' evidence bundle: a ZIP of files, a manifest of their SHA-256 hashes, and an HMAC over the manifest.

Pure functions (no database, no Flask): `pack` builds the ZIP from named file contents, `verify` checks one
offline from its bytes and the key, so that `mscbatch evidence verify FILE.zip` needs nothing but the key.

Layout of the ZIP:
- the evidence files (any names, no directories outside the archive);
- manifest.json: {"format": FORMAT, "subject": {...}, "generated_at": ..., "files": [{"name", "size",
  "sha256"}, ...]} (UTF-8 JSON, sorted keys);
- manifest.hmac: hex HMAC-SHA256 of the exact bytes of manifest.json under the key (the site's AUDIT_KEY).

Verification stops at the first problem and names the file: the HMAC first (a changed manifest or HMAC fails
there), then every listed file in manifest order (missing, wrong size or wrong SHA-256), then any member the
manifest does not list.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

FORMAT = "mscbatch-evidence/1"
MANIFEST = "manifest.json"
MANIFEST_HMAC = "manifest.hmac"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # member timestamps carry no meaning; generated_at is in the manifest


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def manifest_mac(manifest: bytes, key: str | bytes) -> str:
    return hmac.new(_key_bytes(key), manifest, hashlib.sha256).hexdigest()


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def pack(files: dict[str, bytes], key: str | bytes, *, subject: dict[str, Any], generated_at: str) -> bytes:
    """The evidence ZIP: the files in the given order, then manifest.json and manifest.hmac."""
    if not key:
        raise ValueError("An evidence bundle needs a key.")
    for name in files:
        if name in (MANIFEST, MANIFEST_HMAC) or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"Not a valid evidence file name: {name!r}")
    manifest = {"format": FORMAT, "subject": subject, "generated_at": generated_at,
                "hash": "sha256", "mac": "hmac-sha256",
                "files": [{"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                          for name, data in files.items()]}
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(_member(name), data)
        archive.writestr(_member(MANIFEST), manifest_bytes)
        archive.writestr(_member(MANIFEST_HMAC), (manifest_mac(manifest_bytes, key) + "\n").encode("ascii"))
    return buffer.getvalue()


@dataclass(frozen=True)
class Verdict:
    valid: bool
    bad_file: str | None = None
    problem: str = ""
    files_checked: int = 0

    def __str__(self) -> str:
        if self.valid:
            return f"VALID: manifest HMAC correct, {self.files_checked} files match their SHA-256."
        where = f" {self.bad_file}:" if self.bad_file else ""
        return f"INVALID:{where} {self.problem}"


def verify(data: bytes, key: str | bytes) -> Verdict:
    """Check an evidence ZIP offline: the manifest's HMAC under the key, then every file's size and SHA-256."""
    if not key:
        return Verdict(False, None, "no key given: the manifest HMAC cannot be checked")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        return Verdict(False, None, f"not a readable ZIP file ({error})")
    contents: dict[str, bytes] = {}
    for name in names:
        # a member's compressed bytes changed (zlib.error), its method or flags changed (NotImplementedError,
        # RuntimeError for "encrypted"): a tampered file, named, never a traceback from the verify command
        try:
            contents[name] = archive.read(name)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError, OSError,
                ValueError, EOFError) as error:
            return Verdict(False, name, f"cannot be read from the ZIP, its bytes were changed ({error})")
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        return Verdict(False, duplicate, "appears twice in the ZIP")
    for required in (MANIFEST, MANIFEST_HMAC):
        if required not in contents:
            return Verdict(False, required, "missing")
    manifest_bytes = contents[MANIFEST]
    expected = manifest_mac(manifest_bytes, key)
    try:
        given = contents[MANIFEST_HMAC].decode("ascii").strip()
    except UnicodeDecodeError:
        given = ""
    if not hmac.compare_digest(given, expected):
        return Verdict(False, MANIFEST_HMAC, "the HMAC over manifest.json does not match (manifest or HMAC "
                                             "changed, or a different key)")
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
        listed = [(str(f["name"]), int(f["size"]), str(f["sha256"])) for f in manifest["files"]]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        return Verdict(False, MANIFEST, f"not a valid manifest ({error})")
    if manifest.get("format") != FORMAT:
        return Verdict(False, MANIFEST, f"unknown format {manifest.get('format')!r}")
    for name, size, sha256 in listed:
        if name not in contents:
            return Verdict(False, name, "listed in the manifest but missing from the ZIP")
        body = contents[name]
        if len(body) != size or not hmac.compare_digest(hashlib.sha256(body).hexdigest(), sha256):
            return Verdict(False, name, "its SHA-256 does not match the manifest (the file was changed)")
    extra = [n for n in names if n not in {name for name, _s, _h in listed} | {MANIFEST, MANIFEST_HMAC}]
    if extra:
        return Verdict(False, extra[0], "in the ZIP but not listed in the manifest")
    return Verdict(True, None, "", len(listed))
