"""bandit, at high severity and high confidence, finds nothing in the product code (issue 9 point 4)."""
from __future__ import annotations

import json
import subprocess  # nosec B404
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mscbatch"


def test_bandit_reports_no_high_severity_high_confidence_issue():
    result = subprocess.run(  # nosec B603
        [sys.executable, "-m", "bandit", "-q", "-r", str(PACKAGE), "-lll", "-iii", "-f", "json"],
        capture_output=True, text=True, check=False)
    report = json.loads(result.stdout)
    findings = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}" for r in report["results"]]
    assert findings == [], "\n".join(findings)
    assert report["metrics"]["_totals"]["loc"] > 1000  # it really scanned the package
