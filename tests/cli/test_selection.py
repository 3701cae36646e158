"""Graph selection (`--outputs +X`, `X+`, `+X+`, depths, unions) for `lane plan`, `lane run` and `lane rerun`."""

from __future__ import annotations

import pytest

from batchlane.plan import PlanError
from batchlane.selection import SelectionError, expand_selection, parse_selector
from batchlane.spec import parse_spec

# orders_clean -> daily_revenue -> revenue_alerts (product inputs); daily_revenue also references customers;
# stock stands alone.
SHOP = """\
lane: shop
outputs:
  orders_clean:
    inputs: {orders: data/orders.csv}
  customers:
    inputs: {customers: data/customers.csv}
  daily_revenue:
    inputs: {orders: {product: orders_clean}}
    transform: t:daily
    contract:
      columns:
        customer_id: {type: int64, references: customers.customer_id}
  revenue_alerts:
    inputs: {daily: {product: daily_revenue}}
    transform: t:alerts
  stock:
    inputs: {stock: data/stock.csv}
"""
FILES = {
    "data/orders.csv": "order_id,customer_id,amount\n1,10,5.0\n2,11,7.5\n3,10,1.0\n",
    "data/customers.csv": "customer_id\n10\n11\n",
    "data/stock.csv": "sku,count\nA,3\n",
    "t.py": """\
        def daily(orders):
            return orders.groupby("customer_id", as_index=False)["amount"].sum()

        def alerts(daily):
            return daily[daily["amount"] > 6]
    """,
}


def _spec():
    import yaml

    return parse_spec(yaml.safe_load(SHOP))


@pytest.fixture
def shop(write_lane):
    return write_lane(SHOP, FILES)


@pytest.mark.parametrize(("selection", "expected"), [
    ("daily_revenue", ["daily_revenue"]),
    ("+daily_revenue", ["orders_clean", "customers", "daily_revenue"]),
    ("daily_revenue+", ["daily_revenue", "revenue_alerts"]),
    ("+daily_revenue+", ["orders_clean", "customers", "daily_revenue", "revenue_alerts"]),
    ("+revenue_alerts", ["orders_clean", "customers", "daily_revenue", "revenue_alerts"]),
    ("1+revenue_alerts", ["daily_revenue", "revenue_alerts"]),
    ("orders_clean+1", ["orders_clean", "daily_revenue"]),
    ("0+stock", ["stock"]),
    ("stock,orders_clean+", ["orders_clean", "daily_revenue", "revenue_alerts", "stock"]),
    ("revenue_alerts stock, +customers", ["customers", "revenue_alerts", "stock"]),
    ("revenue_alerts,daily_revenue,orders_clean,daily_revenue", ["orders_clean", "daily_revenue", "revenue_alerts"]),
])
def test_selectors_expand_to_a_topologically_ordered_union(selection, expected):
    spec = _spec()
    assert expand_selection(spec, selection) == expected
    assert expand_selection(spec, selection.replace(" ", ",").split(",")) == expected  # as argparse hands them over


def test_a_selection_comes_in_graph_order_whatever_order_it_is_written_in():
    spec = _spec()
    order = expand_selection(spec, "revenue_alerts,+daily_revenue")
    for name in order:
        assert not spec.upstream(name) & set(order[order.index(name):]), f"{name} comes before its upstream"


@pytest.mark.parametrize(("selection", "named", "suggested"), [
    ("+daily_revenu", "'daily_revenu' (in '+daily_revenu')", "did you mean 'daily_revenue'?"),
    ("orders_clean,revenue_alert+", "'revenue_alert' (in 'revenue_alert+')", "did you mean 'revenue_alerts'?"),
    ("Stock", "'Stock'", "did you mean 'stock'?"),
    ("zzz", "'zzz'", "outputs: orders_clean, customers, daily_revenue, revenue_alerts, stock"),
])
def test_unknown_names_are_refused_with_the_name_and_a_close_match(selection, named, suggested):
    with pytest.raises(SelectionError) as caught:
        expand_selection(_spec(), selection)
    message = str(caught.value)
    assert f"lane 'shop' has no output {named}" in message and suggested in message
    assert isinstance(caught.value, PlanError)  # the CLI maps PlanError to exit 2


