"""scripts/smoke.sh --moto end to end: the script a user runs after `cdk deploy`, against the moto set-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.xdist_group("smoke_script")


def test_smoke_script_runs_fails_reruns_and_reads_against_moto():
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "LANE_", "MOTO_"))}
    env.update(PYTHON=sys.executable, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    result = subprocess.run([str(ROOT / "scripts" / "smoke.sh"), "--moto"], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=600, check=False)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    steps = [line for line in out.splitlines() if line.startswith("== ")]
    assert [line.split(" ", 2)[1] for line in steps[1:5]] == ["1.", "2.", "3.", "4."]
    assert '{"status": "SUCCEEDED"}' in out
    assert '"status": "FAILED", "error": "OutputsUncertified"' in out
    # order_payments rejected; daily_revenue (reads it as a product) blocked
    assert "not certified: daily_revenue, order_payments" in out
    assert "read orders_clean: 2000 certified rows" in out and "read order_payments:" in out
    assert out.rstrip().endswith("== smoke OK")


def test_smoke_script_refuses_bad_arguments():
    result = subprocess.run([str(ROOT / "scripts" / "smoke.sh"), "--bogus"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 2 and "unknown argument --bogus" in result.stderr
