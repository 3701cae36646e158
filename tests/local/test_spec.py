"""Spec validation: every bad spec is refused at load with the file, the field path and the reason.

Specs are written as YAML text here (not dumped by a YAML library), so what is tested is what a user types.
The CLI-level view of the same refusals (exit 2, no traceback, nothing certified) is tests/corpus.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from batchlane.spec import (
    DEFAULT_FUTURE_SKEW,
    ColumnRules,
    SpecError,
    load_contract,
    load_spec,
    parse_duration,
    parse_spec,
    render_path,
)
from batchlane.strict_yaml import MAX_NESTING

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
lane: orders
outputs:
  a:
    inputs: {x: x.csv}
    contract:
      columns:
        id: {type: int64, unique: true}
  b:
    inputs: {x: x.csv, y: y.csv}
    transform: t:f
    contract:
      columns:
        a_id: {references: a.id}
      unique: [[a_id, day]]
      row_count: {min: 1, max: 10}
"""

# One column under outputs.a.contract.columns, to try a rule: COLUMN % "{type: int8, max: 1000}"
COLUMN = """\
lane: orders
outputs:
  a:
    inputs: {x: x.csv}
    contract:
      columns:
        c: %s
"""
C = "outputs.a.contract.columns.c"


def write(tmp_path: Path, text: str, name: str = "lane.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert message.startswith((f"invalid lane spec {path}", f"lane spec {path}")), message
    return message


def test_good_spec_loads_with_dependency_order(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.topological_order() == ["a", "b"]
    assert spec.outputs["b"].dependencies() == {"a"}
    assert spec.base_dir == tmp_path.resolve()
    assert spec.source_path == (tmp_path / "lane.yaml").resolve()
    assert spec.output_digest("a") != spec.output_digest("b")


def test_example_lane_is_valid():
    spec = load_spec(REPO / "examples" / "orders" / "lane.yaml")
    assert len(spec.outputs) >= 3
    assert any(len(o.inputs) == 2 and o.transform for o in spec.outputs.values())
    assert any(o.contract.references() for o in spec.outputs.values())


def test_pyyaml_is_not_used_for_specs():
    code = "import sys, batchlane.spec; print('yaml' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "False"


# --- YAML 1.2 ------------------------------------------------------------------------------------------------


def test_yaml_1_2_words_stay_strings(tmp_path):
    spec = load_spec(write(tmp_path, COLUMN % "{type: string, accepted_values: [DE, NO, yes, on, off, n, Y]}"))
    assert spec.outputs["a"].contract.columns["c"].accepted_values == ["DE", "NO", "yes", "on", "off", "n", "Y"]


def test_yaml_1_1_directive_is_refused(tmp_path):
    message = refused(tmp_path, "%YAML 1.1\n---\n" + COLUMN % "{type: string, accepted_values: [DE, NO]}")
    assert "declares %YAML 1.1" in message and "line 2" in message


def test_duplicate_key_names_path_and_both_lines(tmp_path):
    text = COLUMN % "{type: float64,\n            min: 0,\n            min: 5}"
    message = refused(tmp_path, text)
    assert f"{C}.min: duplicate key 'min' (first at line 8)" in message
    assert "(line 9, column 13)" in message


def test_duplicate_output_is_refused(tmp_path):
    message = refused(tmp_path, GOOD + "  a:\n    inputs: {z: z.csv}\n")
    assert "outputs.a: duplicate key 'a' (first at line 3)" in message


def test_anchors_and_aliases_are_fine(tmp_path):
    text = """\
lane: orders
outputs:
  a: {inputs: {x: x.csv}, contract: &shared {columns: {id: {type: int64, not_null: true}}}}
  b: {inputs: {x: y.csv}, contract: *shared}
"""
    spec = load_spec(write(tmp_path, text))
    assert spec.outputs["a"].contract == spec.outputs["b"].contract


def test_alias_bomb_is_refused(tmp_path):
    lines = ["lane: orders", "l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    message = refused(tmp_path, "\n".join(lines) + "\n")
    assert "expands to more than 500,000 values" in message and "alias" in message


def test_recursive_alias_is_refused(tmp_path):
    assert "recursive alias" in refused(tmp_path, "lane: orders\noutputs: &o {a: {inputs: *o}}\n")


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 100_000])
def test_deep_nesting_is_refused_without_recursion_error(tmp_path, depth):
    message = refused(tmp_path, "lane: orders\noutputs: " + "[" * depth + "]" * depth + "\n")
    assert f"nested more than {MAX_NESTING} levels deep" in message and "line 2" in message


def test_deep_nesting_through_aliases_is_refused(tmp_path):
    inner = "[" * 40 + "]" * 40
    message = refused(tmp_path, f"lane: orders\nx: &deep {inner}\noutputs: {'[' * 30}*deep{']' * 30}\n")
    assert "once aliases are expanded" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lane: orders\noutputs:\n\ta: 1\n", "tabs cannot indent YAML: use spaces (line 3, column 1)"),
        ("lane: [unclosed\n", "not valid YAML: expected ',' or ']'"),
        ("lane: orders\n---\nlane: other\n", "more than one YAML document"),
        ("lane: *nowhere\n", "found undefined alias 'nowhere' (line 1, column 7)"),
        ("lane: a: b\n", "mapping values are not allowed here (line 1, column 8)"),
        ("lane: \x07\n", "unacceptable character"),
        ("lane: !!python/name:os.system x\n", "could not determine a constructor"),
    ],
)
def test_invalid_yaml_gives_line_and_column(tmp_path, text, expected):
    assert expected in refused(tmp_path, text)


