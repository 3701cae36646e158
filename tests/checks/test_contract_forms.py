"""Issue 14, the contract model: every rule in its short and its structured form, and what is refused.

The structured form keeps the rule's value where the short form puts it (``rules.min`` is the bound either
way) and the severity and tolerances beside it; a short-form contract serializes (and so digests) exactly as
before, and a structured one differently (memoization must see a severity change).
"""

from __future__ import annotations

import pytest

from batchlane.contract import DEFAULT_OPTIONS, RuleOptions
from batchlane.spec import Contract, SpecError, parse_spec


def spec_contract(contract: dict) -> Contract:
    spec = parse_spec({"lane": "l", "outputs": {"o": {"inputs": {"a": "a.csv"}, "contract": contract}}},
                      source="lane.yaml")
    return spec.outputs["o"].contract


def refused(contract: dict) -> str:
    with pytest.raises(SpecError) as caught:
        spec_contract(contract)
    return str(caught.value)


@pytest.mark.parametrize("rule, short, structured, value", [
    ("not_null", True, {"max_failing_fraction": 0.001}, True),
    ("unique", True, {"max_failing": 10}, True),
    ("min", 0, {"value": 0, "severity": "warn"}, 0),
    ("max", 100, {"value": 100, "max_failing": 3}, 100),
    ("accepted_values", [1, 2], {"value": [1, 2], "max_failing_fraction": 0.5}, [1, 2]),
    ("type", "int64", {"value": "int64", "severity": "warn"}, "int64"),
])
def test_short_and_structured_forms_give_the_same_value(rule, short, structured, value):
    short_rules = spec_contract({"columns": {"c": {"type": "int64", rule: short}}}).columns["c"]
    long_rules = spec_contract({"columns": {"c": {"type": "int64", rule: structured}}}).columns["c"]
    assert getattr(short_rules, rule) == getattr(long_rules, rule) == value
    assert short_rules.options(rule) == DEFAULT_OPTIONS
    assert long_rules.options(rule) != DEFAULT_OPTIONS
    assert long_rules.options(rule) == RuleOptions(**{k: v for k, v in structured.items() if k != "value"})


def test_string_rules_take_the_structured_form_too():
    rules = spec_contract({"columns": {
        "s": {"type": "string", "regex": {"value": "^[a-z]+$", "max_failing": 2}},
        "t": {"type": "timestamp", "timezone": "UTC", "max_age": {"value": "1d", "severity": "warn"}},
    }}).columns
    assert rules["s"].regex == "^[a-z]+$" and rules["s"].options("regex").max_failing == 2
    assert rules["t"].max_age_delta is not None and rules["t"].options("max_age").severity == "warn"


def test_a_short_form_contract_serializes_as_before_and_a_structured_one_does_not():
    short = spec_contract({"columns": {"c": {"type": "int64", "min": 0}}, "unique": [["c"]],
                           "row_count": {"min": 1}})
    dumped = short.model_dump(mode="json")
    assert set(dumped) == {"columns", "unique", "row_count"}          # no expect / extra_columns keys
    assert dumped["row_count"] == {"min": 1, "max": None}              # no max_change / severity keys
    assert dumped["columns"]["c"]["min"] == 0
    warned = spec_contract({"columns": {"c": {"type": "int64", "min": {"value": 0, "severity": "warn"}}}})
    assert warned.model_dump(mode="json")["columns"]["c"]["min"] == {"value": 0, "severity": "warn"}
    assert warned != spec_contract({"columns": {"c": {"type": "int64", "min": 0}}})
    # the dump reads back as the same contract (specs are digested from it)
    assert Contract.model_validate(warned.model_dump(mode="json")) == warned
    # a structured form that says nothing beyond the value is the short form
    assert spec_contract({"columns": {"c": {"type": "int64", "min": {"value": 0}}}}) == \
        spec_contract({"columns": {"c": {"type": "int64", "min": 0}}})


def test_composite_keys_row_count_and_extra_columns_in_both_forms():
    contract = spec_contract({
        "unique": [["a", "b"], {"columns": ["a", "c"], "severity": "warn", "max_failing": 2}],
        "row_count": {"min": 1, "severity": "warn", "max_change": {"value": 0.5, "severity": "error"}},
        "extra_columns": {"value": "forbid", "severity": "warn"},
    })
    assert contract.unique == [["a", "b"], ["a", "c"]]
    assert contract.key_options(0) == DEFAULT_OPTIONS
    assert contract.key_options(1) == RuleOptions(severity="warn", max_failing=2)
    assert contract.row_count is not None and contract.row_count.max_change == 0.5
    assert contract.row_count.options("row_count").severity == "warn"
    assert contract.row_count.options("max_change").severity == "error"
    assert contract.extra_columns == "forbid" and contract.options("extra_columns").severity == "warn"
    assert spec_contract({"extra_columns": "forbid"}).options("extra_columns") == DEFAULT_OPTIONS
    dumped = contract.model_dump(mode="json")
    assert dumped["unique"][1] == {"columns": ["a", "c"], "severity": "warn", "max_failing": 2}
    assert Contract.model_validate(dumped) == contract


