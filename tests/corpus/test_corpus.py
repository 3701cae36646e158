"""The bad-input corpus: every case goes through the real CLI in-process and must end in its documented exit code
and message, with no traceback and nothing certified.

A case is a folder under ``cases/`` holding ``expect.json`` and the files it changes. The test copies ``base/``
(a small good lane: ``lane: corpus``, one output ``items``) to a temporary folder, lays the case's files over it,
optionally generates Parquet files (``make``), and runs the command from that folder. ``expect.json``:

    about        what the case is and why it must be refused
    argv         the command line (relative paths; the case folder is the working directory)
    command      "lane" (default) or "materialize" (``python -m batchlane.materialize``, the Batch job entry point)
    exit         the exit code: 2 for specs, contracts and usage; 1 for data that fails or breaks the job
    message      a substring of stdout + stderr (the whole message for spec cases, so wording changes are seen)
    make         a generator below that writes the Parquet file the case checks
    uncertified  [lane, output] pairs that must have no certification afterwards (default: corpus/items)
    needs        the checker change of issue 8 (helper H1) the case depends on: it fails on a checker without it
    transform_traceback  true when a failing user transform's own traceback is part of the evidence shown
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CASES = sorted(path for path in (HERE / "cases").iterdir() if (path / "expect.json").is_file())


def _items_parquet(folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"item_id": pa.array([1, 2, 3], pa.int64()),
                             "country": ["DE", "NO", "US"], "price": [10.5, 3.0, 7.25]}), folder / "items.parquet")


def _struct_parquet(folder: Path) -> None:
    """A struct ``a`` whose child ``b`` is clean, then a top-level column literally named ``a.b`` that is not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    struct = pa.array([{"b": 1}, {"b": 2}, {"b": 3}], pa.struct([("b", pa.int64())]))
    dotted = pa.array([5, None, -7], pa.int64())
    pq.write_table(pa.Table.from_arrays([struct, dotted], names=["a", "a.b"]), folder / "items.parquet")


def _timestamps(folder: Path, values: list[dt.datetime], zone: str | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"loaded_at": pa.array(values, pa.timestamp("us", tz=zone))}), folder / "items.parquet")


def _future_parquet(folder: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    _timestamps(folder, [now - dt.timedelta(days=3), now + dt.timedelta(days=365)], "UTC")


def _naive_parquet(folder: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    _timestamps(folder, [now - dt.timedelta(hours=1)], None)


MAKERS: dict[str, Callable[[Path], None]] = {
    "items_parquet": _items_parquet, "struct_parquet": _struct_parquet,
    "future_parquet": _future_parquet, "naive_parquet": _naive_parquet,
}


def _prepare(case: Path, workdir: Path, expect: dict) -> None:
    shutil.copytree(HERE / "base", workdir)
    for source in case.rglob("*"):
        if source.is_file() and source.name != "expect.json":
            target = workdir / source.relative_to(case)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    if expect.get("make"):
        MAKERS[expect["make"]](workdir)


def _materialize(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    from batchlane.materialize import main

    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_no_crash_traceback(shown: str, *, transform_traceback: bool) -> None:
    """No traceback of batchlane itself. A failing user transform's own traceback is evidence (issue 12), shown
    on purpose: where a case expects it, it must be there and run through the case's transforms.py."""
    if transform_traceback:
        assert 'transforms.py", line' in shown, shown
    else:
        assert "Traceback" not in shown, shown


def _shown_by_lane_show(lane) -> str:
    """What `lane show RUN items` prints for the run just made: where a failed job's reason is spelled out."""
    code, out, err = lane("status", "--json")
    assert code == 0, out + err
    run_id = json.loads(out)[0]["run_id"]
    code, out, err = lane("show", run_id, "items")
    return out + err


def _assert_nothing_certified(pairs: list[list[str]], home: Path) -> None:
    import batchlane
    from batchlane.gate import NotCertified

    if not home.exists():
        return   # no store at all: nothing can be certified
    for lane_name, output in pairs:
        with pytest.raises(NotCertified):
            batchlane.read(output, lane=lane_name, home=str(home))


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30
    for case in CASES:
        expect = json.loads((case / "expect.json").read_text())
        assert {"about", "argv", "exit", "message"} <= set(expect), case.name
        assert expect["exit"] in (1, 2), f"{case.name}: a bad input exits 1 or 2"
        assert expect.get("make") is None or expect["make"] in MAKERS, case.name


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_refused(case: Path, tmp_path: Path, lane, lane_home: Path, capsys, monkeypatch):
    expect = json.loads((case / "expect.json").read_text())
    workdir = tmp_path / "case"
    _prepare(case, workdir, expect)
    monkeypatch.chdir(workdir)

    if expect.get("command", "lane") == "materialize":
        code, out, err = _materialize(expect["argv"], capsys)
    else:
        code, out, err = lane(*expect["argv"])

    shown = out + err
    if expect["argv"][:1] == ["run"] and code == 1:
        shown += _shown_by_lane_show(lane)
    _assert_no_crash_traceback(shown, transform_traceback=expect.get("transform_traceback", False))
    assert code == expect["exit"], f"{case.name}: exit {code}, expected {expect['exit']}\n{shown}"
    assert expect["message"] in " ".join(shown.split()) or expect["message"] in shown, \
        f"{case.name}: expected {expect['message']!r} in:\n{shown}"
    if expect["argv"][:1] == ["check"]:
        assert not lane_home.exists(), "lane check must not create or touch a store"
    _assert_nothing_certified(expect.get("uncertified", [["corpus", "items"]]), lane_home)


def test_the_base_lane_certifies_and_no_stays_a_country(tmp_path: Path, lane, lane_home: Path, monkeypatch):
    """The control: the same lane, unbroken, is certified; YAML 1.2 keeps `NO` a string, so Norway passes."""
    import batchlane

    workdir = tmp_path / "case"
    shutil.copytree(HERE / "base", workdir)
    monkeypatch.chdir(workdir)
    code, out, err = lane("run", "lane.yaml")
    assert code == 0, out + err
    frame = batchlane.read("items", lane="corpus", home=str(lane_home))
    assert sorted(frame["country"]) == ["DE", "NO", "US"]