def test_files_that_are_not_yaml_text(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "absent.yaml")
    with pytest.raises(SpecError, match="not a file"):
        load_spec(tmp_path)
    (tmp_path / "binary.yaml").write_bytes(b"lane: \xff\xfe\n")
    with pytest.raises(SpecError, match="not UTF-8 text"):
        load_spec(tmp_path / "binary.yaml")


# --- shape of the document -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty; a lane spec is a mapping like\n  lane: NAME"),
        ("# only a comment\n", "the file is empty"),
        ("- lane: orders\n", "must be a mapping, got a list; a lane spec is a mapping like"),
        ("orders\n", "must be a mapping, got 'orders' (text)"),
        ("outputs: {a: {inputs: {x: x.csv}}}\n", "lane: required: the lane's name"),
        ("lane: orders\n", "outputs: required: a mapping of output names to outputs"),
        ("lane: orders\noutputs: {}\n", "outputs: must not be empty (line 2)"),
        ("lane: orders\noutputs: [a, b]\n", "outputs: must be a mapping (key: value), got a list (line 2)"),
        ("lane: 5\noutputs: {a: {inputs: {x: x.csv}}}\n", "lane: must be text, got 5 (a number) (line 1)"),
        ("lane: Orders Lane\noutputs: {a: {inputs: {x: x.csv}}}\n", "lane: 'Orders Lane' is not a valid name"),
        ("lane: orders\noutputs: {Bad: {inputs: {x: x.csv}}}\n", "outputs.Bad: output name 'Bad' is not a valid name"),
        ("lane: orders\noutputs: {a: {inputs: x.csv}}\n",
         "outputs.a.inputs: must be a mapping (key: value), got 'x.csv'"),
        ("lane: orders\noutputs: {a: {transform: t:f}}\n", "outputs.a.inputs: required: a mapping of input names"),
        ("lane: orders\noutputs: {a: {inputs: {}}}\n", "outputs.a.inputs: must not be empty"),
        ("lane: orders\noutputs: {a: {inputs: {1: x.csv}}}\n", "outputs.a.inputs[1]: names must be text, got 1"),
        ("lane: orders\noutputs: {a: {inputs: {my-orders: x.csv}}}\n",
         "input name 'my-orders' must be a Python identifier"),
        ("lane: orders\noutputs: {a: {inputs: {x: ''}}}\n", "outputs.a.inputs.x: must be a path, glob or s3:// URI"),
        ("lane: orders\noutputs: {a: {inputs: {x: 5}}}\n", "outputs.a.inputs.x: must be a path, glob or s3:// URI (text), or {product: OUTPUT} for a product of the lane, got 5 (a number)"),
        ("lane: orders\noutputs: {a: {inputs: {x: x.csv}, consumers: sync}}\n", "outputs.a.consumers: must be a list"),
        ("lane: orders\noutputs: {a: {inputs: {x: x.csv}, consumers: [ok, 'bad name!']}}\n",
         "outputs.a.consumers[1]: consumer 'bad name!' must be letters"),
    ],
)
def test_document_shape_and_names(tmp_path, text, expected):
    assert expected in refused(tmp_path, text)


