"""Run parameters: `vars:` defaults in the spec, `lane run --var NAME=VALUE`, a `params` argument."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from batchlane.backends import local_backend
from batchlane.evidence import load_receipt
from batchlane.gate import read_table

TRANSFORMS = '''
def stamp(items, params):
    out = items.copy()
    out["run_date"] = params["run_date"]
    return out

def plain(items):
    return items
'''


def make_lane(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "transforms.py").write_text(TRANSFORMS)
    (folder / "items.csv").write_text("id\n1\n2\n")
    spec = {"lane": "dated", "vars": {"run_date": "2026-01-01", "dry": False},
            "outputs": {"stamped": {"inputs": {"items": "items.csv"}, "transform": "transforms:stamp"},
                        "plain": {"inputs": {"items": "items.csv"}, "transform": "transforms:plain"}}}
    (folder / "lane.yaml").write_text(yaml.safe_dump(spec))
    return folder / "lane.yaml"


def test_defaults_overrides_receipts_and_memo(tmp_path, lane_home, lane, lane_json):
    spec = make_lane(tmp_path / "lane")
    code, first = lane_json("run", spec)
    assert code == 0
    backend = local_backend(lane_home)
    assert read_table(backend, "dated", "stamped").column("run_date").to_pylist() == ["2026-01-01"] * 2
    begun = load_receipt(backend, first["run_id"], "stamped", 1, "begin")
    assert begun.params == {"run_date": "2026-01-01", "dry": "false"}
    assert backend.ledger.get_run(first["run_id"]).params == begun.params

    code, second = lane_json("run", spec, "--var", "run_date=2026-11-29")
    assert code == 0
    assert {name: o["state"] for name, o in second["outputs"].items()} == {"stamped": "certified", "plain": "certified"}
    assert read_table(backend, "dated", "stamped").column("run_date").to_pylist() == ["2026-11-29"] * 2
    # the same parameters again: memoized (they are part of the memo key)
    code, third = lane_json("run", spec, "--var", "run_date=2026-11-29")
    assert {o["state"] for o in third["outputs"].values()} == {"memoized"}


def test_bad_variables_are_usage_errors(tmp_path, lane_home, lane):
    spec = make_lane(tmp_path / "lane")
    code, _, err = lane("run", spec, "--var", "run_dat=2026-11-29")
    assert code == 2 and "did you mean 'run_date'" in err and "Traceback" not in err
    code, _, err = lane("run", spec, "--var", "no-equals-sign")
    assert code == 2 and "NAME=VALUE" in err
    assert not (lane_home / "ledger.sqlite").exists()  # nothing was created


def test_the_state_machine_input_carries_vars(tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from support.lane_aws import GATE_HANDLER  # noqa: F401  (loads the handler module)

    handler = sys.modules["lane_gate_handler"]
    assert handler._selection({"vars": {"run_date": "2026-11-29", "full": True}})["variables"] == {
        "run_date": "2026-11-29", "full": "true"}
    event = {"detail-type": "DataLanded", "detail": {"vars": {"run_date": "2026-11-30"}}}
    assert handler._selection(event)["variables"] == {"run_date": "2026-11-30"}
    import pytest

    with pytest.raises(handler.BadRequest, match="vars must be an object"):
        handler._selection({"vars": ["x"]})
    assert json.dumps(handler._selection({})) == json.dumps(
        {"outputs": None, "rerun_of": None, "trigger": "console", "variables": None})
