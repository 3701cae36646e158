"""Evidence is printed literally: no Rich markup is interpreted in data, rules or messages."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

SPEC = """\
lane: literal
outputs:
  codes:
    inputs: {codes: data/codes.csv}
    contract:
      columns:
        code:  {type: string, regex: '^[a-z]+$'}
        level: {type: string, accepted_values: ['[b]LOW', HIGH]}
"""
DATA = {"data/codes.csv": "code,level\nabc,HIGH\nx[red]y,[dim]PAR\n"}


def test_show_prints_rules_values_and_details_as_written(write_lane, lane, lane_json):
    spec = write_lane(SPEC, DATA)
    code, result = lane_json("run", spec)
    assert code == 1
    code, out, err = lane("show", result["run_id"], "codes")
    assert code == 0, err
    assert "^[a-z]+$" in out                # the rule, not "^+$"
    assert "[dim]PAR" in out                # the failing value, not "PAR"
    assert "x[red]y" in out
    assert "[b]LOW" in out                  # an accepted value that looks like markup
    # every rule's columns are there, the detail too
    for header in ("expected", "observed", "failing sample", "detail"):
        assert header in out


def test_run_table_and_status_print_failing_rules_literally(write_lane, lane):
    spec = write_lane(SPEC, DATA)
    code, out, _err = lane("run", spec)
    assert code == 1
    assert "accepted_values(level)" in out and "regex(code)" in out


def test_errors_with_brackets_are_printed_as_is(lane, write_lane):
    spec = write_lane("lane: x\noutputs:\n  a: {inputs: {i: 'data/[dim]x.csv'}}\n")
    code, _, err = lane("run", spec)
    assert code == 1
    code, _out, err = lane("validate", spec)
    assert code == 2 and "data/[dim]x.csv" in err


def test_lane_check_prints_literally(tmp_path, lane):
    pq.write_table(pa.table({"code": ["[dim]PAR", "ok"]}), tmp_path / "p.parquet")
    (tmp_path / "c.yaml").write_text("columns:\n  code: {type: string, regex: '^[a-z]+$'}\n")
    code, out, _err = lane("check", tmp_path / "p.parquet", "--contract", tmp_path / "c.yaml")
    assert code == 1
    assert "^[a-z]+$" in out and "[dim]PAR" in out