@pytest.mark.parametrize("transform", ["no_colon", "../evil:f", "a..b:f", "mod:f:g", "mod:", "1mod:f"])
def test_transform_must_be_module_function(tmp_path, transform):
    message = refused(tmp_path, f"lane: orders\noutputs: {{a: {{inputs: {{x: x.csv}}, transform: '{transform}'}}}}\n")
    assert f"outputs.a.transform: {transform!r} must be module:function" in message


def test_transform_needed_for_several_inputs(tmp_path):
    message = refused(tmp_path, "lane: orders\noutputs: {a: {inputs: {x: x.csv, y: y.csv}}}\n")
    assert "outputs.a.transform: without a transform an output takes exactly one input" in message


def test_every_problem_is_listed_with_its_line(tmp_path):
    text = """\
lane: X
outputs:
  a:
    inputs: {x: x.csv}
    consumers: [ok, 'bad name']
    contract:
      columns:
        c: {not_null: maybe}
"""
    message = refused(tmp_path, text)
    assert message.splitlines()[0].endswith("(3 problems):")
    assert "  lane: 'X' is not a valid name" in message and "(line 1)" in message
    assert f"  {C}.not_null: must be true or false, got 'maybe' (text) (line 8)" in message
    assert "  outputs.a.consumers[1]: consumer 'bad name'" in message and "(line 5)" in message


# --- unknown keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (COLUMN % "{not_nul: true}", f"{C}.not_nul: unknown key; did you mean 'not_null'? (line 7)"),
        (COLUMN % "{typ: int64}", f"{C}.typ: unknown key; did you mean 'type'?"),
        (COLUMN % "{nullable: true}", f"{C}.nullable: unknown key; expected one of: type, not_null, unique,"),
        (COLUMN % "{inputs: {x: y}}", f"{C}.inputs: unknown key here; 'inputs' belongs in an output (outputs.OUTPUT)"),
        ("lane: orders\noutputs: {a: {inputs: {x: x.csv}, not_null: true}}\n",
         "outputs.a.not_null: unknown key here; 'not_null' belongs in a column (contract.columns.COLUMN)"),
        ("lane: orders\noutputs: {a: {inputs: {x: x.csv}, contracts: {}}}\n",
         "outputs.a.contracts: unknown key; did you mean 'contract'?"),
        ("lane: orders\noutput: {a: {inputs: {x: x.csv}}}\n", "output: unknown key; did you mean 'outputs'? (line 2)"),
        ("lane: orders\noutputs: {a: {inputs: {x: x.csv}, contract: {row_count: {minimum: 1}}}}\n",
         "outputs.a.contract.row_count.minimum: unknown key; did you mean 'min'?"),
        ("lane: orders\noutputs: {a: {inputs: {x: x.csv}, contract: {columns: {'a.b': {nott: 1}}}}}\n",
         "outputs.a.contract.columns['a.b'].nott: unknown key"),
    ],
)
def test_unknown_keys_get_a_suggestion(tmp_path, text, expected):
    message = refused(tmp_path, text)
    assert expected in message
    assert "Extra inputs are not permitted" not in message


def test_unknown_type_gets_a_suggestion(tmp_path):
    message = refused(tmp_path, COLUMN % "{type: INT64}")
    assert f"{C}.type: unknown type 'INT64'; did you mean 'int64'? (types: int8, int16," in message


