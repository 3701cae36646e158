"""`lane lineage OUTPUT`: upstream products and files with the certifications in force, downstream products and
consumers; read-only. Also `lane show` / `lane report` listing each pinned product input with its certification."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

# orders_clean -> daily_revenue -> revenue_alerts (product inputs); daily_revenue also references customers.
SHOP = """\
lane: shop
outputs:
  orders_clean:
    inputs: {orders: data/orders.csv}
    consumers: [fraud-stream]
  customers:
    inputs: {customers: data/customers.csv}
  daily_revenue:
    inputs: {orders: {product: orders_clean}, rates: data/rates.csv}
    transform: t:daily
    contract:
      columns:
        customer_id: {type: int64, references: customers.customer_id}
    consumers: [finance-dashboard, billing]
  revenue_alerts:
    inputs: {daily: {product: daily_revenue}}
    transform: t:alerts
  stock:
    inputs: {stock: data/stock.csv}
"""
FILES = {
    "data/orders.csv": "order_id,customer_id,amount\n1,10,5.0\n2,11,7.5\n3,10,1.0\n",
    "data/customers.csv": "customer_id\n10\n11\n",
    "data/rates.csv": "currency,rate\nEUR,1.0\n",
    "data/stock.csv": "sku,count\nA,3\n",
    "t.py": """\
        def daily(orders, rates):
            return orders.groupby("customer_id", as_index=False)["amount"].sum()

        def alerts(daily):
            return daily[daily["amount"] > 6]
    """,
}
# another lane of the same store reading shop's certified orders_clean
ANALYTICS = """\
lane: analytics
outputs:
  order_stats:
    inputs: {orders: {product: orders_clean, lane: shop}}
    consumers: [bi]
