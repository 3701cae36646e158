#!/usr/bin/env python3
"""CDK app: one stack per lane spec (context `spec`, default examples/orders/lane.yaml).

    python app.py                                   # synth to cdk.out/ (offline: no credentials, no Docker)
    python app.py -c spec=path/lane.yaml            # another lane (same -c key=value syntax as the cdk CLI)
    npx aws-cdk@2 deploy -c spec=...                # cdk.json runs this file under the CLI

The spec, the settings and the state machine definition are validated before CDK even starts:
a broken spec fails synth with the field path and the reason (batchlane.spec.SpecError).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchlane.spec import LaneSpec, SpecError, load_spec
from stacks.asl import AslError, AslUsage, read_asl
from stacks.settings import REPO_ROOT, LaneSettings, SettingsError

if TYPE_CHECKING:  # aws_cdk starts a node (jsii) process on import: only once the inputs are valid
    import aws_cdk as cdk

    from stacks.lane_stack import LaneStack

# Context keys the app reads (cdk.json, `-c key=value`, or the CLI's CDK_CONTEXT_JSON).
CONTEXT_KEYS = {"spec", "asl", "dockerfile", "input_kms_key_arns", "runnable_timeout_minutes", "vpc_id",
                "subnet_ids", "schedule", "landed_event_pattern", "object_lock_days", "object_lock_mode", "consumer_principal",
                "alarm_topic_arn", "stack_name", "max_vcpus", "nat_gateways", "job_vcpu", "job_memory_mib",
                "job_timeout_minutes", "log_retention_days", "glue_database", "map_mode"}


def cdk_json_context(root: Path = REPO_ROOT) -> dict[str, Any]:
    path = root / "cdk.json"
    return json.loads(path.read_text()).get("context", {}) if path.is_file() else {}


def _cli_env_context() -> dict[str, Any]:
    """Context the cdk CLI passes to the app (it wins over cdk.json, as in App())."""
    raw = os.environ.get("CDK_CONTEXT_JSON")
    return json.loads(raw) if raw else {}


def validate(context: dict[str, Any]) -> tuple[LaneSettings, LaneSpec, AslUsage]:
    """Settings, spec and ASL from context; raises SettingsError / SpecError / AslError with the field."""
    settings = LaneSettings.from_context({k: v for k, v in context.items() if k in CONTEXT_KEYS and v is not None})
    return settings, load_spec(settings.spec), read_asl(settings.asl)


def add_lane_stack(app: cdk.App, context: dict[str, Any]) -> LaneStack:
    """One lane stack from settings in `context` (already merged with cdk.json)."""
    from stacks.lane_stack import LaneStack, stack_name_for

    settings, spec, asl = validate(context)
    return LaneStack(
        app, settings.stack_name or stack_name_for(spec),
        spec=spec, asl=asl, settings=settings,
        description=f"batchlane lane {spec.lane}: certified data products (no PASS, no read)",
    )


def new_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> cdk.App:
    import aws_cdk as cdk

    merged = {**cdk_json_context(), **(context or {})}
    # Under the cdk CLI, CDK_OUTDIR and CDK_CONTEXT_JSON are set; App() reads both (CLI context wins).
    # CDK's built-in CloudFormation validation costs ~11 s per synth here; cfn-lint (tests/cdk, make lint)
    # is the template gate instead. CDK_VALIDATION=true turns it back on.
    return cdk.App(outdir=outdir, context=merged,
                   builtin_cloud_formation_validation=os.environ.get("CDK_VALIDATION", "").lower() == "true")


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None, *, nag: bool = True) -> cdk.App:
    """The app with the lane stack under cdk-nag; `context` overrides cdk.json (tests pass their own)."""
    from stacks.nag import add_nag

    app = new_app(context, outdir)
    keys = set(cdk_json_context()) | set(context or {}) | CONTEXT_KEYS
    add_lane_stack(app, {key: app.node.try_get_context(key) for key in keys})
    if nag:
        add_nag(app)
    return app


def _cli_context(argv: list[str]) -> dict[str, str]:
    context: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg in ("-c", "--context"):
            key, _, value = next(args, "").partition("=")
            context[key] = value
        else:
            raise SystemExit(f"usage: python app.py [-c key=value ...] (unexpected {arg!r})")
    return context


def main(argv: list[str]) -> int:
    outdir = None if os.environ.get("CDK_OUTDIR") else str(REPO_ROOT / "cdk.out")
    context = _cli_context(argv)
    try:
        validate({**cdk_json_context(), **context, **_cli_env_context()})   # fail fast, before jsii starts
        app = build_app(context, outdir=outdir)
        assembly = app.synth()
    except (SpecError, AslError, SettingsError) as exc:
        print(f"synth failed: {exc}", file=sys.stderr)
        return 2  # bad input (spec, settings, ASL): the same exit code as `lane run` on a bad spec
    for stack in assembly.stacks:
        for message in stack.messages:
            if str(message.level).rsplit(".", 1)[-1].lower() != "info":
                print(f"{str(message.level).rsplit('.', 1)[-1].lower()}: {stack.stack_name}: {message.entry.data}",
                      file=sys.stderr)
        print(f"synthesized {stack.stack_name} -> {assembly.directory}/{stack.template_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