# --- rules against the declared type -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("{type: int8, max: 1000}", f"{C}.max: 1000 is outside the int8 range -128..127"),
        ("{type: uint8, min: -1}", f"{C}.min: -1 is outside the uint8 range 0..255"),
        ("{type: int64, max: 9223372036854775808}", "outside the int64 range"),
        ("{type: int64, min: 0.5}", f"{C}.min: must be a whole number for an int64 column, got 0.5"),
        ("{type: float32, max: 1e39}", f"{C}.max: 1e+39 is outside the float32 range"),
        ("{type: float64, min: .nan}", f"{C}.min: must be a finite number, got .nan"),
        ("{min: .inf}", f"{C}.min: must be a finite number, got .inf"),
        ("{max: -.inf}", f"{C}.max: must be a finite number, got -.inf"),
        ("{min: true}", f"{C}.min: must be a number, got true (a boolean)"),
        ("{min: '5'}", f"{C}.min: must be a number, got '5' (text)"),
        ("{type: string, min: 1}", f"{C}.min: min applies to numeric columns (int*, uint*, float*), not string"),
        ("{type: bool, max: 1}", f"{C}.max: max applies to numeric columns (int*, uint*, float*), not bool"),
        ("{type: timestamp, min: 0}",
         "min applies to numeric columns (int*, uint*, float*), not timestamp; for freshness use max_age"),
        ("{type: date, max: 20260101}", "not date; for freshness use max_age"),
        ("{min: 5, max: 1}", f"{C}.min: min (5) is greater than max (1)"),
        ("{type: string, accepted_values: [DE, true, US]}",
         f"{C}.accepted_values[1]: true (a boolean) is not text, and a string column holds text: quote it ('true')"),
        ("{type: string, accepted_values: [DE, 49]}", f"{C}.accepted_values[1]: 49 (a number) is not text"),
        ("{type: int64, accepted_values: [1, true]}",
         f"{C}.accepted_values[1]: true (a boolean) is not a whole number, and an int64 column holds whole numbers"),
        ("{type: int64, accepted_values: [1, '2']}", f"{C}.accepted_values[1]: '2' (text) is not a whole number"),
        ("{type: int64, accepted_values: [1.5]}", f"{C}.accepted_values[0]: 1.5 (a number) is not a whole number"),
        ("{type: int8, accepted_values: [1, 300]}", f"{C}.accepted_values[1]: 300 is outside the int8 range -128..127"),
        ("{type: float64, accepted_values: [1.5, x]}", f"{C}.accepted_values[1]: 'x' (text) is not a number"),
        ("{type: float64, accepted_values: [.nan]}", f"{C}.accepted_values[0]: .nan is not a finite number"),
        ("{type: bool, accepted_values: [true, 1]}", f"{C}.accepted_values[1]: 1 (a number) is not a boolean"),
        ("{type: timestamp, accepted_values: [x]}",
         "accepted_values applies to string, integer, float and bool columns"),
        ("{accepted_values: [a, ~]}",
         f"{C}.accepted_values[1]: null is not a value to accept: nulls are ruled by not_null"),
        ("{accepted_values: [2026-01-01]}", "2026-01-01 (a date; quote it to make it text) is not a plain value"),
        ("{accepted_values: [a, false]}", f"{C}.accepted_values: mixes booleans (true/false) with other values"),
        ("{accepted_values: []}", f"{C}.accepted_values: must list at least one value"),
        ("{accepted_values: NEW}", f"{C}.accepted_values: must be a list of values"),
        ("{type: int64, regex: '^a'}", f"{C}.regex: regex applies to string columns, not int64"),
        ("{regex: '(['}", f"{C}.regex: invalid regular expression '(['"),
        ("{regex: '(?=a)a'}", f"{C}.regex: '(?=a)a' is not usable by the checker's RE2 engine"),
        (r"{regex: '(a)\1'}", "is not usable by the checker's RE2 engine"),
        ("{regex: 5}", f"{C}.regex: must be a regular expression (text), got 5"),
        ("{not_null: 'yes'}", f"{C}.not_null: must be true or false, got 'yes' (text)"),
        ("{not_null: yes}", f"{C}.not_null: must be true or false, got 'yes' (text)"),
        ("{unique: 1}", f"{C}.unique: must be true or false, got 1 (a number)"),
        ("{references: customers}", f"{C}.references: 'customers' must be OUTPUT.COLUMN"),
        ("[int64]", f"{C}: must be a mapping (key: value), got a list"),
    ],
)
def test_rules_are_checked_against_the_declared_type(tmp_path, rules, expected):
    message = refused(tmp_path, COLUMN % rules)
    assert expected in message
    assert "(line 7)" in message


