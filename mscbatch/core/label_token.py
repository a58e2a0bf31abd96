"""Signed, patient-data-free tokens for the QR code on bag labels (DOMAIN.md section 7 and 8, issue 7).

ISBT 128 identifies a product by its Code 128 / Data Matrix symbols; GS1 warns against QR for product
identification. Our QR is an extra symbol for the ward: a URL to the app's verification page holding only the
bag reference (DIN + K, or a bag id) and an HMAC-SHA256 signature, so that a phone camera opens the right page
and a forged or altered code is detected before the bedside check (chain of identity, 21 CFR 1271.290 /
1271.370 labelling; no patient identity on the symbol, which anyone can read).

Token text: "<bag_ref>.<signature>", signature = the first 16 bytes (128 bits) of
HMAC-SHA256(key, "mscbatch-label-token-v1" NUL bag_ref), base32 without padding (26 characters).
Base32 and the upper-case bag reference make the token case-insensitive: a keyboard-wedge scanner typing
with Caps Lock on still verifies, and the QR can use the compact alphanumeric mode for that part.
The signature does not cover the host, so labels stay valid when the server moves.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re

TOKEN_VERSION = b"mscbatch-label-token-v1"
SIGNATURE_BYTES = 16
SIGNATURE_CHARS = 26
"""16 bytes in base32 without padding: 128 bits, far beyond any online guessing at a bedside."""

VERIFY_PATH = "/v/"
BAG_REF_RE = re.compile(r"^[A-Z0-9][A-Z0-9*-]{0,39}$")
"""Upper-case letters, digits, '-' and '*' (a MOD 37-2 check character K can be '*')."""
_SIGNATURE_RE = re.compile(r"^[A-Z2-7]+$")
_URL_RE = re.compile(r"^https?://[^\s/]+(?:/[^\s]*)?/v/([^/\s]*)$", re.IGNORECASE)


#: TokenInvalid.kind of a scan not read whole or not a label code of ours by its shape (a read cut short, a damaged
#: label, another code, nothing scanned): scanning the label again may read it
UNREADABLE = "unreadable"
#: TokenInvalid.kind of a code that reads as a label code but is not one this unit issued: a whole signature that
#: does not match, or a code altered (a signature longer than any label prints, a character no label prints)
FORGED = "forged"
KINDS = (UNREADABLE, FORGED)


class TokenInvalid(ValueError):
    """A scanned label code is not a valid signed token. `reason` says why in plain words; `kind` (UNREADABLE or
    FORGED) what it means for the bag, for callers to decide on (never on the words of `reason`)."""

    def __init__(self, reason: str, kind: str):
        if kind not in KINDS:
            raise ValueError(f"TokenInvalid kind {kind!r} must be one of {', '.join(KINDS)}")
        self.reason = reason
        self.kind = kind
        super().__init__(reason)

    @property
    def forged(self) -> bool:
        """The label itself is not genuine (forged or altered): not a read to try again."""
        return self.kind == FORGED


def _key_bytes(key: bytes | str) -> bytes:
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not raw:
        raise ValueError("the label signing key is empty (set MSCBATCH_LABEL_KEY)")
    return raw


def check_bag_ref(bag_ref: str) -> str:
    """A bag reference: 1-40 upper-case letters, digits, '-' or '*' (e.g. the DIN + K "X9999260000017")."""
    if not isinstance(bag_ref, str) or not BAG_REF_RE.match(bag_ref):
        raise ValueError(
            f"bag reference {bag_ref!r} must be 1-40 upper-case letters, digits, '-' or '*' (e.g. DIN + K)")
    return bag_ref


def sign_bag_ref(bag_ref: str, key: bytes | str) -> str:
    """The 26-character base32 signature of a bag reference."""
    check_bag_ref(bag_ref)
    mac = hmac.new(_key_bytes(key), TOKEN_VERSION + b"\x00" + bag_ref.encode("ascii"), hashlib.sha256)
    return base64.b32encode(mac.digest()[:SIGNATURE_BYTES]).decode("ascii").rstrip("=")


def make_token(bag_ref: str, key: bytes | str) -> str:
    """The bare token "<bag_ref>.<signature>", as a keyboard-wedge scanner types it."""
    return f"{bag_ref}.{sign_bag_ref(bag_ref, key)}"


def make_token_url(base_url: str, bag_ref: str, key: bytes | str) -> str:
    """The QR content: "<base_url>/v/<bag_ref>.<signature>", e.g. https://host/v/G123417654321A.<sig>."""
    base = base_url.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", base):
        raise ValueError(f"base URL {base_url!r} must start with http:// or https:// and hold no spaces")
    return f"{base}{VERIFY_PATH}{make_token(bag_ref, key)}"


