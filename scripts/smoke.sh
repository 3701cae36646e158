#!/usr/bin/env bash
# Smoke test of a deployed lane: start an execution, wait, force a failure, redrive it, read a product.
#
#   scripts/smoke.sh --stack Batchlane-orders     # after `cdk deploy`, with credentials (the example lane)
#   scripts/smoke.sh --moto                       # the same steps against the moto set-up the tests use
#
# AWS: a fresh execution is stopped as soon as its first Batch job is submitted (the forced failure: ABORTED,
# while the job is still starting, so nothing was written), then redriven from the console's API
# (RedriveExecution: only the unsuccessful steps run again) and must SUCCEED; then a certified product is read
# with `lane read` (operator policy). Run it on a fresh lane: when every output is memoized, no job is
# submitted and there is nothing to stop (the script says so).
# moto: moto has no RedriveExecution, so the failure is a broken input (order_payments rejected at Settle,
# OutputsUncertified) and the "redrive" is the documented targeted rerun {"rerun_of": RUN} after the fix.
set -euo pipefail

PYTHON=${PYTHON:-python3}
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
MODE=""
STACK=""
OUTPUT=${SMOKE_OUTPUT:-orders_clean}
while [ $# -gt 0 ]; do
  case "$1" in
    --moto) MODE=moto ;;
    --stack) MODE=aws; STACK="${2:?--stack needs the stack name}"; shift ;;
    --output) OUTPUT="${2:?--output needs an output name}"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "smoke.sh: unknown argument $1 (use --moto or --stack NAME)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$MODE" ] || { echo "smoke.sh: use --moto or --stack NAME" >&2; exit 2; }

WORK="$(mktemp -d -t batchlane-smoke-XXXXXX)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { "$PYTHON" "$HERE/smoke_steps.py" "$@"; }
lane() { "$PYTHON" -c 'import sys; from batchlane.cli import main; sys.exit(main(sys.argv[1:]))' "$@"; }
say() { printf '== %s\n' "$*"; }
status_of() { "$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["status"])' "$1"; }
expect() {  # expect STATUS RESULT_JSON
  local got; got="$(status_of "$2")"
  if [ "$got" != "$1" ]; then echo "smoke FAILED: expected $1, got $2" >&2; exit 1; fi
}
read_product() {  # read_product OUTPUT
  local out="$WORK/$1.parquet"
  rm -f "$out"
  lane read "$1" --out "$out" --backend aws
  "$PYTHON" -c 'import sys, pyarrow.parquet as pq; print(f"read {sys.argv[2]}: {pq.read_metadata(sys.argv[1]).num_rows} certified rows")' "$out" "$1"
}

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [ "$MODE" = moto ]; then
  say "starting the moto lane (scripts/smoke_moto.py)"
  "$PYTHON" "$HERE/smoke_moto.py" "$WORK/state.sh" > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    [ -f "$WORK/state.sh" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "smoke FAILED: the moto lane did not start" >&2; exit 1; }
    sleep 0.2
  done
  [ -f "$WORK/state.sh" ] || { echo "smoke FAILED: the moto lane did not start in 60 s" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$WORK/state.sh"

  say "1. start an execution and wait"
  RUN1="$(step start "$STATE_MACHINE_ARN" --name smoke-1)"
  RESULT="$(step wait "$RUN1" --timeout 600)"; echo "$RESULT"; expect SUCCEEDED "$RESULT"

  say "2. read a product"
  read_product "$OUTPUT"

  say "3. force a failure: a payment larger than its order"
  PAYMENTS="$SMOKE_SPEC_DIR/data/payments.jsonl"
  cp "$PAYMENTS" "$WORK/payments.good"
  for n in 0 1 2; do
    echo "{\"payment_id\": 9900$n, \"order_id\": 1, \"amount\": 10000.0, \"paid_at\": \"2026-02-01T00:00:00\"}" >> "$PAYMENTS"
  done
  RUN2="$(step start "$STATE_MACHINE_ARN" --name smoke-2)"
  RESULT="$(step wait "$RUN2" --timeout 600)"; echo "$RESULT"; expect FAILED "$RESULT"

  say "4. fix the input and redrive (moto: the targeted rerun {\"rerun_of\": \"smoke-2\"})"
  cp "$WORK/payments.good" "$PAYMENTS"
  RUN3="$(step start "$STATE_MACHINE_ARN" --name smoke-2-rerun --input '{"rerun_of": "smoke-2"}')"
  RESULT="$(step wait "$RUN3" --timeout 600)"; echo "$RESULT"; expect SUCCEEDED "$RESULT"
  read_product order_payments
else
  say "stack $STACK outputs"
  eval "$(step outputs --stack "$STACK")"
  export LANE_BACKEND=aws

  say "1. start an execution"
  RUN1="$(step start "$STATE_MACHINE_ARN" --name "smoke-$(date +%Y%m%d%H%M%S)")"
  echo "$RUN1"
  say "2. force a failure: stop it as soon as a Batch job is submitted"
  step stop-when-submitted "$RUN1" --timeout 600
  RESULT="$(step wait "$RUN1" --timeout 600)"; echo "$RESULT"; expect ABORTED "$RESULT"
  say "3. redrive it and wait (only the unsuccessful steps run again)"
  step redrive "$RUN1"
  RESULT="$(step wait "$RUN1" --timeout 7200)"; echo "$RESULT"; expect SUCCEEDED "$RESULT"
  say "4. read a product"
  read_product "$OUTPUT"
fi
say "lane status"
lane status --backend aws | head -20
say "smoke OK"
