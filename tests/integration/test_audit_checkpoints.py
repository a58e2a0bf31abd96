"""External anchoring of the audit chain: `mscbatch audit checkpoint` writes the head outside the database, and
`mscbatch audit verify` catches a trail rolled back behind a checkpoint (newest events deleted, an old, still
validly MACed head row written back), which the chain alone cannot see."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from mscbatch.audit.checkpoints import checkpoint_line
from mscbatch.audit.models import AuditHead
from mscbatch.auth import services as accounts
from mscbatch.auth.models import User
from tests.integration.test_audit_trail import _tamper  # database access, no audit key


@pytest.fixture
def checkpoint_file(app, tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "outside-the-database" / "audit-checkpoints.jsonl"
    path.parent.mkdir()  # the off-host folder exists: `audit checkpoint` refuses to create one (an unmounted volume)
    app.config["AUDIT_CHECKPOINT_FILE"] = str(path)
    return path


def _cli(app, command):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["audit", command])


def _head(app):  # type: ignore[no-untyped-def]
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        return tuple(session.execute(select(AuditHead.last_seq, AuditHead.last_hash, AuditHead.mac)).one())


def _audited_writes(app, times: int = 2) -> None:  # type: ignore[no-untyped-def]
    """Later audited facts: the technician disabled and enabled again, `times` times (two events each)."""
    with app.app_context(), app.extensions["mscbatch.db"].new_session() as session:
        admin = session.scalar(select(User).where(User.username == "admin"))
        tech = session.scalar(select(User).where(User.username == "technician"))
        for _ in range(times):
            accounts.set_enabled(session, admin, tech.id, False, "left the unit")
            accounts.set_enabled(session, admin, tech.id, True, "came back")


def _roll_back_to(app, head) -> None:  # type: ignore[no-untyped-def]
    seq, last_hash, mac = head
    _tamper(app, "DELETE FROM audit_event WHERE seq > :seq; "
                  "UPDATE audit_head SET last_seq = :seq, last_hash = :h, mac = :m WHERE id = 1",
                  seq=seq, h=last_hash, m=mac)


def _checkpoint(app, checkpoint_file) -> dict:  # type: ignore[no-untyped-def]
    result = _cli(app, "checkpoint")
    assert result.exit_code == 0, result.output
    return json.loads(checkpoint_file.read_text().splitlines()[-1])


def test_checkpoints_then_more_writes_verify(app, users, checkpoint_file):
    first = _checkpoint(app, checkpoint_file)
    assert (first["seq"], first["hash"]) == _head(app)[:2] and first["at"].endswith("Z")
    _audited_writes(app)
    second = _checkpoint(app, checkpoint_file)
    assert second["seq"] == first["seq"] + 4
    _audited_writes(app)
    result = _cli(app, "verify")
    assert result.exit_code == 0, result.output
    assert "Audit trail intact" in result.output and "2 checkpoints" in result.output
    assert len(checkpoint_file.read_text().splitlines()) == 2  # appended, never rewritten


def test_deleting_the_newest_events_and_writing_back_an_old_head_is_caught(app, users, checkpoint_file):
    old_head = _head(app)
    _audited_writes(app)
    cp = _checkpoint(app, checkpoint_file)
    _audited_writes(app)
    _roll_back_to(app, old_head)
    result = _cli(app, "verify")
    assert result.exit_code == 1, result.output
    assert "AUDIT TRAIL BROKEN" in result.output
    assert (f"the audit trail is shorter than checkpoint of {cp['at']} (seq {cp['seq']}): events were deleted"
            in result.output)


def test_a_rolled_back_trail_grown_again_past_the_checkpoint_is_caught(app, users, checkpoint_file):
    """After the rollback the application keeps writing: the chain is long again and verifies, but the event at
    the checkpointed seq is another one."""
    old_head = _head(app)
    _audited_writes(app)
    cp = _checkpoint(app, checkpoint_file)
    _roll_back_to(app, old_head)
    _audited_writes(app, times=3)
    assert _head(app)[0] > cp["seq"]
    result = _cli(app, "verify")
    assert result.exit_code == 1, result.output
    assert f"event {cp['seq']} no longer matches the checkpoint of {cp['at']}" in result.output


def test_an_altered_event_at_a_checkpointed_seq_is_caught(app, users, checkpoint_file):
    cp = _checkpoint(app, checkpoint_file)
    _tamper(app, "UPDATE audit_event SET reason = 'nothing to see' WHERE seq = :seq", seq=cp["seq"])
    result = _cli(app, "verify")
    assert result.exit_code == 1 and "AUDIT TRAIL BROKEN" in result.output, result.output


@pytest.mark.parametrize("forge", ["another key", "edited seq", "not json"])
def test_a_forged_checkpoint_line_is_caught(app, users, checkpoint_file, forge):
    cp = _checkpoint(app, checkpoint_file)
    if forge == "another key":
        line = checkpoint_line(b"not-the-audit-key", cp["seq"], cp["hash"], "2031-01-01T00:00:00Z")
    elif forge == "edited seq":
        line = json.dumps({**cp, "seq": cp["seq"] - 1})
    else:
        line = "{seq: 1"
    with checkpoint_file.open("a") as handle:
        handle.write(line + "\n")
    result = _cli(app, "verify")
    assert result.exit_code == 1, result.output
    assert "AUDIT TRAIL BROKEN" in result.output and "forged" in result.output and "line 2" in result.output


def test_without_a_checkpoint_file_verify_says_so(app, users, checkpoint_file):
    result = _cli(app, "verify")
    assert result.exit_code == 0, result.output
    assert "Audit trail intact" in result.output and "(no checkpoint file)" in result.output
    assert not checkpoint_file.exists()


def test_an_altered_head_is_refused_not_checkpointed(app, users, checkpoint_file):
    _tamper(app, "UPDATE audit_head SET last_seq = last_seq + 1 WHERE id = 1")
    result = _cli(app, "checkpoint")
    assert result.exit_code == 1 and "Checkpoint refused" in result.output, result.output
    assert not checkpoint_file.exists()


def test_the_default_checkpoint_file_is_in_the_instance_dir(app, users, tmp_path):
    app.config.pop("AUDIT_CHECKPOINT_FILE", None)
    app.config["INSTANCE_DIR"] = str(tmp_path / "instance")
    assert _cli(app, "checkpoint").exit_code == 0
    assert (tmp_path / "instance" / "audit-checkpoints.jsonl").exists()


def test_the_setting_is_read_from_the_environment(monkeypatch, tmp_path):
    from mscbatch import settings

    monkeypatch.setenv("MSCBATCH_INSTANCE_DIR", str(tmp_path))
    assert settings.from_environment()["AUDIT_CHECKPOINT_FILE"] == str(tmp_path / "audit-checkpoints.jsonl")
    monkeypatch.setenv("MSCBATCH_AUDIT_CHECKPOINT_FILE", "/var/lib/anchors/mscbatch.jsonl")
    assert settings.from_environment()["AUDIT_CHECKPOINT_FILE"] == "/var/lib/anchors/mscbatch.jsonl"