@pytest.mark.parametrize(
    "rules",
    [
        "{type: int8, min: -128, max: 127}",
        "{type: uint64, max: 18446744073709551615}",
        "{type: float32, min: -1.5, max: 3}",
        "{min: 0.5}",                                  # no type: the checker judges against the column it finds
        "{type: int64, accepted_values: [1, 2, -3]}",
        "{type: float64, accepted_values: [1, 2.5]}",
        "{type: bool, accepted_values: [true]}",
        "{accepted_values: [1, a]}",
        "{type: string, regex: '^[^@\\s]+@[^@\\s]+$'}",
        "{type: timestamp, max_age: 30d, future_skew: 0s, timezone: Europe/Berlin}",
        "{type: date, max_age: 36525d}",
        "{max_age: 12h}",
    ],
)
def test_rules_that_fit_their_type_load(tmp_path, rules):
    assert load_spec(write(tmp_path, COLUMN % rules)).outputs["a"].contract.columns["c"]


def test_bounds_keep_their_kind(tmp_path):
    rules = load_spec(write(tmp_path, COLUMN % "{type: int64, min: 0, max: 9007199254740993}")).outputs["a"]
    column = rules.contract.columns["c"]
    assert column.min == 0 and isinstance(column.min, int)
    assert column.max == 9007199254740993   # exact: not rounded through a float


# --- durations, freshness, time zones ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("{max_age: 99999999999d}", f"{C}.max_age: '99999999999d' is longer than 100 years (36525d)"),
        ("{max_age: 1" + "0" * 5000 + "d}", "is longer than 100 years"),
        ("{max_age: 5220w}", "is longer than 100 years"),
        ("{max_age: 30 parsecs}", f"{C}.max_age: '30 parsecs' is not a duration like 30d, 12h, 15m, 90s or 2w"),
        ("{max_age: 30}", f"{C}.max_age: must be a duration like 30d, 12h, 15m, 90s or 2w, got 30 (a number)"),
        ("{max_age: -1d}", "is not a duration"),
        ("{max_age: 0s}", f"{C}.max_age: must be longer than 0"),
        ("{type: int64, max_age: 1d}", f"{C}.max_age: max_age applies to timestamp or date columns, not int64"),
        ("{type: timestamp, future_skew: 5m}", f"{C}.future_skew: future_skew only affects max_age"),
        ("{max_age: 1d, future_skew: 200y}", f"{C}.future_skew: '200y' is not a duration"),
        ("{type: timestamp, max_age: 1d, timezone: Europe/Berln}",
         (f"{C}.timezone: 'Europe/Berln' is not an IANA time zone name (like UTC or Europe/Berlin); "
         "did you mean 'Europe/Berlin'?")),
        ("{type: timestamp, max_age: 1d, timezone: utc}", "did you mean 'UTC'?"),
        ("{type: timestamp, max_age: 1d, timezone: Mars/Olympus_Mons}", "'Mars/Olympus_Mons' is not an IANA time zone"),
        ("{type: timestamp, max_age: 1d, timezone: ../../etc/passwd}", "is not an IANA time zone name"),
        ("{type: timestamp, max_age: 1d, timezone: 1}", f"{C}.timezone: must be an IANA time zone name"),
        ("{type: date, timezone: UTC}", f"{C}.timezone: timezone applies to timestamp columns, not date"),
    ],
)
def test_durations_and_zones(tmp_path, rules, expected):
    assert expected in refused(tmp_path, COLUMN % rules)