@pytest.mark.parametrize("selection", ["++stock", "stock++", "@stock", "+", "+stock+x", "2+", "st*ck"])
def test_malformed_selectors_are_refused_with_the_syntax(selection):
    with pytest.raises(SelectionError, match=r"is not a selector: write OUTPUT, \+OUTPUT"):
        expand_selection(_spec(), selection)


def test_an_empty_selection_is_refused():
    with pytest.raises(SelectionError, match="needs at least one output"):
        expand_selection(_spec(), " , ")


def test_parse_selector_reaches():
    assert parse_selector("+a+") == parse_selector("+a+").__class__(text="+a+", name="a", upstream=-1, downstream=-1)
    selector = parse_selector("3+a")
    assert (selector.name, selector.upstream, selector.downstream) == ("a", 3, None)


# --- the CLI -------------------------------------------------------------------------------------------------


def test_plan_previews_a_graph_selection_on_an_empty_store(shop, lane_home, lane_json):
    code, plan = lane_json("plan", shop, "--outputs", "+daily_revenue")
    assert code == 0 and plan["store"] is False
    assert set(plan["outputs"]) == {"orders_clean", "customers", "daily_revenue"}
    assert {item["action"] for item in plan["outputs"].values()} == {"run"}
    assert not lane_home.exists()


def test_run_with_plus_x_on_an_empty_store_builds_x_and_its_upstream_only(shop, lane_json):
    code, run = lane_json("run", shop, "--outputs", "+daily_revenue")
    assert code == 0, run
    assert set(run["outputs"]) == {"orders_clean", "customers", "daily_revenue"}
    assert {item["state"] for item in run["outputs"].values()} == {"certified"}

    code, downstream = lane_json("run", shop, "--outputs", "daily_revenue+")
    assert code == 0
    assert {name: item["state"] for name, item in downstream["outputs"].items()} == {
        "daily_revenue": "memoized", "revenue_alerts": "certified"}


def test_rerun_expands_a_selection_within_the_run(shop, lane_json, lane):
    code, run = lane_json("run", shop)
    assert code == 0
    code, rerun = lane_json("rerun", run["run_id"], "--outputs", "+daily_revenue", "--force")
    assert code == 0
    assert rerun["rerun_outputs"] == ["orders_clean", "customers", "daily_revenue"]

    code, partial = lane_json("run", shop, "--outputs", "+daily_revenue")
    assert code == 0
    code, _out, err = lane("rerun", partial["run_id"], "--outputs", "daily_revenue+")
    assert code == 2
    assert "revenue_alerts" in err and "start a new run" in err


def test_unknown_or_malformed_selection_exits_2_before_any_store_exists(shop, lane, lane_home):
    code, _out, err = lane("run", shop, "--outputs", "+daily_revenu")
    assert code == 2
    assert "no output 'daily_revenu'" in err and "did you mean 'daily_revenue'?" in err
    assert "Traceback" not in err
    assert not lane_home.exists()

    code, _out, err = lane("plan", shop, "--outputs", "stock,++orders_clean")
    assert code == 2 and "'++orders_clean' is not a selector" in err


def test_selecting_an_output_whose_uncertified_upstream_is_not_selected_is_refused(shop, lane):
    """Core policy (plan.plan_run): exit 2, naming the upstream and suggesting +X."""
    code, _out, err = lane("run", shop, "--outputs", "revenue_alerts")
    assert code == 2, err
    assert "daily_revenue" in err and "+revenue_alerts" in err
    assert "Traceback" not in err

    code, _out, _err = lane("run", shop, "--outputs", "+revenue_alerts", "--json")
    assert code == 0
    code, _out, err = lane("run", shop, "--outputs", "revenue_alerts")  # the upstream is certified now
    assert code == 0, err


def test_help_explains_the_selectors(lane):
    for command in (("run", "--help"), ("rerun", "--help"), ("plan", "--help")):
        code, out, _err = lane(*command)
        assert code == 0
        text = " ".join(out.split())
        assert "+X adds everything X reads or references (upstream)" in text
        assert "X+ everything that reads or references X (downstream)" in text
