"""`lane check`: exit 0 PASS, 1 FAIL, 2 usage/contract/file errors; --json."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest

from batchlane.cli import check_cmd
from tests.checks.helpers import write

CONTRACT = """\
contract:
  row_count: {min: 1}
  columns:
    id: {type: int64, not_null: true, unique: true}
    status: {accepted_values: [new, paid]}
"""


@pytest.fixture
def files(tmp_path):
    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT)
    good = write(tmp_path, {"id": pa.array([1, 2], pa.int64()), "status": ["new", "paid"]}, "good.parquet")
    bad = write(tmp_path, {"id": pa.array([1, 1], pa.int64()), "status": ["new", "lost"]}, "bad.parquet")
    return contract, good, bad


def lane_check(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = check_cmd.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_pass_exits_0_and_prints_every_rule(files, capsys):
    contract, good, _ = files
    code, out, _ = lane_check(capsys, good, "--contract", contract)
    assert code == 0
    assert "PASS" in out
    for label in ("row_count", "type", "not_null", "unique", "accepted_values"):
        assert label in out


def test_fail_exits_1_with_evidence(files, capsys):
    contract, _, bad = files
    code, out, _ = lane_check(capsys, bad, "--contract", contract)
    assert code == 1
    assert "FAIL" in out and "lost" in out


def test_json_is_the_outcome(files, capsys):
    contract, _, bad = files
    code, out, _ = lane_check(capsys, bad, "--contract", contract, "--json")
    assert code == 1
    document = json.loads(out)
    assert document["verdict"] == "FAIL"
    assert document["rows"] == 2
    [digest] = document["files"]
    assert digest["uri"] == str(bad) and len(digest["sha256"]) == 64 and digest["schema"]["id"] == "int64"
    failing = {(r["rule"], r["column"]): r for r in document["rules"] if not r["passed"]}
    assert failing[("unique", "id")]["failing_sample"] == [1]
    assert failing[("accepted_values", "status")]["failing_sample"] == ["lost"]


def test_missing_file_exits_2_naming_it(files, capsys):
    contract, _, _ = files
    code, _, err = lane_check(capsys, contract.parent / "absent.parquet", "--contract", contract)
    assert code == 2 and "absent.parquet" in err and "not found" in err


def test_bad_contract_exits_2_naming_the_field(files, capsys, tmp_path):
    _, good, _ = files
    broken = tmp_path / "broken.yaml"
    broken.write_text("columns:\n  id: {type: int65}\n")
    code, _, err = lane_check(capsys, good, "--contract", broken)
    assert code == 2 and "columns.id.type" in err


def test_missing_contract_and_usage_errors_exit_2(files, capsys):
    contract, good, _ = files
    assert lane_check(capsys, good, "--contract", contract.parent / "none.yaml")[0] == 2
    assert lane_check(capsys, good)[0] == 2  # --contract is required
    assert lane_check(capsys, good, "--contract", contract, "--now", "soon")[0] == 2


def test_now_judges_freshness(tmp_path, capsys):
    contract = tmp_path / "fresh.yaml"
    contract.write_text("columns:\n  t: {max_age: 1d}\n")
    path = write(tmp_path, {"t": pa.array([0], pa.timestamp("s", tz="UTC"))})
    assert lane_check(capsys, path, "--contract", contract, "--now", "1970-01-01T12:00:00Z")[0] == 0
    assert lane_check(capsys, path, "--contract", contract, "--now", "1970-01-03")[0] == 1


def test_registered_in_the_lane_command(files):
    contract, _, bad = files
    base = [sys.executable, "-c", "import sys; from batchlane.cli import main; sys.exit(main())", "check"]
    failed = subprocess.run([*base, str(bad), "--contract", str(contract), "--json"], capture_output=True, text=True,
                            check=False)
    assert failed.returncode == 1 and json.loads(failed.stdout)["verdict"] == "FAIL"
    helped = subprocess.run([*base, "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0 and "exit status: 0 PASS, 1 FAIL, 2" in helped.stdout