def test_durations():
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h").total_seconds() == 12 * 3600
    assert parse_duration(" 2w ") == timedelta(weeks=2)
    assert parse_duration("36525d") == timedelta(days=36525)
    for bad in ("soon", "1.5d", "-1d", "36526d", "99999999999d", "1y"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_future_skew_defaults_to_five_minutes():
    assert ColumnRules(max_age="1d").future_skew_delta == DEFAULT_FUTURE_SKEW == timedelta(minutes=5)
    assert ColumnRules(max_age="1d", future_skew="30s").future_skew_delta == timedelta(seconds=30)
    assert ColumnRules(type="timestamp", max_age="1d", timezone="UTC").timezone == "UTC"


# --- rows, keys, references ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table_rules", "expected"),
    [
        ("row_count: {min: 5, max: 1}", "outputs.a.contract.row_count.min: min (5) is greater than max (1)"),
        ("row_count: {min: -1}", "outputs.a.contract.row_count.min: must be a whole number of rows, 0 or more, got -1"),
        ("row_count: {max: 1.5}", "row_count.max: must be a whole number of rows, 0 or more, got 1.5"),
        ("row_count: {min: true}", "row_count.min: must be a whole number of rows, 0 or more, got true (a boolean)"),
        ("row_count: {min: '1'}", "got '1' (text)"),
        ("unique: [[]]", "outputs.a.contract.unique[0]: a composite key needs at least one column"),
        ("unique: [[a, a]]", "outputs.a.contract.unique[0]: composite key ['a', 'a'] repeats a column"),
        ("unique: a", "outputs.a.contract.unique: must be a list, got 'a' (text)"),
    ],
)
def test_table_rules(tmp_path, table_rules, expected):
    text = f"lane: orders\noutputs:\n  a:\n    inputs: {{x: x.csv}}\n    contract:\n      {table_rules}\n"
    assert expected in refused(tmp_path, text)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("nope.id", "outputs.b.contract.columns.a_id.references: no output named 'nope' (outputs: a, b)"),
        ("aa.id", "no output named 'aa'; did you mean 'a'?"),
        ("a.missing", "outputs.b.contract.columns.a_id.references: 'a' declares no column 'missing'"),
        ("b.a_id", "outputs.b.contract.columns.a_id.references: an output cannot reference itself"),
        ("a", "must be OUTPUT.COLUMN"),
    ],
)
def test_references_resolve(tmp_path, reference, expected):
    assert expected in refused(tmp_path, GOOD.replace("references: a.id", f"references: {reference}"))


def test_reference_cycle_names_the_cycle_and_where_it_closes(tmp_path):
    text = GOOD.replace("id: {type: int64, unique: true}", "id: {type: int64, references: b.a_id}")
    message = refused(tmp_path, text)
    assert "outputs.a.contract.columns.id.references: cycle between outputs: a -> b -> a (line 7)" in message


def test_three_output_cycle(tmp_path):
    text = "lane: orders\noutputs:\n" + "".join(
        f"  {name}: {{inputs: {{x: x.csv}}, contract: {{columns: {{c: {{references: {target}.c}}}}}}}}\n"
        for name, target in (("a", "b"), ("b", "c"), ("c", "a")))
    assert "cycle between outputs: a -> b -> c -> a" in refused(tmp_path, text)


# --- contract files ----------------------------------------------------------------------------------------


