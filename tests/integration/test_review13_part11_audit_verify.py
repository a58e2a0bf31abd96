"""Review 13 (Part 11): `mscbatch audit verify` names the altered event or the forged checkpoint line whatever the
altered value holds. A hash, a head's MAC or a checkpoint's field rewritten with non-ASCII text (or a checkpoint
file's bytes that are no UTF-8) made hmac.compare_digest raise (TypeError, UnicodeError): the tool that is to detect
tampering stopped on a Python traceback instead of saying AUDIT TRAIL BROKEN at the event."""
from __future__ import annotations

import json

import pytest

from tests.integration.test_audit_checkpoints import _checkpoint, _cli, checkpoint_file  # noqa: F401 (fixture)
from tests.integration.test_audit_trail import _tamper  # database access, no audit key


def test_an_event_hash_rewritten_with_non_ascii_text_is_named(app, users):
    _tamper(app, "UPDATE audit_event SET hash = :h WHERE seq = 2", h="\u00e9" * 64)
    result = _cli(app, "verify")
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "AUDIT TRAIL BROKEN at event 2: event 2 was altered" in result.output


def test_a_head_mac_rewritten_with_non_ascii_text_is_named(app, users):
    _tamper(app, "UPDATE audit_head SET mac = :m WHERE id = 1", m="\u00e9" * 64)
    result = _cli(app, "verify")
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "the chain head record was altered" in result.output
    refused = _cli(app, "checkpoint")  # never anchored
    assert refused.exit_code == 1 and "Checkpoint refused: the chain head record was altered" in refused.output


@pytest.mark.parametrize("forge", ["non-ASCII mac", "non-ASCII hash", "lone surrogate", "not UTF-8"])
def test_a_forged_checkpoint_line_of_any_text_is_named(app, users, checkpoint_file, forge):  # noqa: F811
    cp = _checkpoint(app, checkpoint_file)
    if forge == "not UTF-8":
        with checkpoint_file.open("ab") as handle:
            handle.write(json.dumps({**cp, "mac": "x"}).encode().replace(b'"x"', b'"\xff\xfe"') + b"\n")
    else:
        field, value = {"non-ASCII mac": ("mac", "\u00e9" * 64), "non-ASCII hash": ("hash", "\u00e9" * 64),
                        "lone surrogate": ("at", "\ud800")}[forge]
        with checkpoint_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({**cp, field: value}) + "\n")  # ensure_ascii: "\u00e9", "\ud800" escaped
    result = _cli(app, "verify")
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "AUDIT TRAIL BROKEN" in result.output and "line 2" in result.output and "forged" in result.output
