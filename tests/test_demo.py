"""`python -m demo` (what `make demo` runs) goes end to end and exits 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "demo", "--workdir", str(tmp_path / "run")], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "checks passed" in result.stdout
    assert "FAIL" not in result.stdout
    # it ends with the operator console's URL and a one-time login for it
    console = r"console: http://127\.0\.0\.1:\d+/console/\n   login:   operator demo, token \S{20,}"
    assert re.search(console, result.stdout)
    # secrets never reach the output or the server log
    log = (tmp_path / "run" / "serve.log").read_text()
    for secret in ("demo-client-secret-0000", "DemoWebhookSecret2026", "demo-quickbooks-client-secret",
                   "demo-quickbooks-verifier-token"):
        assert secret not in result.stdout and secret not in result.stderr and secret not in log
