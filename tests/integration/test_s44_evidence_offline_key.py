"""S44: `mscbatch evidence verify` (README: needs MSCBATCH_AUDIT_KEY, no database) verified with the demo key when
the variable was unset, printing VALID without saying so, and created ./instance/mscbatch.sqlite3. It now refuses
without a key, says when the key is the demo one, and opens no database (none configured, or an unreachable one)."""
from __future__ import annotations

import os
import subprocess  # nosec B404
import sys
from pathlib import Path

from mscbatch.core import evidence
from mscbatch.settings import DEMO_AUDIT_KEY

ROOT = Path(__file__).resolve().parents[2]
SITE_KEY = "site-audit-key-for-the-s44-test-0123456789"


def _verify(cwd: Path, bundle: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MSCBATCH_")}
    clean["PYTHONPATH"] = str(ROOT)
    code = "import sys; from mscbatch.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, "evidence", "verify", str(bundle)], cwd=cwd,  # nosec B603
                          env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False)


def _bundle(path: Path, key: str) -> Path:
    path.write_bytes(evidence.pack({"a.txt": b"a"}, key, subject={}, generated_at="2026-01-01T00:00:00+00:00"))
    return path


def test_without_the_key_it_refuses_and_touches_no_database(tmp_path):
    bundle = _bundle(tmp_path / "demo.zip", DEMO_AUDIT_KEY)
    done = _verify(tmp_path, bundle)
    assert done.returncode != 0, done.stdout
    assert "MSCBATCH_AUDIT_KEY" in done.stderr and "VALID" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "instance").exists()


def test_with_the_key_it_verifies_with_no_database_or_an_unreachable_one(tmp_path):
    bundle = _bundle(tmp_path / "site.zip", SITE_KEY)
    for extra in ({}, {"MSCBATCH_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere"}):
        done = _verify(tmp_path, bundle, MSCBATCH_AUDIT_KEY=SITE_KEY, **extra)
        assert done.returncode == 0, done.stderr
        assert "VALID" in done.stdout and "Traceback" not in done.stderr
    wrong = _verify(tmp_path, bundle, MSCBATCH_AUDIT_KEY="another-key")
    assert wrong.returncode == 1 and "INVALID" in wrong.stderr and "Traceback" not in wrong.stderr
    assert not (tmp_path / "instance").exists()


def test_the_demo_key_given_explicitly_is_named_in_the_output(tmp_path):
    bundle = _bundle(tmp_path / "demo.zip", DEMO_AUDIT_KEY)
    done = _verify(tmp_path, bundle, MSCBATCH_AUDIT_KEY=DEMO_AUDIT_KEY)
    assert done.returncode == 0, done.stderr
    assert "VALID" in done.stdout and "DEMO key" in done.stdout
