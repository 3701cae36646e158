"""`lane report RUN --out FILE.html`: self-contained, escaped, and it says what the receipts say."""

from __future__ import annotations

import json
from html.parser import HTMLParser

SPEC = """\
lane: reported
outputs:
  events:
    inputs: {events: data/events.csv}
    contract:
      columns:
        id:     {type: int64, not_null: true, unique: true}
        status: {type: string, accepted_values: [OK, LATE]}
      row_count: {min: 1}
  clean:
    inputs: {events: data/events.csv}
    transform: t:only_ok
    contract:
      columns:
        id: {type: int64, unique: true}
"""
FILES = {
    "data/events.csv": 'id,status\n1,OK\n2,LATE\n3,"<script>alert(1)</script>"\n4,"<img src=x onerror=alert(2)>"\n',
    "t.py": "def only_ok(events):\n    return events[events['status'] == 'OK']\n",
}


class _Document(HTMLParser):
    """Collects tags, attributes, text, and the cells of every table row."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(path) -> _Document:
    document = _Document()
    document.feed(path.read_text(encoding="utf-8"))
    return document


def test_report_holds_the_evidence_and_escapes_data(write_lane, lane, lane_json, lane_home, tmp_path):
    spec = write_lane(SPEC, FILES)
    code, result = lane_json("run", spec)
    assert code == 1  # events: accepted_values fails on the two hostile values
    run_id = result["run_id"]
    target = tmp_path / "out" / "report.html"
    code, _out, err = lane("report", run_id, "--out", target)
    assert code == 0, err

    raw = target.read_text(encoding="utf-8")
    document = _parse(target)
    assert "script" not in document.tags and "img" not in document.tags
    assert not any(name.startswith("on") for name, _ in document.attributes)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    # self-contained: no external references at all
    assert not any(name in ("src", "href") and value and not value.startswith("#") for name, value in document.attributes)
    assert "<link" not in raw and "@import" not in raw and "http://" not in raw and "https://" not in raw

    text = " ".join(document.text)
    assert run_id in text and "reported" in text
    assert "verified:" in text and "chain intact" in text

    rules = {(row[0], row[1]): row for row in document.rows if len(row) == 8 and row[0] != "rule"}
    accepted = rules[("accepted_values", "status")]
    assert accepted[2] == "FAIL" and accepted[3] == '["OK", "LATE"]' and accepted[5] == "2"
    assert "<script>alert(1)</script>" in accepted[6] and "<img src=x onerror=alert(2)>" in accepted[6]
    assert rules[("row_count", "")][2] == "pass"

    receipts = json.loads(lane("show", run_id, "events", "--json")[1])["receipts"]
    materialize = next(r["receipt"] for r in receipts if r["receipt"]["kind"] == "materialize")
    input_sha = materialize["inputs"][0]["files"][0]["sha256"]
    product_sha = materialize["outputs"][0]["sha256"]
    assert input_sha in text and product_sha in text

    summary = {row[0]: row for row in document.rows if len(row) == 6 and row[0] != "output"}
    assert summary["events"][1:3] == ["FAIL", "rejected"] and summary["clean"][1:3] == ["PASS", "certified"]
    assert summary["clean"][5] == f"run {run_id} attempt 1"
    assert "@media print" in raw


def test_report_shows_a_failed_verification(lane_dir, lane_home, lane, lane_json, tmp_path):
    run = lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")[1]
    product = next((lane_home / "staging" / run["run_id"] / "customers_clean").rglob("*.parquet"))
    product.chmod(0o644)
    product.write_bytes(product.read_bytes() + b"tampered")
    code, _out, err = lane("report", run["run_id"], "--out", tmp_path / "r.html")
    assert code == 0, err
    text = " ".join(_parse(tmp_path / "r.html").text)
    assert "verification failed" in text and "bytes changed since certification" in text


def test_report_failure_paths(lane_dir, lane, lane_json, tmp_path):
    run = lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")[1]
    code, _, err = lane("report", "nope", "--out", tmp_path / "r.html")
    assert code == 2 and "no run 'nope'" in err and not (tmp_path / "r.html").exists()
    code, _, err = lane("report", run["run_id"], "--out", tmp_path / "r.pdf")
    assert code == 2 and ".html" in err and not (tmp_path / "r.pdf").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _out, err = lane("report", run["run_id"], "--out", blocker / "r.html")
    assert code == 2 and "cannot write" in err