def test_contract_file_with_or_without_key(tmp_path):
    body = "columns: {id: {type: int64, unique: true}, s: {type: string, accepted_values: [DE, NO]}}\n"
    wrapped = write(tmp_path, "contract:\n  " + body, "c1.yaml")
    bare = write(tmp_path, body, "c2.yaml")
    assert load_contract(wrapped) == load_contract(bare)
    assert load_contract(bare).columns["s"].accepted_values == ["DE", "NO"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("columns: {id: {type: nope}}\n", "columns.id.type: unknown type 'nope'"),
        ("contract:\n  columns:\n    id: {not_nul: true}\n",
         "contract.columns.id.not_nul: unknown key; did you mean 'not_null'? (line 3)"),
        ("", "the file is empty; a contract is a mapping like\n  columns:"),
        ("contract:\n", "contract: is empty; a contract is a mapping like"),
        ("- columns\n", "must be a mapping, got a list; a contract is a mapping like"),
        ("columns: {s: {regex: '(?<=a)b'}}\n", "columns.s.regex: '(?<=a)b' is not usable by the checker's RE2 engine"),
        ("columns: {a: {min: 1}}\ncolumns: {a: {min: 2}}\n", "columns: duplicate key 'columns' (first at line 1)"),
    ],
)
def test_bad_contract_files(tmp_path, text, expected):
    path = write(tmp_path, text, "contract.yaml")
    with pytest.raises(SpecError) as caught:
        load_contract(path)
    assert str(caught.value).startswith(f"invalid contract {path}")
    assert expected in str(caught.value)


# --- the API without files ---------------------------------------------------------------------------------


def test_parse_spec_names_its_source():
    with pytest.raises(SpecError, match=r"^invalid lane spec inline: outputs: required"):
        parse_spec({"lane": "orders"}, source="inline")
    with pytest.raises(SpecError, match="the file is empty"):
        parse_spec(None, source="inline")


def test_render_path():
    assert render_path(("outputs", "a", "contract", "columns", "id", "min")) == "outputs.a.contract.columns.id.min"
    assert render_path(("outputs", "a", "consumers", 1)) == "outputs.a.consumers[1]"
    assert render_path(("columns", "a.b", "min")) == "columns['a.b'].min"


def test_spec_digest_is_stable_across_equivalent_yaml(tmp_path):
    flow = load_spec(write(tmp_path, COLUMN % "{type: string, accepted_values: [NO]}", "flow.yaml"))
    block = load_spec(write(tmp_path, (COLUMN % "").rstrip() + "\n          type: string\n"
                            "          accepted_values:\n            - 'NO'\n", "block.yaml"))
    assert flow.digest() == block.digest()
    assert json.loads(json.dumps(flow.model_dump(mode="json")))["outputs"]["a"]["contract"]["columns"]["c"][
        "accepted_values"] == ["NO"]


def test_readme_spec_example_is_a_valid_spec(tmp_path):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## The lane spec"):]
    example = section[section.index("```yaml\n") + len("```yaml\n"):section.index("```\n", section.index("```yaml"))]
    spec = load_spec(write(tmp_path, example))
    assert spec.outputs["orders_clean"].contract.columns["loaded_at"].timezone == "UTC"
    assert spec.outputs["orders_clean"].contract.columns["status"].accepted_values == ["NEW", "PAID", "SHIPPED"]


@pytest.mark.parametrize(
    "edits",
    [
        [("order_id:    {type: int64, not_null: true", "order_id:    {type: int64, not_nul: true")],
        [("amount:      {type: float64, min: 0}",
          "amount:      {type: float64, min: 0,\n                      min: -100}")],
        [("amount:      {type: float64, min: 0}",
          "amount:      {type: float64, min: 0}\n        qty:         {type: int8, max: 1000}"),
         ("accepted_values: [NEW, PAID, SHIPPED]", "accepted_values: [NEW, true, SHIPPED]")],
    ],
)
def test_readme_error_examples_are_what_the_loader_says(tmp_path, edits):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## The lane spec"):]
    text = section[section.index("```yaml\n") + len("```yaml\n"):section.index("```\n", section.index("```yaml"))]
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    folder = tmp_path / "spec"
    folder.mkdir()
    with pytest.raises(SpecError) as caught:
        load_spec(write(folder, text))
    message = str(caught.value).replace(f"{folder}/", "")
    first, *rest = message.splitlines()
    assert f"error: {first}" in section
    for line in rest:
        assert f"\n{line}\n" in section
