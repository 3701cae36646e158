"""`lane init`: a lane that validates and certifies as written; refuses a non-empty folder."""

from __future__ import annotations

import os
import subprocess
import sys

from batchlane.scaffold import lane_name


def test_init_makes_a_lane_that_validates_runs_and_tests(tmp_path, lane_home, lane, lane_json):
    folder = tmp_path / "My Lane-2"
    code, out, err = lane("init", folder)
    assert code == 0, err
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == {
        "lane.yaml", "transforms.py", "data/customers.csv", "data/orders.csv", "tests/test_transforms.py", "README.md"}
    assert "lane validate" in out

    code, out, err = lane("validate", folder / "lane.yaml")
    assert code == 0, err
    assert "lane my_lane-2, 2 output(s)" in out

    code, result = lane_json("run", folder / "lane.yaml")
    assert code == 0, result
    assert result["lane"] == "my_lane-2"
    assert {name: o["state"] for name, o in result["outputs"].items()} == {
        "customers": "certified", "orders_clean": "certified"}
    assert result["outputs"]["orders_clean"]["rows"] == 6  # the order without an amount is dropped

    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=folder,
                            capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                            check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout


def test_init_refuses_a_non_empty_folder_and_overwrites_nothing(tmp_path, lane):
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "lane.yaml").write_text("mine\n")
    code, _, err = lane("init", folder)
    assert code == 2 and "is not empty" in err
    assert [p.name for p in folder.iterdir()] == ["lane.yaml"] and (folder / "lane.yaml").read_text() == "mine\n"

    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _out, err = lane("init", a_file)
    assert code == 2 and "not a folder" in err


def test_init_lane_name_option_and_bad_names(tmp_path, lane):
    code, _, err = lane("init", tmp_path / "x", "--lane", "sales")
    assert code == 0 and "lane: sales\n" in (tmp_path / "x" / "lane.yaml").read_text()
    code, _out, err = lane("init", tmp_path / "y", "--lane", "Bad Name")
    assert code == 2 and "lane name 'Bad Name'" in err
    assert not (tmp_path / "y").exists() or not any((tmp_path / "y").iterdir())


def test_lane_name_from_folder(tmp_path):
    assert lane_name(tmp_path / "Orders 2026") == "orders_2026"
    assert lane_name(tmp_path / "2026") == "my_lane"
    assert lane_name(tmp_path / "__x__") == "x"