def test_expectations_are_named_sql_with_severity_and_tolerance():
    contract = spec_contract({"columns": {"amount": {"type": "float64"}, "status": {"type": "string"}},
                              "expect": [{"name": "paid_not_negative", "sql": "amount >= 0 OR status = 'REFUND'",
                                          "severity": "warn", "max_failing": 3}]})
    (expectation,) = contract.expect
    assert expectation.options == RuleOptions(severity="warn", max_failing=3)


@pytest.mark.parametrize("contract, message", [
    ({"columns": {"c": {"type": "int64", "min": {"value": 1.5}}}},
     "columns.c.min.value: must be a whole number for an int64 column, got 1.5"),
    ({"columns": {"c": {"min": {"value": 0, "sevrity": "warn"}}}},
     "columns.c.min.sevrity: unknown key; did you mean 'severity'?"),
    ({"columns": {"c": {"min": {"value": 0, "severity": "warning"}}}},
     "columns.c.min.severity: must be error (blocks certification) or warn"),
    ({"columns": {"c": {"min": {"severity": "warn"}}}},
     "columns.c.min: the structured form needs value: the min itself, e.g. min: {value: 0, severity: warn}"),
    ({"columns": {"c": {"type": "timestamp", "timezone": "UTC", "max_age": {"value": "1d", "max_failing": 1}}}},
     "columns.c.max_age.max_failing: max_failing does not apply to max_age"),
    ({"columns": {"c": {"not_null": {"max_failing_fraction": 1.5}}}},
     "columns.c.not_null.max_failing_fraction: must be a fraction of the rows from 0 to 1"),
    ({"columns": {"c": {"not_null": {"max_failing": -1}}}},
     "columns.c.not_null.max_failing: must be a whole number of failing rows, 0 or more, got -1"),
    ({"columns": {"c": {"not_null": {"max_failing": True}}}},
     "columns.c.not_null.max_failing: must be a whole number of failing rows, 0 or more, got true (a boolean)"),
    ({"columns": {"c": {"unique": {"value": False, "max_failing": 3}}}},
     "columns.c.unique.value: unique is off (value: false): its severity and tolerances have no effect"),
    ({"columns": {"c": {"unique": {"max_fraction_change": 0.1}}}},
     "columns.c.unique.max_fraction_change: max_fraction_change does not apply to unique"),
    ({"unique": [{"column": ["a"]}]}, "contract.unique[0].column: unknown key; did you mean 'columns'?"),
    ({"unique": [{"severity": "warn"}]}, "contract.unique[0]: a composite key's structured form needs columns"),
    ({"row_count": {"max_change": -0.1}}, "contract.row_count.max_change: must be 0 or more"),
    ({"row_count": {"min": 1, "severity": "fatal"}}, "contract.row_count.severity: must be error"),
    ({"extra_columns": "strict"}, "contract.extra_columns: must be allow (the default) or forbid"),
    ({"expect": [{"name": "a", "sql": "x > 0"}, {"name": "a", "sql": "x > 1"}]},
     "contract.expect[1].name: 'a' is already the name of expect[0]"),
    ({"expect": [{"name": "a b", "sql": "x > 0"}]}, "contract.expect[0].name: 'a b' must start with a letter"),
    ({"expect": [{"name": "a", "sql": "  "}]}, "contract.expect[0].sql: must be a boolean SQL expression"),
    ({"expect": [{"name": "a", "sql": "x > 0", "severity": "block"}]}, "contract.expect[0].severity: must be error"),
    ({"columns": {"c": {"type": "int64", "severity": "warn"}}},
     "columns.c.severity: severity belongs to one rule: write that rule in its structured form"),
    ({"max_failing": 3}, "contract.max_failing: max_failing belongs to one rule"),
    ({"row_count": {"min": 1, "max_failing": 2}}, "contract.row_count.max_failing: max_failing does not apply to row_count"),
])
def test_a_bad_structured_form_is_refused_with_its_path(contract, message):
    assert message in refused(contract)
