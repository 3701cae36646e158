"""`lane init DIR`: a small working lane to start from.

Two data products from two CSV inputs: one passed through unchanged, one cleaned by a transform and
tied to the first by a reference rule; sample data; a pytest test for the transform. `lane validate`
accepts it and `lane run` certifies it as written.
"""

from __future__ import annotations

import re
from pathlib import Path

from batchlane.spec import NAME_PATTERN


class ScaffoldError(ValueError):
    """The folder cannot receive a new lane; nothing was written."""


SPEC = """\
# A lane made by `lane init`. Check it with `lane validate lane.yaml`, preview with `lane plan lane.yaml`,
# run it with `lane run lane.yaml`. Every output is certified against its contract: no PASS, no read.
lane: {lane}
outputs:
  customers:
    inputs: {{customers: data/customers.csv}}     # one input and no transform: passed through unchanged
    contract:
      columns:
        customer_id: {{type: int64, not_null: true, unique: true}}
        email:       {{type: string, not_null: true, regex: '^[^@\\s]+@[^@\\s]+$'}}
        country:     {{type: string, accepted_values: [DE, FR, NL, US]}}
      row_count: {{min: 1}}

  orders_clean:
    inputs: {{orders: data/orders.csv}}
    transform: transforms:clean_orders           # module:function next to this file
    contract:
      columns:
        order_id:    {{type: int64, not_null: true, unique: true}}
        customer_id: {{type: int64, not_null: true, references: customers.customer_id}}
        amount:      {{type: float64, not_null: true, min: 0}}
        status:      {{type: string, not_null: true, accepted_values: [NEW, PAID, SHIPPED]}}
      row_count: {{min: 1}}
    consumers: [reporting]
"""

TRANSFORMS = '''\
"""Transforms of this lane: each gets its inputs as pandas DataFrames (keyword arguments named after the
inputs in lane.yaml) and returns one DataFrame, written as Parquet and checked against the contract."""

from __future__ import annotations

import pandas as pd


def clean_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """Orders with a known amount, statuses upper-cased and trimmed."""
    cleaned = orders.dropna(subset=["amount"]).copy()
    cleaned["status"] = cleaned["status"].str.strip().str.upper()
    cleaned["amount"] = cleaned["amount"].astype("float64")
    return cleaned[["order_id", "customer_id", "amount", "status"]].reset_index(drop=True)
'''

TEST = '''\
"""A test of the transform alone, on a hand-made frame: `python -m pytest tests`."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transforms import clean_orders  # noqa: E402


def test_clean_orders_normalises_status_and_drops_orders_without_amount():
    orders = pd.DataFrame({
        "order_id": [1, 2, 3],
        "customer_id": [10, 11, 10],
        "amount": [12.5, None, 3.0],
        "status": [" new", "PAID", "shipped "],
    })
    cleaned = clean_orders(orders)
    assert cleaned["order_id"].tolist() == [1, 3]
    assert cleaned["status"].tolist() == ["NEW", "SHIPPED"]
    assert cleaned["amount"].dtype == "float64"
    assert list(cleaned.columns) == ["order_id", "customer_id", "amount", "status"]
'''

CUSTOMERS = """\
customer_id,email,country
1,ada@example.com,DE
2,grace@example.com,US
3,alan@example.com,FR
4,edsger@example.com,NL
5,barbara@example.com,US
"""

ORDERS = """\
order_id,customer_id,amount,status
100,1,25.00,new
101,2,12.50, paid
102,2,7.25,SHIPPED
103,3,,new
104,4,99.90,Paid
105,5,5.00,shipped
106,1,42.00,NEW
"""

README = """\
# {lane}

Made by `lane init`. Inputs are in `data/`, the transform in `transforms.py`, its test in `tests/`.

```bash
lane validate lane.yaml      # spec, inputs, transforms, rules: every problem listed, nothing written
lane plan lane.yaml          # what a run would do: run, memoized or blocked, and why
lane run lane.yaml           # materialize, check and certify; the store is .lane/ (or $LANE_HOME)
python -m pytest tests       # the transform's own test
```
"""


def lane_name(folder: Path) -> str:
    """A valid lane name from a folder name: lower case, other characters as '_'."""
    name = re.sub(r"[^a-z0-9_\-]+", "_", folder.resolve().name.lower()).strip("_-")
    name = re.sub(r"^[^a-z]+", "", name)[:63]
    return name or "my_lane"


def scaffold(folder: Path, lane: str | None = None) -> list[Path]:
    """Write the lane into ``folder`` (created if missing; refused unless empty). Returns the files written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise ScaffoldError(f"{folder} is not empty: `lane init` writes only into a new or empty folder")
    name = lane or lane_name(folder)
    if not re.match(NAME_PATTERN, name):
        raise ScaffoldError(f"lane name {name!r} must match {NAME_PATTERN} (pass --lane NAME)")
    files = {
        "lane.yaml": SPEC.format(lane=name),
        "transforms.py": TRANSFORMS,
        "data/customers.csv": CUSTOMERS,
        "data/orders.csv": ORDERS,
        "tests/test_transforms.py": TEST,
        "README.md": README.format(lane=name),
    }
    written = []
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as handle:  # never overwrite
            handle.write(text)
        written.append(path)
    return written
