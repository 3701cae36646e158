"""The moto set-up the tests use, as a server for scripts/smoke.sh --moto (no account, no Docker).

    python scripts/smoke_moto.py STATE_FILE

Starts a ThreadedMotoServer with Step Functions execution enabled, deploys the example lane the way the
tests do (tests/support/lane_aws.py: bucket, ledger, bus, the three functions run in this process, Batch jobs
as subprocesses, the real ASL), copies examples/orders to a scratch directory (the smoke breaks and fixes
its data there), writes STATE_FILE (shell exports) once ready, and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    state_file = Path(argv[0])
    from support.aws_env import BUCKET, BUS, DUMMY_ENV, TABLE
    from support.lane_aws import FUNCTIONS, copy_example, deployed_lane, moto_server

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="batchlane-smoke-") as scratch, moto_server() as endpoint:
        spec = copy_example(Path(scratch) / "lane")
        with deployed_lane(endpoint, spec) as lane:
            exports = {**DUMMY_ENV, "AWS_ENDPOINT_URL": endpoint, "STATE_MACHINE_ARN": lane.state_machine_arn,
                       "LANE_BACKEND": "aws", "LANE_BUCKET": BUCKET, "LANE_TABLE": TABLE, "LANE_EVENT_BUS": BUS,
                       "LANE_RESOLVE_FUNCTION": FUNCTIONS["resolve"], "SMOKE_SPEC_DIR": str(spec.parent),
                       "LANE_HOME": str(Path(scratch) / "home")}
            partial = state_file.with_suffix(".partial")
            partial.write_text("".join(f"export {key}={shlex.quote(value)}\n" for key, value in exports.items()))
            partial.rename(state_file)
            print(f"moto lane ready at {endpoint}", flush=True)
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