"""
DOC = Path(__file__).resolve().parents[2] / "docs" / "cli-json.md"


@pytest.fixture
def shop(write_lane):
    return write_lane(SHOP, FILES)


def _snapshot(folder: Path) -> dict[Path, bytes]:
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.name.startswith("ledger.sqlite")}
    with sqlite3.connect(folder / "ledger.sqlite") as db:
        files[folder / "ledger.sqlite"] = "\n".join(db.iterdump()).encode()
    return files


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _by_name(products: list[dict]) -> dict[str, dict]:
    return {item["output"] if item["lane"] == "shop" else f"{item['lane']}/{item['output']}": item for item in products}


def _gate_proof(lane_json, run_id: str, output: str) -> list[dict]:
    shown = lane_json("show", run_id, output)[1]
    (gate,) = [item["receipt"] for item in shown["receipts"] if item["receipt"]["kind"] == "gate"]
    return gate["proof"]


def test_lineage_without_a_store_shows_the_graph_and_creates_nothing(shop, lane, lane_json, lane_home):
    code, result = lane_json("lineage", "daily_revenue", "--spec", shop)
    assert code == 0
    assert result["store"] is False and result["lane"] == "shop" and result["output"] == "daily_revenue"
    assert [item["output"] for item in result["upstream"]] == ["orders_clean", "customers"]
    assert [item["output"] for item in result["downstream"]] == ["revenue_alerts"]
    product = result["product"]
    assert product["reads"] == ["orders_clean"] and product["references"] == ["customers"]
    assert product["consumers"] == ["finance-dashboard", "billing"]
    assert product["certification"] is None
    assert [(i["name"], i["pattern"], i["product"], i["pinned"], i["files"]) for i in product["inputs"]] == [
        ("orders", "product:orders_clean", "orders_clean", None, None), ("rates", "data/rates.csv", None, None, None)]
    assert all(item["certification"] is None for item in result["upstream"] + result["downstream"])
    assert not lane_home.exists()

    code, out, err = lane("lineage", "daily_revenue", "--spec", shop)
    assert code == 0 and "no store yet" in out and "no certification" in out
    assert not lane_home.exists()

    code, out, err = lane("lineage", "daily_revenue")
    assert code == 2 and "no lane store at" in err and "--spec SPEC" in err
    assert not lane_home.exists()


def test_lineage_shows_the_certifications_in_force_and_what_they_pinned(shop, lane, lane_json, lane_home):
    code, run = lane_json("run", shop)
    assert code == 0, run
    run_id = run["run_id"]
    before = _snapshot(lane_home)

    code, result = lane_json("lineage", "daily_revenue")  # the spec of the latest run with the output
    assert code == 0
    assert result["store"] is True and Path(result["spec"]) == shop
    assert code == 0 and lane_json("lineage", "daily_revenue", "--spec", shop)[1] == result

    upstream = _by_name(result["upstream"])
    orders = upstream["orders_clean"]
    assert orders["certification"]["status"] == "in force" and orders["certification"]["revoked"] is None
    assert (orders["certification"]["run_id"], orders["certification"]["attempt"]) == (run_id, 1)
    assert orders["certification"]["certification"] == f"receipts/{run_id}/orders_clean/0001-gate.json"
    proof = _gate_proof(lane_json, run_id, "orders_clean")
    assert [(f["uri"], f["sha256"], f["size"], f["rows"]) for f in orders["certification"]["files"]] == \
        [(f["uri"], f["sha256"], f["size"], f["rows"]) for f in proof]
    assert orders["consumers"] == ["fraud-stream"] and upstream["customers"]["consumers"] == []
    (orders_input,) = orders["inputs"]  # a file input: its pattern and the file its certification pinned
    assert orders_input["pattern"] == "data/orders.csv" and orders_input["pinned"] is None
    (pinned_file,) = orders_input["files"]
    assert pinned_file["uri"].endswith("/data/orders.csv")
    assert pinned_file["sha256"] == _sha256(shop.parent / "data" / "orders.csv")

    product = result["product"]
    assert product["certification"]["status"] == "in force" and product["certification"]["run_id"] == run_id
    product_input, rates = product["inputs"]
    assert product_input["pinned"] == {
        "lane": "shop", "output": "orders_clean", "run_id": run_id, "attempt": 1,
        "certification": f"receipts/{run_id}/orders_clean/0001-gate.json",
        "certification_digest": product_input["pinned"]["certification_digest"]}
    assert re.fullmatch(r"[0-9a-f]{64}", product_input["pinned"]["certification_digest"])
    assert product_input["pinned_is_in_force"] is True
    assert [f["sha256"] for f in product_input["files"]] == [f["sha256"] for f in proof]
    assert [f["sha256"] for f in rates["files"]] == [_sha256(shop.parent / "data" / "rates.csv")]

    (checked,) = product["checked_against"]  # the references rule, as its check pinned customers
    assert checked["output"] == "customers" and checked["pinned_is_in_force"] is True
    assert (checked["pinned"]["run_id"], checked["pinned"]["attempt"]) == (run_id, 1)
    assert checked["pinned"]["certification"] == upstream["customers"]["certification"]["certification"]
    assert orders["checked_against"] == []

    (alerts,) = result["downstream"]
    assert alerts["output"] == "revenue_alerts" and alerts["reads"] == ["daily_revenue"]
    assert alerts["certification"]["status"] == "in force"
    assert "stock" not in json.dumps(result)  # not connected

    code, out, _err = lane("lineage", "daily_revenue")
    assert code == 0
    assert "upstream (read or referenced, in build order)" in out and "downstream (reads or references it" in out
    assert f"input orders: product:orders_clean pinned run {run_id} attempt 1, still in force" in out
    assert f"sha256 {rates['files'][0]['sha256']}" in out and "consumers: finance-dashboard, billing" in out
    assert f"product sha256 {proof[0]['sha256']}" in out  # the upstream's certified bytes
    assert "inputs: orders (data/orders.csv)" in out and "inputs: daily (product:daily_revenue pinned run" in out
    assert f"references checked against: customers (run {run_id} attempt 1, still in force)" in out
    assert _snapshot(lane_home) == before, "lineage must not write to the store"


def test_a_revoked_or_newer_upstream_shows_the_pin_is_no_longer_in_force(shop, lane, lane_json):
    code, run = lane_json("run", shop)
    assert code == 0
    assert lane("revoke", "shop", "orders_clean", "--reason", "bad batch")[0] == 0
    code, result = lane_json("lineage", "daily_revenue")
    orders = _by_name(result["upstream"])["orders_clean"]
    assert orders["certification"]["status"] == "revoked: bad batch"
    assert orders["certification"]["revoked"] == "bad batch"
    assert result["product"]["inputs"][0]["pinned_is_in_force"] is False
    code, out, _err = lane("lineage", "daily_revenue")
    assert "revoked: bad batch" in out and "no longer in force" in out

    (shop.parent / "data" / "orders.csv").write_text("order_id,customer_id,amount\n1,10,9.0\n")
    code, again = lane_json("run", shop, "--outputs", "orders_clean")
    assert code == 0
    code, result = lane_json("lineage", "orders_clean")
    assert result["product"]["certification"]["run_id"] == again["run_id"]
    assert [item["output"] for item in result["downstream"]] == ["daily_revenue", "revenue_alerts"]
    daily = result["downstream"][0]
    assert daily["certification"]["run_id"] == run["run_id"]  # still the old one: it read the old orders_clean
    assert daily["inputs"][0]["pinned"]["run_id"] == run["run_id"]
    assert daily["inputs"][0]["pinned_is_in_force"] is False


def test_another_lanes_product_input_is_an_upstream_with_its_certification(shop, write_lane, lane_json):
    code, run = lane_json("run", shop, "--outputs", "orders_clean")
    assert code == 0
    analytics = write_lane(ANALYTICS, folder="analytics")
    code, result = lane_json("lineage", "order_stats", "--spec", analytics)
    assert code == 0
    (upstream,) = result["upstream"]
    assert (upstream["lane"], upstream["output"]) == ("shop", "orders_clean")
    assert upstream["certification"]["run_id"] == run["run_id"]
    assert upstream["inputs"] is None and upstream["consumers"] is None and "lane shop" in upstream["note"]
    assert upstream["checked_against"] is None
    assert result["product"]["reads"] == ["shop/orders_clean"]
    assert result["product"]["inputs"][0]["pattern"] == "product:shop/orders_clean"


def test_a_tampered_certification_is_reported_broken_not_trusted(shop, lane, lane_json, lane_home):
    code, run = lane_json("run", shop, "--outputs", "orders_clean")
    assert code == 0
    gate = lane_home / "receipts" / run["run_id"] / "orders_clean" / "0001-gate.json"
    gate.chmod(0o644)
    gate.write_bytes(gate.read_bytes().replace(b'"certified"', b'"certified" '))
    code, result = lane_json("lineage", "orders_clean")
    assert code == 0
    certification = result["product"]["certification"]
    assert certification["status"].startswith("broken: shop/orders_clean: certification") and "altered" in \
        certification["status"]
    assert certification["files"] == [] and result["product"]["inputs"][0]["files"] is None
    assert "broken" in result["product"]["note"]
    code, out, err = lane("lineage", "orders_clean")
    assert code == 0 and "broken: " in out and "Traceback" not in err


def test_unknown_outputs_lanes_and_specs_exit_2(shop, write_lane, lane, lane_json):
    assert lane_json("run", shop, "--outputs", "orders_clean")[0] == 0
    code, _out, err = lane("lineage", "daily_revenu", "--spec", shop)
    assert code == 2 and "no output 'daily_revenu'" in err and "did you mean 'daily_revenue'?" in err
    code, _out, err = lane("lineage", "order_stats")
    assert code == 2 and "no run of the local store has an output 'order_stats': pass --spec SPEC" in err
    code, _out, err = lane("lineage", "orders_clean", "--lane", "analytics")
    assert code == 2 and "no run of lane 'analytics'" in err
    code, _out, err = lane("lineage", "orders_clean", "--spec", shop, "--lane", "analytics")
    assert code == 2 and "is the spec of lane 'shop'" in err
    code, _out, err = lane("lineage", "orders_clean", "--spec", shop.parent / "missing.yaml")
    assert code == 2 and "missing.yaml" in err and "Traceback" not in err

    other = write_lane(SHOP.replace("lane: shop", "lane: shop-eu"), FILES, folder="eu")
    assert lane_json("run", other, "--outputs", "orders_clean")[0] == 0
    code, _out, err = lane("lineage", "orders_clean")
    assert code == 2 and "exists in lanes shop, shop-eu: pass --lane LANE or --spec SPEC" in err
    code, result = lane_json("lineage", "orders_clean", "--lane", "shop-eu")
    assert code == 0 and result["lane"] == "shop-eu"


def _documented_lineage() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    (body,) = re.findall(r"<!-- json-shape: lineage -->\s*```json\n(.*?)```", text, flags=re.DOTALL)
    return json.loads(body)


def _same_keys(doc: Any, actual: Any, path: str = "$") -> None:
    """The documented keys, recursively; a documented or actual null stands for an absent object/list."""
    if doc is None or actual is None:
        return
    if isinstance(doc, dict):
        assert isinstance(actual, dict), f"{path}: documented an object, got {actual!r}"
        assert set(actual) == set(doc), f"{path}: keys {sorted(actual)} != documented {sorted(doc)}"
        for name, value in doc.items():
            _same_keys(value, actual[name], f"{path}.{name}")
    elif isinstance(doc, list):
        assert isinstance(actual, list), path
        for item in actual if doc else []:
            _same_keys(doc[0], item, f"{path}[]")
    else:
        assert not isinstance(actual, dict | list), f"{path}: documented a value, got {actual!r}"


def test_lineage_json_has_the_documented_shape(shop, lane_json):
    doc = _documented_lineage()
    assert lane_json("run", shop)[0] == 0
    for output in ("daily_revenue", "orders_clean", "revenue_alerts"):
        code, result = lane_json("lineage", output)
        _same_keys({key: value for key, value in doc.items() if key not in ("upstream", "downstream")},
                   {key: value for key, value in result.items() if key not in ("upstream", "downstream")})
        for product in result["upstream"] + result["downstream"]:
            _same_keys(doc["product"], product)
    pinned = doc["product"]["inputs"][0]["pinned"]
    from batchlane.receipts import PinnedProduct

    assert set(pinned) == set(PinnedProduct.model_fields)


def test_show_and_report_list_each_pinned_product_input_with_its_certification(shop, lane, lane_json, tmp_path):
    code, run = lane_json("run", shop)
    assert code == 0
    run_id = run["run_id"]
    shown = lane_json("show", run_id, "daily_revenue")[1]
    (begin,) = [item["receipt"] for item in shown["receipts"] if item["receipt"]["kind"] == "begin"]
    pinned = next(item["product"] for item in begin["inputs"] if item["name"] == "orders")
    expected = (f"product:orders_clean certified run {run_id} attempt 1 "
                f"(certification digest {pinned['certification_digest'][:12]})")

    code, out, _err = lane("show", run_id, "daily_revenue")
    assert code == 0
    assert f"pinned orders: {expected}" in out  # the begin receipt
    assert f"input  orders: {expected}" in out  # the materialize receipt
    assert "rates: product:" not in out  # a file input has no certification

    report = tmp_path / "report.html"
    assert lane("report", run_id, "--out", report)[0] == 0
    html = report.read_text()
    assert (f"pinned certification: run <code>{run_id}</code> attempt 1 · "
            f"<code>receipts/{run_id}/orders_clean/0001-gate.json</code> · digest "
            f"<code>{pinned['certification_digest']}</code>") in html


def test_a_recorded_spec_that_moved_asks_for_spec(shop, lane, lane_json):
    assert lane_json("run", shop, "--outputs", "orders_clean")[0] == 0
    moved = shop.with_name("moved.yaml")
    shop.rename(moved)
    code, _out, err = lane("lineage", "orders_clean")
    assert code == 2 and "lane.yaml" in err and "the latest run of lane 'shop' was started with: pass --spec SPEC" in err
    assert "Traceback" not in err
    code, result = lane_json("lineage", "orders_clean", "--spec", moved)
    assert code == 0 and result["product"]["certification"]["status"] == "in force"


def test_inputs_renamed_since_the_certification_are_said_not_guessed(shop, lane_json):
    assert lane_json("run", shop, "--outputs", "orders_clean")[0] == 0
    shop.write_text(shop.read_text().replace("inputs: {orders: data/orders.csv}", "inputs: {raw: data/orders.csv}"))
    code, result = lane_json("lineage", "orders_clean", "--spec", shop)
    assert code == 0
    product = result["product"]
    assert product["certification"]["status"] == "in force"
    assert product["inputs"] == [{"name": "raw", "pattern": "data/orders.csv", "product": None, "pinned": None,
                                  "pinned_is_in_force": None, "files": None}]
    assert product["note"] == "the spec's inputs changed since this certification, which recorded orders"