def _has_token_shape(token: str) -> bool:
    """The upper-cased text is "<bag reference>.<signature>" with a whole signature (26 base32 characters)."""
    bag_ref, dot, signature = token.partition(".")
    return (bool(dot) and BAG_REF_RE.fullmatch(bag_ref) is not None and len(signature) == SIGNATURE_CHARS
            and _SIGNATURE_RE.fullmatch(signature) is not None)


def verify_token(text: str, key: bytes | str) -> str:
    """Return the bag reference of a scanned token, or raise TokenInvalid saying why.

    Accepts the full URL (camera scan) or the bare token (keyboard wedge), with surrounding whitespace and in
    any letter case. The signature is compared in constant time (hmac.compare_digest).
    """
    key_raw = _key_bytes(key)
    if not isinstance(text, str):
        raise TokenInvalid("the scanned code is not text", UNREADABLE)
    scanned = text.strip()
    if not scanned:
        raise TokenInvalid("the scanned code is empty", UNREADABLE)
    if len(scanned) > 500:
        raise TokenInvalid("the scanned code is too long to be a label code", UNREADABLE)
    if "/" in scanned or ":" in scanned:
        match = _URL_RE.match(scanned)
        if not match:
            raise TokenInvalid("not a mscbatch label code: a web address whose path ends in /v/<code> is expected",
                               UNREADABLE)
        scanned = match.group(1)
    if not scanned.isascii():
        # checked before .upper(): Unicode upper-casing turns the dotless "ı" into I and the long "ſ" into S, so a code
        # altered with such a character (no label prints one) passed for the genuine one. Such a code, a whole label
        # code once upper-cased, was altered; any other text with a character no label prints is not one of ours
        if _has_token_shape(scanned.upper()):
            raise TokenInvalid("malformed label code: it holds a character a label never prints (the code was "
                               "altered)", FORGED)
        raise TokenInvalid("malformed label code: it holds a character a label never prints", UNREADABLE)
    token = scanned.upper()
    if token.count(".") != 1:
        raise TokenInvalid("malformed label code: expected <bag reference>.<signature>", UNREADABLE)
    bag_ref, signature = token.split(".")
    if not BAG_REF_RE.match(bag_ref):
        raise TokenInvalid("malformed label code: the bag reference holds characters a label never prints", UNREADABLE)
    if not signature:
        raise TokenInvalid("the label code has no signature (truncated scan?)", UNREADABLE)
    if not _SIGNATURE_RE.match(signature):
        raise TokenInvalid("malformed label code: the signature holds characters a label never prints", UNREADABLE)
    if len(signature) < SIGNATURE_CHARS:
        raise TokenInvalid("the signature is too short: the code was truncated or damaged", UNREADABLE)
    if len(signature) > SIGNATURE_CHARS:
        raise TokenInvalid("the signature is too long: the code was altered", FORGED)
    expected = sign_bag_ref(bag_ref, key_raw)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        raise TokenInvalid("the signature does not match: the code was altered or not issued by this unit", FORGED)
    return bag_ref
