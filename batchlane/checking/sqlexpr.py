"""Row expressions (``expect:``): SQL boolean expressions evaluated by DuckDB inside the trusted checker.

The checker never runs user Python. A row expression is SQL text that DuckDB parses and evaluates over the
product's Arrow data (registered without a copy). The connection is locked down before any user text
reaches it: no file system or network access (``enable_external_access=false``), no extension installing or
loading, configuration locked. An expression is refused when the spec is loaded (exit 2) if it does not
parse as exactly one expression, reads more than its own row (a subquery, an aggregate, a window), gives a
different answer each time (a volatile function such as random()), names an unknown function, or, when
every column it reads has a declared type, does not bind as a boolean over those columns.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from batchlane.checking import budget

# The declared column types as DuckDB types (binding an expression at load needs the row's types).
DUCKDB_TYPES = {
    "int8": "TINYINT", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT",
    "uint8": "UTINYINT", "uint16": "USMALLINT", "uint32": "UINTEGER", "uint64": "UBIGINT",
    "float32": "FLOAT", "float64": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP", "date": "DATE",
}
_RESULT = "__lane_expect"
DUCKDB_MIN_MEMORY = 16 * 1024 * 1024  # below this DuckDB cannot run a filter over a batch


class ExpressionError(ValueError):
    """An ``expect:`` expression the checker cannot use; the message says why."""


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with no way out: no files, no network, no extensions, configuration locked.

    Under the check's memory budget (``budget.active()``) DuckDB is held to a share of it (``memory_limit``:
    half the reader's share, where the batch it reads and the rules' temporaries live, at least
    ``DUCKDB_MIN_MEMORY``) on one thread, and anything it must spill goes to a private temporary directory
    (it creates and removes it itself; without one it would use ``.tmp`` in the working directory). A row
    expression needing more than that FAILs its rule with DuckDB's out-of-memory message."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    active = budget.active()
    if active is not None:
        limit = max(active.reader_reserve // 2, DUCKDB_MIN_MEMORY)
        config.update(memory_limit=f"{limit // budget.KIB}KiB", threads=1,
                      temp_directory=str(Path(tempfile.gettempdir()) / f"lane-duckdb-{uuid.uuid4().hex}"))
    config["lock_configuration"] = True  # last: nothing may change the settings above
    return duckdb.connect(":memory:", config=config)


@dataclass(frozen=True)
class ParsedExpression:
    sql: str
    columns: tuple[str, ...]        # top-level names the expression reads (first part of each column reference)


_FUNCTIONS: dict[str, set[str]] = {}


def _functions(connection: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """function name -> its kinds (scalar, aggregate, window, macro ...) and 'volatile' if any overload is."""
    if not _FUNCTIONS:
        for name, kind, stability in connection.execute(
                "SELECT function_name, function_type, stability FROM duckdb_functions()").fetchall():
            found = _FUNCTIONS.setdefault(str(name).lower(), set())
            found.add(str(kind))
            if str(stability).upper() == "VOLATILE":
                found.add("volatile")
    return _FUNCTIONS


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def parse(sql: str, connection: duckdb.DuckDBPyConnection) -> ParsedExpression:
    """Parse one row expression; ExpressionError says what is wrong with it."""
    wrapped = f"SELECT ({sql}) AS {_RESULT}"
    tree = json.loads(connection.execute("SELECT json_serialize_sql(?)", [wrapped]).fetchall()[0][0])
    if tree.get("error"):
        message = tree.get("error_message", "syntax error")
        try:
            position = int(tree.get("position", -1))
        except ValueError:
            position = -1
        if position >= len("SELECT (") + len(sql):
            message = "it ends before the expression is complete"
        raise ExpressionError(f"not a valid SQL expression: {message}")
    statements = tree.get("statements", [])
    node = statements[0].get("node", {}) if len(statements) == 1 else {}
    select = node.get("select_list", [])
    if (node.get("type") != "SELECT_NODE" or len(select) != 1 or select[0].get("alias") != _RESULT
            or (node.get("from_table") or {}).get("type") != "EMPTY"
            or any(node.get(part) for part in ("where_clause", "group_expressions", "having", "qualify", "modifiers"))):
        raise ExpressionError("must be one boolean expression over a row (like amount >= 0 OR status = 'REFUND'), "
                              "not a query or several statements")
    expression = select[0]
    lambda_parameters: set[str] = set()
    columns: list[str] = []
    functions = _functions(connection)
    for item in _walk(expression):
        kind = item.get("class")
        if kind == "SUBQUERY":
            raise ExpressionError("a subquery reads beyond the row: an expression judges each row on its own values")
        if kind == "WINDOW":
            raise ExpressionError(f"window function {item.get('function_name', '')}() reads beyond the row: "
                                  "an expression judges each row on its own values")
        if kind == "STAR":
            raise ExpressionError("* / COLUMNS(...) is not allowed: name the columns the expression reads")
        if kind == "LAMBDA":
            lambda_parameters.update(_names(item.get("lhs")))
        if kind == "FUNCTION":
            name = str(item.get("function_name", "")).lower()
            found = functions.get(name)
            if found is None:
                raise ExpressionError(f"unknown operator {name}" if item.get("is_operator")
                                      else f"unknown function {name}()")
            if found & {"aggregate", "window"} and not found & {"scalar", "macro"}:
                raise ExpressionError(f"{name}() is an aggregate: it reads beyond the row; an expression judges "
                                      "each row on its own values")
            if "volatile" in found:
                raise ExpressionError(f"{name}() gives a different answer each time it runs: a check must give the "
                                      "same verdict on the same data")
        if kind == "COLUMN_REF":
            names = item.get("column_names") or []
            if names:
                columns.append(str(names[0]))
    return ParsedExpression(sql=sql, columns=tuple(dict.fromkeys(c for c in columns if c not in lambda_parameters)))


def _names(node: Any) -> set[str]:
    return {str(item["column_names"][0]) for item in _walk(node)
            if item.get("class") == "COLUMN_REF" and item.get("column_names")}


def bind_problem(parsed: ParsedExpression, declared: Mapping[str, str], connection: duckdb.DuckDBPyConnection
                 ) -> str | None:
    """When every column the expression reads has a declared type: why it does not bind as a boolean over
    them (None when it does, or when a column's type is not declared: the checker judges it on the data)."""
    lowered = {name.lower(): kind for name, kind in declared.items()}
    if any(column.lower() not in lowered for column in parsed.columns):
        return None
    # one typed row of nulls: binding needs the types, not values (LIMIT 0 evaluates nothing)
    typed = [f"NULL::{DUCKDB_TYPES[lowered[name.lower()]]} AS {quote(name)}" for name in parsed.columns]
    source = f"(SELECT {', '.join(typed) or '1'})"
    try:
        result = connection.execute(f"SELECT ({parsed.sql}) AS {_RESULT} FROM {source} AS product LIMIT 0")
        result_type = str(result.description[0][1]) if result.description else "?"
        result.fetchall()
    except duckdb.Error as exc:
        return f"does not bind over the declared columns: {first_line(exc)}"
    return type_problem(result_type)


def type_problem(result_type: str) -> str | None:
    if result_type.upper() in ("BOOLEAN", '"NULL"', "NULL"):
        return None
    return f"is {result_type}, not a boolean: write a condition, e.g. amount >= 0"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def expectation_problems(sqls: list[str], declared: Mapping[str, str]) -> list[str | None]:
    """Why each ``expect:`` expression is refused at load (None for a usable one)."""
    connection = connect()
    try:
        problems: list[str | None] = []
        for sql in sqls:
            try:
                parsed = parse(sql, connection)
            except ExpressionError as exc:
                problems.append(str(exc))
                continue
            problems.append(bind_problem(parsed, declared, connection))
        return problems
    finally:
        connection.close()


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
