"""Lanes are graphs of certified products: a product feeds other products only through the gate (issue 9).

A three-level chain raw -> base -> mid -> top, where mid and top read their upstream with {product: ...}.
Every transform appends its name to calls.log, so "the transform was not called" is observed, not assumed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchlane.backends import local_backend
from batchlane.gate import NotCertified, read_table
from batchlane.receipts import MaterializeReceipt, parse_receipt, receipt_key
from batchlane.spec import load_spec

BASE = '''
from pathlib import Path


def base(raw):
    with Path(__file__).with_name("calls.log").open("a") as handle:
        handle.write("base\\n")
    return raw.copy()
'''

TRANSFORMS = '''
from pathlib import Path

import pandas as pd

LOG = Path(__file__).with_name("calls.log")


def _called(name):
    with LOG.open("a") as handle:
        handle.write(name + "\\n")


def mid(base):
    _called("mid")
    out = base.copy()
    out["double"] = out["value"] * 2
    return out


def top(mid, raw):
    _called("top")
    return pd.DataFrame({"total": [int(mid["double"].sum())], "raw_rows": [len(raw)]})
'''

SPEC = '''
lane: chain
outputs:
  base:
    inputs: {raw: data/raw.csv}
    transform: basemod:base
    contract:
      columns:
        id: {type: int64, not_null: true, unique: true}
        value: {type: int64, min: 0}
  mid:
    inputs: {base: {product: base}}
    transform: transforms:mid
    contract:
      columns:
        id: {type: int64, references: base.id}
        double: {type: int64, min: 0}
  top:
    inputs: {mid: {product: mid}, raw: data/raw.csv}
    transform: transforms:top
    contract:
      columns:
        total: {type: int64, min: 0}
'''


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    lane = tmp_path / "chain"
    (lane / "data").mkdir(parents=True)
    (lane / "transforms.py").write_text(TRANSFORMS)
    (lane / "basemod.py").write_text(BASE)
    (lane / "lane.yaml").write_text(SPEC)
    write_raw(lane, [(1, 10), (2, 20), (3, 30)])
    return lane


def write_raw(lane: Path, rows: list[tuple[int, int]]) -> None:
    (lane / "data" / "raw.csv").write_text("id,value\n" + "".join(f"{i},{v}\n" for i, v in rows))


def calls(lane: Path) -> list[str]:
    log = lane / "calls.log"
    names = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return names


def states(result: dict) -> dict[str, str]:
    return {name: item["state"] for name, item in result["outputs"].items()}


def materialized(lane_home: Path, run_id: str, output: str, attempt: int) -> MaterializeReceipt:
    receipt = parse_receipt((lane_home / receipt_key(run_id, output, attempt, "materialize")).read_bytes())
    assert isinstance(receipt, MaterializeReceipt)
    return receipt


def test_three_level_chain_certified_in_graph_order_with_pinned_product_inputs(chain, lane_home, lane_json):
    code, result = lane_json("run", chain / "lane.yaml")
    assert code == 0, result
    assert states(result) == {"base": "certified", "mid": "certified", "top": "certified"}
    assert calls(chain) == ["base", "mid", "top"]  # each after its upstream was decided
    run_id = result["run_id"]
    receipt = materialized(lane_home, run_id, "top", 1)
    mid_input = next(group for group in receipt.inputs if group.name == "mid")
    assert mid_input.pattern == "product:mid"
    assert mid_input.product is not None
    assert (mid_input.product.output, mid_input.product.run_id, mid_input.product.attempt) == ("mid", run_id, 1)
    backend = local_backend(lane_home)
    pointer = backend.ledger.current("chain", "mid")
    assert pointer is not None
    assert mid_input.product.certification_digest == pointer.digest
    gate = parse_receipt((lane_home / pointer.key).read_bytes())
    assert mid_input.files == gate.proof  # the certified bytes are the input's digest
    assert read_table(backend, "chain", "top").column("total").to_pylist() == [120]
    # mid's references rule (id -> base.id) was checked against the very version of base mid read
    checked = parse_receipt((lane_home / receipt_key(run_id, "mid", 1, "check")).read_bytes())
    (reference,) = checked.references
    read_base = materialized(lane_home, run_id, "mid", 1).inputs[0]
    assert reference.output == "base" and reference.pinned == read_base.product and reference.files == read_base.files


def test_rejected_upstream_blocks_downstream_then_rerun_rebuilds_exactly_failed_and_blocked(
        chain, lane_home, lane, lane_json):
    code, first = lane_json("run", chain / "lane.yaml")
    assert code == 0
    calls(chain)
    write_raw(chain, [(1, 10), (2, -5), (3, 30), (4, 40)])  # value -5 breaks base's min
    code, broken = lane_json("run", chain / "lane.yaml")
    assert code == 1
    assert states(broken) == {"base": "rejected", "mid": "blocked", "top": "blocked"}
    assert calls(chain) == ["base"]  # mid and top were never called
    assert "upstream base was rejected" in broken["outputs"]["mid"]["error"]
    assert "upstream mid is blocked" in broken["outputs"]["top"]["error"]
    run_id = broken["run_id"]
    blocked = materialized(lane_home, run_id, "mid", 1)
    assert (blocked.status, blocked.blocked_by, blocked.outputs) == ("blocked", ["base"], [])
    backend = local_backend(lane_home)
    # the previous certifications stay in force and readable
    assert read_table(backend, "chain", "top").column("total").to_pylist() == [120]
    assert backend.ledger.current("chain", "mid").run_id == first["run_id"]
    events = [json.loads(line) for line in lane("events", "--json")[1].splitlines() if line.strip()]
    blocked_events = [e for e in events if e["type"] == "DataProductBlocked" and e["run_id"] == run_id]
    assert sorted(e["output"] for e in blocked_events) == ["mid", "top"]
    assert all(e["reason"].startswith("blocked: upstream") for e in blocked_events)
    closed = [e for e in events if e["type"] == "RunClosed" and e["run_id"] == run_id][-1]
    assert closed["outputs"] == {"base": "rejected", "mid": "blocked", "top": "blocked"}
    code, shown = lane_json("status", run_id)
    assert {name: item["state"] for name, item in shown["outputs"].items()}["top"] == "blocked"

    write_raw(chain, [(1, 10), (2, 5), (3, 30), (4, 40)])  # fixed
    code, rerun = lane_json("rerun", run_id, "--failed")
    assert code == 0, rerun
    assert rerun["rerun_outputs"] == ["base", "mid", "top"]  # the failed and the blocked, in graph order
    assert calls(chain) == ["base", "mid", "top"]
    assert states(rerun) == {"base": "certified", "mid": "certified", "top": "certified"}
    assert read_table(backend, "chain", "top").column("total").to_pylist() == [170]
    code, verified = lane_json("verify", run_id)
    assert code == 0, verified


def test_byte_identical_upstream_leaves_downstream_memoized(chain, lane_home, lane_json):
    code, _ = lane_json("run", chain / "lane.yaml")
    assert code == 0
    calls(chain)
    # base's input changes (so base re-materializes) but not its values: its product is the same bytes
    (chain / "data" / "raw.csv").write_text('"id","value"\r\n"1",10\r\n"2",20\r\n"3",30\r\n')
    code, again = lane_json("run", chain / "lane.yaml")
    assert code == 0, again
    # mid reads only base: memoized (early cutoff); top also reads raw.csv itself, whose bytes changed
    assert states(again) == {"base": "certified", "mid": "memoized", "top": "certified"}
    assert calls(chain) == ["base", "top"]


def test_changed_upstream_bytes_rebuild_downstream(chain, lane_home, lane_json):
    code, _ = lane_json("run", chain / "lane.yaml")
    assert code == 0
    calls(chain)
    write_raw(chain, [(1, 10), (2, 20), (3, 31)])
    code, again = lane_json("run", chain / "lane.yaml")
    assert code == 0, again
    assert states(again) == {"base": "certified", "mid": "certified", "top": "certified"}
    assert calls(chain) == ["base", "mid", "top"]


def test_upstream_changed_after_certification_fails_downstream_without_calling_it(chain, lane_home, lane_json):
    code, first = lane_json("run", chain / "lane.yaml")
    assert code == 0
    calls(chain)
    backend = local_backend(lane_home)
    pointer = backend.ledger.current("chain", "mid")
    gate = parse_receipt((lane_home / pointer.key).read_bytes())
    product = Path(backend.store.local_path("/".join(gate.proof[0].uri.split("/")[-5:])))
    product.chmod(0o644)
    product.write_bytes(product.read_bytes()[:-8] + b"tampered")  # mid's certified bytes change under it
    code, again = lane_json("run", chain / "lane.yaml", "--outputs", "top", "--force")
    assert code == 1
    assert states(again) == {"top": "failed"}
    assert "changed since certification" in again["outputs"]["top"]["error"]
    assert calls(chain) == []  # top's transform never saw the data
    with pytest.raises(NotCertified):
        read_table(backend, "chain", "mid")


def test_revoked_upstream_is_refused_at_plan_and_fails_an_attempt_that_reads_it(chain, tmp_path, lane_home, lane,
                                                                                 lane_json):
    code, first = lane_json("run", chain / "lane.yaml")
    assert code == 0
    calls(chain)
    code, _, err = lane("revoke", "chain", "mid", "--reason", "bad numbers")
    assert code == 0, err
    code, out, err = lane("run", chain / "lane.yaml", "--outputs", "top")
    assert code == 2  # refused at plan: mid is neither selected nor certified
    assert "top reads mid, which had its certification revoked and is not selected" in err and "+top" in err
    other = tmp_path / "other"  # another lane reading the revoked product: its attempt fails, naming why
    other.mkdir()
    (other / "lane.yaml").write_text("lane: other\noutputs:\n  copy:\n    inputs: {mid: {product: mid, lane: chain}}\n")
    code, result = lane_json("run", other / "lane.yaml")
    assert code == 1
    assert "was revoked (bad numbers)" in result["outputs"]["copy"]["error"]
    assert calls(chain) == []
    code, again = lane_json("run", chain / "lane.yaml", "--outputs", "mid,top")
    assert code == 0, again
    # mid is certified anew (same bytes), so top, which read exactly those bytes, is memoized
    assert states(again) == {"mid": "certified", "top": "memoized"}


def test_selection_without_certified_upstream_is_refused_with_a_hint(chain, lane_home, lane):
    code, out, err = lane("run", chain / "lane.yaml", "--outputs", "top")
    assert code == 2
    assert "top reads mid, which has no certification and is not selected" in err
    assert "+top" in err
    assert not (lane_home / "receipts").exists() or not list((lane_home / "receipts").rglob("*-begin.json"))
    assert calls(chain) == []


@pytest.mark.parametrize(("edit", "message"), [
    ("    inputs: {base: {product: base}}\n", "outputs.mid.inputs.base.product: no output named 'nope'"),
    ("    inputs: {mid: {product: mid}, raw: data/raw.csv}\n",
     "outputs.top.inputs.mid.product: an output cannot read itself"),
])
def test_unknown_or_self_product_is_refused_at_load(chain, lane, edit, message):
    spec = chain / "lane.yaml"
    text = spec.read_text()
    replacement = edit.replace("{product: base}", "{product: nope}").replace("{product: mid}", "{product: top}")
    spec.write_text(text.replace(edit, replacement))
    code, out, err = lane("validate", spec)
    assert code == 2
    assert message in out + err


def test_product_cycle_is_refused_at_load(chain, lane):
    spec = chain / "lane.yaml"
    spec.write_text(spec.read_text().replace("inputs: {raw: data/raw.csv}\n    transform: basemod:base",
                                             "inputs: {raw: {product: top}}\n    transform: basemod:base"))
    code, out, err = lane("run", spec)
    assert code == 2
    assert "cycle between outputs: base -> top -> mid -> base" in err or "cycle between outputs" in err
    assert "outputs.base.inputs.raw.product" in err


def test_product_input_of_another_lane_reads_its_certification(chain, tmp_path, lane_home, lane_json):
    code, _ = lane_json("run", chain / "lane.yaml")
    assert code == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "lane.yaml").write_text("lane: other\noutputs:\n  copy:\n    inputs: {mid: {product: mid, lane: chain}}\n")
    code, result = lane_json("run", other / "lane.yaml")
    assert code == 0, result
    receipt = materialized(lane_home, result["run_id"], "copy", 1)
    assert receipt.inputs[0].pattern == "product:chain/mid"
    spec = load_spec(other / "lane.yaml")
    assert spec.upstream("copy") == set()  # another lane's product is not an edge of this lane's graph
    (other / "lane.yaml").write_text("lane: other\noutputs:\n  copy:\n    inputs: {x: {product: nothing, lane: chain}}\n")
    code, result = lane_json("run", other / "lane.yaml")
    assert code == 1
    assert "product input 'x' (product:chain/nothing)" in result["outputs"]["copy"]["error"]
    assert "no certification" in result["outputs"]["copy"]["error"]


def test_graph_api_waves_and_closures(chain):
    spec = load_spec(chain / "lane.yaml")
    assert spec.upstream("top") == {"mid"} and spec.upstream("mid") == {"base"}  # product input + reference
    assert spec.upstream_closure("top") == {"mid", "base"} and spec.downstream_closure("base") == {"mid", "top"}
    assert spec.waves(["top", "mid", "base"]) == [["base"], ["mid"], ["top"]]
    assert spec.waves(["top", "base"]) == [["base", "top"]]  # mid is not selected: top waits for nothing of it
    assert spec.waves([]) == []


def test_selection_refusal_says_whether_the_upstream_is_read_or_referenced(chain, lane):
    spec = chain / "lane.yaml"
    spec.write_text(spec.read_text().replace("    inputs: {mid: {product: mid}, raw: data/raw.csv}",
                                             "    inputs: {raw: data/raw.csv}").replace(
        "        total: {type: int64, min: 0}", "        total: {type: int64, min: 0, references: mid.double}"))
    code, out, err = lane("run", spec, "--outputs", "top")
    assert code == 2
    assert "top references mid, which has no certification and is not selected" in err
