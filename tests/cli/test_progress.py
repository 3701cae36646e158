"""Progress without a terminal: a line when each output starts and ends, a heartbeat while it runs."""

from __future__ import annotations

from batchlane.cli.run_cmd import Progress
from batchlane.plan import RunPlan
from batchlane.runner import OutputProgress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _progress(clock: Clock, quiet: bool = False) -> Progress:
    plan = RunPlan(run_id="r1", lane="orders", outputs=["slow", "fast"], trigger="cli")
    return Progress(plan, quiet=quiet, terminal=False, heartbeat=10.0, clock=clock)


def test_lines_for_start_end_and_heartbeats(capsys):
    clock = Clock()
    progress = _progress(clock)
    slow, fast = OutputProgress("slow"), OutputProgress("fast")
    progress.update(slow)
    progress.update(fast)
    assert capsys.readouterr().err == ""          # queued outputs print nothing

    slow.phase, slow.attempt = "materializing", 1
    progress.update(slow)
    assert capsys.readouterr().err.strip() == "slow: started"

    clock.now += 9.9
    progress.beat()
    assert capsys.readouterr().err == ""          # not yet 10 s

    clock.now += 0.2
    progress.beat()
    assert capsys.readouterr().err.strip() == "slow: still materializing after 10s, attempt 1"

    clock.now += 5
    progress.beat()
    assert capsys.readouterr().err == ""          # one heartbeat per 10 s, not per tick

    clock.now += 5
    slow.phase = "checking"
    progress.update(slow)
    progress.beat()
    assert capsys.readouterr().err.strip() == "slow: still checking after 20s, attempt 1"

    slow.phase, slow.rows, slow.seconds = "certified", 2000, 21.5
    progress.update(slow)
    assert capsys.readouterr().err.strip() == "slow: certified (attempt 1; 2,000 rows; 21.5s)"
    clock.now += 60
    progress.beat()
    assert capsys.readouterr().err == ""          # nothing after the end

    fast.phase, fast.attempt = "planning", 2
    progress.update(fast)
    fast.phase, fast.failing_rules, fast.seconds = "rejected", ["min(amount)", "[dim]x"], 0.4
    progress.update(fast)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.strip() for line in lines] == ["fast: started",
                                                "fast: rejected (attempt 2; 0.4s; failing min(amount), [dim]x)"]


def test_quiet_progress_prints_nothing(capsys):
    clock = Clock()
    progress = _progress(clock, quiet=True)
    item = OutputProgress("slow", phase="materializing")
    progress.update(item)
    clock.now += 60
    progress.beat()
    with progress:
        pass
    assert capsys.readouterr().err == ""


def test_piped_run_prints_a_line_per_output_start_and_end(lane_dir, lane):
    code, out, err = lane("run", lane_dir / "lane.yaml")
    assert code == 0
    lines = [line.strip() for line in err.splitlines()]
    assert lines[0].startswith("run ") and "4 output(s) of lane orders" in lines[0]
    for name in ("customers_clean", "orders_clean", "order_payments"):
        assert f"{name}: started" in lines
        assert any(line.startswith(f"{name}: certified (attempt 1; ") for line in lines)
    assert "run_id:" in out
