"""Transforms of the example lane: each takes its inputs as DataFrames and returns one DataFrame."""

from __future__ import annotations

import pandas as pd


def clean_orders(orders: pd.DataFrame) -> pd.DataFrame:
    cleaned = orders.copy()
    cleaned["status"] = cleaned["status"].str.strip().str.upper()
    cleaned["ts"] = pd.to_datetime(cleaned["ts"], utc=True)
    cleaned["loaded_at"] = pd.Timestamp.now(tz="UTC")  # freshness is judged on when the product was built
    return cleaned[["order_id", "customer_id", "amount", "status", "ts", "loaded_at"]]


def join_payments(orders: pd.DataFrame, payments: pd.DataFrame) -> pd.DataFrame:
    """Per order: what was paid, by how many payments, and what is outstanding (two inputs -> one product)."""
    paid = payments.groupby("order_id").agg(paid=("amount", "sum"), payment_count=("payment_id", "count"))
    joined = orders[["order_id", "amount"]].merge(paid, on="order_id", how="left")
    joined["paid"] = joined["paid"].fillna(0.0).round(2)
    joined["payment_count"] = joined["payment_count"].fillna(0).astype("int64")
    joined["outstanding"] = (joined["amount"] - joined["paid"]).round(2)
    return joined[["order_id", "paid", "payment_count", "outstanding"]]


def daily_revenue(orders: pd.DataFrame, payments: pd.DataFrame) -> pd.DataFrame:
    """Per day: orders, their amount and what was collected, from two certified products of the lane."""
    joined = orders[["order_id", "ts", "amount"]].merge(payments[["order_id", "paid"]], on="order_id", how="left")
    joined["day"] = joined["ts"].dt.tz_convert("UTC").dt.date
    daily = joined.groupby("day", as_index=False).agg(
        orders=("order_id", "count"), revenue=("amount", "sum"), collected=("paid", "sum"))
    daily["revenue"] = daily["revenue"].round(2)
    daily["collected"] = daily["collected"].fillna(0.0).round(2)
    return daily[["day", "orders", "revenue", "collected"]]
