"""AWS Batch entrypoint of the materializer: the same one-shot job the local runner starts as a subprocess.

    python functions/materialize/main.py --run-id R --output O --attempt N [--trigger T]

The lane spec comes from ``--spec`` or ``$LANE_SPEC`` (baked into the image); the job id from
``--job-id`` or ``$AWS_BATCH_JOB_ID``; the run id, output and attempt may also come from
``$LANE_RUN_ID``, ``$LANE_OUTPUT``, ``$LANE_ATTEMPT`` (the state machine sets both). The backend is
read from the environment (LANE_BACKEND=aws, LANE_BUCKET, LANE_TABLE, LANE_EVENT_BUS).
Exit 0: product written; 1: the attempt failed (its receipt says why); 2: bad configuration.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # running as a script from the bundle root
    sys.path.insert(0, str(ROOT))

from batchlane.materialize import main as materialize_main  # noqa: E402

_FROM_ENV = {"--spec": "LANE_SPEC", "--run-id": "LANE_RUN_ID", "--output": "LANE_OUTPUT",
             "--attempt": "LANE_ATTEMPT", "--job-id": "AWS_BATCH_JOB_ID", "--trigger": "LANE_TRIGGER"}


def build_argv(argv: list[str], environ: dict[str, str]) -> list[str]:
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    extra: list[str] = []
    for flag, variable in _FROM_ENV.items():
        if flag not in given and environ.get(variable):
            extra += [flag, environ[variable]]
    return [*argv, *extra]


def main(argv: list[str] | None = None) -> int:
    return materialize_main(build_argv(list(sys.argv[1:] if argv is None else argv), dict(os.environ)))


if __name__ == "__main__":
    sys.exit(main())
