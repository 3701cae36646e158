"""Crash consistency by construction: kill the process at every named write point, then check the truth.

For each point in ``batchlane.writepoints.WRITE_POINTS`` a real `lane` process (and its job subprocess)
runs with ``LANE_CRASH_AT=POINT`` and dies there (``os._exit``: no cleanup, like ``kill -9``). Afterwards:

1. reads refuse anything not certified, and serve what is (the certification verifies, bytes included);
2. status says what reads do: an output is settled in status exactly when a read of this run's product works;
3. the ordinary command repairs it without ``--force``: ``lane rerun RUN --failed`` (or ``lane run`` when the
   crash came before the run existed) ends with every output certified;
4. ``lane verify`` passes for every run afterwards, and nothing is left stored but unindexed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from batchlane.backends import local_backend
from batchlane.gate import NotCertified, read_table, resolve
from batchlane.state import SETTLED, run_closures
from batchlane.verify import verify_run
from batchlane.writepoints import CRASH_EXIT_CODE, WRITE_POINTS

CLI = "import sys; from batchlane.cli import main; sys.exit(main(sys.argv[1:]))"
TRANSFORMS = "def double(items):\n    out = items.copy()\n    out['value'] = out['value'] * 2\n    return out\n"

# where each point is reached in a plain run of the tiny lane (job points are in the job subprocess)
RUN_POINTS = [point for point in WRITE_POINTS if not point.startswith("revoke.")] + ["event.publish@2", "event.mark@2"]
REVOKE_POINTS = ["revoke.store", "revoke.swap", "event.publish", "event.mark"]


def make_lane(folder: Path, *, bad: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "transforms.py").write_text(TRANSFORMS)
    (folder / "items.csv").write_text("id,value\n1,10\n2,20\n" + ("2,30\n" if bad else ""))
    contract = {"columns": {"id": {"type": "int64", "not_null": True, "unique": True}, "value": {"min": 0}}}
    spec = {"lane": "tiny", "outputs": {
        "items_clean": {"inputs": {"items": "items.csv"}, "transform": "transforms:double", "contract": contract},
        "items_copy": {"inputs": {"items": "items.csv"}, "contract": {"row_count": {"min": 1}}},
    }}
    (folder / "lane.yaml").write_text(yaml.safe_dump(spec))
    return folder / "lane.yaml"


def lane(home: Path, *argv: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LANE_HOME": str(home), "LANE_BACKEND": "local"}
    env.pop("LANE_CRASH_AT", None)
    if crash_at:
        env["LANE_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-c", CLI, *argv], env=env, capture_output=True, text=True, timeout=120)


def run_ids(home: Path) -> list[str]:
    return [run.run_id for run in local_backend(home).ledger.list_runs()]


def assert_truthful(home: Path) -> None:
    """Reads refuse what is not certified; status (run closures) says exactly what reads do."""
    backend = local_backend(home)
    for run in backend.ledger.list_runs():
        closures = run_closures(backend, run.run_id, run.outputs)
        for output, closure in closures.items():
            pointer = backend.ledger.current("tiny", output)
            try:
                read_table(backend, "tiny", output)
                readable = True
            except NotCertified:
                readable = False
            if pointer is not None and pointer.revoked is not None:  # status shows the revocation; reads refuse
                assert not readable, f"{output}: revoked, yet readable"
                continue
            if closure.state == "certified" and not closure.error:
                assert readable and pointer is not None, f"{run.run_id}/{output}: status says certified, reads refuse"
            if pointer is not None and pointer.run_id == run.run_id and readable:
                assert closure.state in SETTLED, f"{run.run_id}/{output}: readable but status says {closure.state}"
            if readable:
                resolve(backend, "tiny", output, verify_bytes=True)  # the certification itself verifies


def assert_repaired_and_verified(home: Path, spec: Path) -> None:
    runs = run_ids(home)
    if runs:
        repaired = lane(home, "rerun", runs[0], "--failed", "--spec", str(spec))
    else:
        repaired = lane(home, "run", str(spec))
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    backend = local_backend(home)
    assert read_table(backend, "tiny", "items_clean").num_rows == 2
    assert read_table(backend, "tiny", "items_copy").num_rows >= 2  # certified by the first run, or again
    for run_id in run_ids(home):
        report = verify_run(backend, run_id)
        assert report.ok, f"verify {run_id}: {report.problems}"
    assert_truthful(home)
    assert not list((home / ".tmp").iterdir()) or all(  # only files of live processes may remain
        not p.name.split("-")[0].isdigit() for p in (home / ".tmp").iterdir())


def test_every_write_point_is_covered_by_a_scenario():
    covered = {point.split("@")[0] for point in RUN_POINTS + REVOKE_POINTS}
    assert covered == set(WRITE_POINTS)


@pytest.mark.parametrize("point", RUN_POINTS)
def test_crash_in_run_leaves_truthful_repairable_state(tmp_path, point):
    spec, home = make_lane(tmp_path / "lane"), tmp_path / "home"
    crashed = lane(home, "run", str(spec), crash_at=point)
    assert f"injected crash at write point {point.split('@')[0]}" in crashed.stderr, crashed.stderr
    if not point.startswith("job."):  # a job's crash is its own; the runner records it and carries on
        assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert_truthful(home)
    assert_repaired_and_verified(home, spec)


@pytest.mark.parametrize("point", [p for p in RUN_POINTS if p != "run.create"])
def test_crash_in_rerun_leaves_truthful_repairable_state(tmp_path, point):
    spec, home = make_lane(tmp_path / "lane", bad=True), tmp_path / "home"
    first = lane(home, "run", str(spec))
    assert first.returncode == 1, first.stdout + first.stderr  # items_clean rejected (duplicate id)
    make_lane(tmp_path / "lane")  # fixed input
    (run_id,) = run_ids(home)
    crashed = lane(home, "rerun", run_id, "--failed", crash_at=point)
    assert_truthful(home)
    if f"injected crash at write point {point.split('@')[0]}" not in crashed.stderr:
        assert crashed.returncode == 0, crashed.stdout + crashed.stderr  # this rerun never reaches that point
    assert_repaired_and_verified(home, spec)


@pytest.mark.parametrize("point", REVOKE_POINTS)
def test_crash_in_revoke_is_finished_by_revoking_again(tmp_path, point):
    spec, home = make_lane(tmp_path / "lane"), tmp_path / "home"
    assert lane(home, "run", str(spec)).returncode == 0
    crashed = lane(home, "revoke", "tiny", "items_clean", "--reason", "recall", crash_at=point)
    assert crashed.returncode == CRASH_EXIT_CODE and "injected crash" in crashed.stderr
    assert_truthful(home)
    backend = local_backend(home)
    pointer = backend.ledger.current("tiny", "items_clean")
    stored = list((home / "receipts" / "_revocations").rglob("*.json"))
    if pointer.revoked is None:  # crashed before the swap: revoking again finishes it (a stored receipt stands)
        again = lane(home, "revoke", "tiny", "items_clean", "--reason", "recall (retried)")
        assert again.returncode == 0, again.stdout + again.stderr
        pointer = backend.ledger.current("tiny", "items_clean")
    assert pointer.revoked == ("recall" if stored else "recall (retried)")
    with pytest.raises(NotCertified, match="revoked"):
        read_table(backend, "tiny", "items_clean")
    # the next run repairs the outbox: the revocation's event reaches the bus exactly under its id
    assert lane(home, "run", str(spec)).returncode == 0
    events = [e for e in backend.bus.read()[0] if e["type"] == "DataProductRevoked"]
    assert len({e["id"] for e in events}) == 1
    assert read_table(backend, "tiny", "items_clean").num_rows == 2  # re-certified by a run after the revoke


def test_canary_the_truth_check_catches_a_status_that_lies(tmp_path, monkeypatch):
    """The old bug: status derived "certified" from the gate receipt alone. With that behaviour put back,
    the same crash (between the gate receipt and the pointer swap) must fail the truth check."""
    import batchlane.state

    spec, home = make_lane(tmp_path / "lane"), tmp_path / "home"
    crashed = lane(home, "run", str(spec), crash_at="pointer.swap")
    assert crashed.returncode == CRASH_EXIT_CODE
    assert_truthful(home)  # the real code tells the truth ...
    monkeypatch.setattr(batchlane.state, "was_applied", lambda *args: True)
    with pytest.raises(AssertionError, match="status says certified, reads refuse"):
        assert_truthful(home)  # ... and the check would have caught the lie


def test_concurrent_reruns_and_runs_all_close_and_verify(tmp_path):
    """Six concurrent `rerun --outputs` of one run plus a concurrent new run: every closer gets a manifest
    (idempotent, with backoff), attempts race without breaking each other's chains, and verify passes."""
    from concurrent.futures import ThreadPoolExecutor

    spec, home = make_lane(tmp_path / "lane"), tmp_path / "home"
    assert lane(home, "run", str(spec)).returncode == 0
    (run_id,) = run_ids(home)
    commands = [("rerun", run_id, "--outputs", "items_clean,items_copy")] * 6 + [("run", str(spec), "--force")]
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        results = list(pool.map(lambda argv: lane(home, *argv), commands))
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
    backend = local_backend(home)
    for run in run_ids(home):
        report = verify_run(backend, run)
        assert report.ok, report.problems
    assert_truthful(home)


