"""`expect:` row expressions under a memory budget: DuckDB is held to a share of it, on one thread, spilling to a
private temporary directory (not `.tmp` in the working directory), with the same results."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from batchlane.checking import budget, sqlexpr
from tests.checks.helpers import check, contract, rule, write


def _settings(connection) -> tuple[str, int, str]:
    return connection.execute("SELECT current_setting('memory_limit'), current_setting('threads'), "
                              "current_setting('temp_directory')").fetchall()[0]


def test_under_a_budget_duckdb_gets_a_share_one_thread_and_a_private_spill_directory():
    with budget.bounded(128 << 20) as active:
        assert active is not None and active.reader_reserve == 32 << 20
        connection = sqlexpr.connect()
    try:
        memory, threads, spill_to = _settings(connection)
        assert (memory, threads) == ("16.0 MiB", 1)
        assert spill_to.startswith(tempfile.gettempdir()) and "lane-duckdb-" in spill_to
        with pytest.raises(Exception, match="configuration"):  # locked: an expression cannot lift the limit
            connection.execute("SET memory_limit = '8GB'")
    finally:
        connection.close()


def test_without_a_budget_duckdb_keeps_its_defaults():
    connection = sqlexpr.connect()
    try:
        memory, _, spill_to = _settings(connection)
        assert memory != "16.0 MiB" and "lane-duckdb-" not in spill_to
    finally:
        connection.close()


def test_expectations_give_the_same_result_under_a_budget(tmp_path):
    values = np.arange(200_000, dtype=np.int64)
    path = write(tmp_path, {"a": values, "b": [f"x{v}" for v in values]}, row_group_size=50_000)
    rules = contract(expect=[{"name": "sevens", "sql": "a % 7 <> 3 AND b NOT LIKE 'x19999%'"}])
    unbounded = rule(check(path, rules), "expect", "sevens")
    bounded = rule(check(path, rules, max_memory=64 << 20), "expect", "sevens")
    assert bounded == unbounded and not bounded.passed
    assert [example["row"] for example in bounded.failing_sample] == [3, 10, 17, 24, 31]
