"""Regenerate the example lane's input data (fixed seed): python make_data.py"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent / "data"
COUNTRIES = ["DE", "FR", "NL", "US", "GB"]
STATUSES = ["new", "paid", "shipped", "PAID", "Shipped"]  # the transform normalises case


def main() -> None:
    rng = random.Random(7)
    HERE.mkdir(exist_ok=True)
    customers = [(i, f"customer{i}@example.com", rng.choice(COUNTRIES)) for i in range(1, 201)]
    with open(HERE / "customers.csv", "w") as handle:
        handle.write("customer_id,email,country\n")
        handle.writelines(f"{c},{e},{k}\n" for c, e, k in customers)
    start = datetime(2026, 1, 1)
    orders = []
    for order_id in range(1, 2001):
        ts = start + timedelta(minutes=order_id * 37 + rng.randint(0, 30))
        orders.append((order_id, rng.randint(1, 200), round(rng.uniform(1, 500), 2), rng.choice(STATUSES), ts))
    with open(HERE / "orders.csv", "w") as handle:
        handle.write("order_id,customer_id,amount,status,ts\n")
        handle.writelines(f"{o},{c},{a},{s},{t:%Y-%m-%dT%H:%M:%S}\n" for o, c, a, s, t in orders)
    with open(HERE / "payments.jsonl", "w") as handle:
        payment_id = 0
        for order_id, _, amount, status, ts in orders:
            if status.lower() == "new":
                continue
            first = round(amount / 2, 2) if rng.random() < 0.2 else amount
            for part in (first, round(amount - first, 2)) if first != amount else (amount,):
                payment_id += 1
                handle.write(json.dumps({"payment_id": payment_id, "order_id": order_id,
                                         "amount": part,
                                         "paid_at": f"{ts + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}"}) + "\n")


if __name__ == "__main__":
    main()