def test_a_product_linked_outside_the_store_is_refused_cleanly(tmp_path):
    spec, home = make_lane(tmp_path / "lane"), tmp_path / "home"
    assert lane(home, "run", str(spec)).returncode == 0
    backend = local_backend(home)
    pointer = backend.ledger.current("tiny", "items_clean")
    product = next((home / "staging" / pointer.run_id / "items_clean").rglob("*.parquet"))
    outside = tmp_path / "elsewhere.parquet"
    outside.write_bytes(product.read_bytes())
    product.chmod(0o644)
    product.unlink()
    product.symlink_to(outside)
    with pytest.raises(NotCertified, match="outside the store"):
        read_table(backend, "tiny", "items_clean")
    refused = lane(home, "read", "items_clean", "--lane", "tiny", "--out", str(tmp_path / "out.csv"))
    assert refused.returncode == 1 and "outside the store" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "out.csv").exists()


def test_a_store_whose_path_contains_staging_still_certifies(tmp_path):
    spec, home = make_lane(tmp_path / "lane"), tmp_path / "data" / "staging" / "home"
    assert lane(home, "run", str(spec)).returncode == 0
    assert read_table(local_backend(home), "tiny", "items_clean").num_rows == 2


def test_lane_repair_finishes_an_interrupted_run_and_refuses_forged_evidence(tmp_path):
    spec, home = make_lane(tmp_path / "lane"), tmp_path / "home"
    assert lane(home, "run", str(spec), crash_at="gate.index").returncode == CRASH_EXIT_CODE
    (run_id,) = run_ids(home)
    assert not verify_run(local_backend(home), run_id).ok  # a gate receipt stored, not indexed
    repaired = lane(home, "repair", run_id, "--json")
    assert repaired.returncode == 0, repaired.stderr
    assert any("adopted" in line for line in __import__("json").loads(repaired.stdout)["repaired"])
    assert verify_run(local_backend(home), run_id).ok
    assert_truthful(home)
    # a planted receipt that follows nothing is refused, with exit 1 and no traceback
    (home / "receipts" / run_id / "items_clean" / "0009-check.json").write_text("{}")
    refused = lane(home, "repair", run_id)
    assert refused.returncode == 1 and "not a receipt" in refused.stderr and "Traceback" not in refused.stderr
    assert lane(home, "repair", "no-such-run").returncode == 2
