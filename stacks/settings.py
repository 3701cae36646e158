"""Deployment settings from CDK context (`cdk.json` or `-c key=value`), validated at synth."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = "examples/orders/lane.yaml"
DEFAULT_ASL = "statemachines/lane.asl.json"
DEFAULT_DOCKERFILE = "image/Dockerfile"
# CloudWatch Logs accepts only these retention periods (days).
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


GLUE_AUTO = "auto"
GLUE_OFF = ("", "off", "false", "no", "none")
GLUE_DATABASE_NAME = re.compile(r"[a-z0-9_]{1,255}")


class SettingsError(ValueError):
    """A context value that cannot be used; the message names the context key."""


def _int(context: dict[str, Any], key: str, default: int | None, low: int, high: int) -> int | None:
    value = context.get(key, default)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"context {key}: {value!r} is not an integer") from None
    if not low <= number <= high:
        raise SettingsError(f"context {key}: {number} is outside {low}..{high}")
    return number


def _int_with_default(context: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    number = _int(context, key, default, low, high)
    return default if number is None else number


def _vcpu(context: dict[str, Any], key: str, default: float) -> float:
    value = context.get(key, default)
    try:
        vcpu = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"context {key}: {value!r} is not a number") from None
    if vcpu not in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        raise SettingsError(f"context {key}: {vcpu} is not a Fargate vCPU size (0.25, 0.5, 1, 2, 4, 8, 16)")
    return vcpu


def _list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def _json_object(context: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = context.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"context {key}: not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not value:
        raise SettingsError(f"context {key}: must be a non-empty JSON object (an EventBridge event pattern)")
    return value


def _glue_database(context: dict[str, Any]) -> str | None:
    """Glue Data Catalog publication: off (default), ``auto`` (database ``batchlane_<lane>``) or a database name."""
    value = context.get("glue_database")
    if value is None or value is False:
        return None
    if value is True:
        return GLUE_AUTO
    text = str(value).strip()
    if text.lower() in GLUE_OFF:
        return None
    if text.lower() == GLUE_AUTO:
        return GLUE_AUTO
    if not GLUE_DATABASE_NAME.fullmatch(text):
        raise SettingsError(f"context glue_database: {text!r} must be auto, off, or a Glue database name "
                            "(lower-case letters, digits and underscores, at most 255)")
    return text


@dataclass(frozen=True)
class LaneSettings:
    spec: Path
    asl: Path
    dockerfile: str                       # relative to the image build context (the repo root)
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    max_vcpus: int = 16
    nat_gateways: int = 1
    job_vcpu: float = 1.0
    job_memory_mib: int = 4096
    job_timeout_minutes: int = 60
    runnable_timeout_minutes: int = 30
    input_kms_key_arns: tuple[str, ...] = ()
    schedule: str | None = None
    landed_event_pattern: dict[str, Any] | None = None
    object_lock_days: int | None = None
    object_lock_mode: str = "GOVERNANCE"
    log_retention_days: int = 90
    consumer_principal: str | None = None
    alarm_topic_arn: str | None = None
    stack_name: str | None = None
    glue_database: str | None = None      # Glue publication off (None), else the database name (auto resolved)
    map_mode: str = "auto"                # the output Map per wave: inline, distributed, or auto (by lane size)
    # size-aware checking: products above check_lambda_max_bytes (sum of the staged files) are checked by the
    # check job (Batch, same image) instead of the check function (3,008 MB, 10 GiB /tmp, 15 minutes)
    check_lambda_max_bytes: int = 2 * 1024**3
    check_job_vcpu: float = 2.0
    check_job_memory_mib: int = 16384
    check_job_timeout_minutes: int = 120

    @classmethod
    def from_context(cls, context: dict[str, Any], root: Path = REPO_ROOT) -> LaneSettings:
        def path(key: str, default: str) -> Path:
            value = Path(str(context.get(key) or default))
            return value if value.is_absolute() else (root / value)

        vpc_id = context.get("vpc_id") or None
        subnet_ids = tuple(_list(context.get("subnet_ids")))
        if vpc_id and not re.fullmatch(r"vpc-[0-9a-f]{8,17}", str(vpc_id)):
            raise SettingsError(f"context vpc_id: {vpc_id!r} is not a VPC id (vpc-...)")
        if vpc_id and len(subnet_ids) < 1:
            raise SettingsError("context subnet_ids: an imported VPC (vpc_id) needs its private subnet ids, comma-separated")
        if subnet_ids and not vpc_id:
            raise SettingsError("context subnet_ids: only valid together with vpc_id")
        for subnet in subnet_ids:
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", subnet):
                raise SettingsError(f"context subnet_ids: {subnet!r} is not a subnet id (subnet-...)")

        schedule = context.get("schedule") or None
        if schedule and not re.fullmatch(r"(rate|cron)\(.+\)", str(schedule)):
            raise SettingsError(f"context schedule: {schedule!r} must be rate(...) or cron(...)")

        mode = str(context.get("object_lock_mode") or "GOVERNANCE").upper()
        if mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise SettingsError(f"context object_lock_mode: {mode!r} must be GOVERNANCE or COMPLIANCE")

        retention = _int(context, "log_retention_days", 90, 1, 3653)
        if retention not in RETENTION_DAYS:
            raise SettingsError(f"context log_retention_days: {retention} is not a CloudWatch Logs retention ({RETENTION_DAYS})")

        kms_keys = tuple(_list(context.get("input_kms_key_arns")))
        for arn in kms_keys:
            if not re.fullmatch(r"arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}", arn):
                raise SettingsError(f"context input_kms_key_arns: {arn!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")

        vcpu = _vcpu(context, "job_vcpu", 1.0)
        check_vcpu = _vcpu(context, "check_job_vcpu", 2.0)

        glue_database = _glue_database(context)
        map_mode = str(context.get("map_mode") or "auto").lower()
        if map_mode not in ("auto", "inline", "distributed"):
            raise SettingsError(f"context map_mode: {map_mode!r} must be auto, inline or distributed "
                                "(auto: distributed for lanes of more than 400 outputs)")
        return cls(
            spec=path("spec", DEFAULT_SPEC),
            asl=path("asl", DEFAULT_ASL),
            dockerfile=str(context.get("dockerfile") or DEFAULT_DOCKERFILE),
            vpc_id=vpc_id,
            subnet_ids=subnet_ids,
            max_vcpus=_int_with_default(context, "max_vcpus", 16, 1, 4096),
            nat_gateways=_int_with_default(context, "nat_gateways", 1, 0, 3),
            job_vcpu=vcpu,
            job_memory_mib=_int_with_default(context, "job_memory_mib", 4096, 512, 122880),
            # Batch's job timeout; with the RUNNABLE limit and a start margin it makes the Materialize task's
            # TimeoutSeconds, which Step Functions caps at one year.
            job_timeout_minutes=_int_with_default(context, "job_timeout_minutes", 60, 1, 14 * 24 * 60),
            runnable_timeout_minutes=_int_with_default(context, "runnable_timeout_minutes", 30, 10, 24 * 60),
            input_kms_key_arns=kms_keys,
            schedule=schedule,
            landed_event_pattern=_json_object(context, "landed_event_pattern"),
            object_lock_days=_int(context, "object_lock_days", None, 1, 36500),
            object_lock_mode=mode,
            log_retention_days=retention,
            consumer_principal=context.get("consumer_principal") or None,
            alarm_topic_arn=context.get("alarm_topic_arn") or None,
            stack_name=context.get("stack_name") or None,
            glue_database=glue_database,
            map_mode=map_mode,
            check_lambda_max_bytes=_int_with_default(context, "check_lambda_max_bytes", 2 * 1024**3, 0, 10 * 1024**4),
            check_job_vcpu=check_vcpu,
            check_job_memory_mib=_int_with_default(context, "check_job_memory_mib", 16384, 512, 122880),
            check_job_timeout_minutes=_int_with_default(context, "check_job_timeout_minutes", 120, 1, 14 * 24 * 60),
        )

    def glue_database_for(self, lane: str) -> str | None:
        """The Glue database certified products of ``lane`` are published to, or None when publication is off
        (``auto`` = ``batchlane_<lane>``, as batchlane.glue_catalog names it at run time)."""
        if self.glue_database is None:
            return None
        from batchlane.glue_catalog import database_name

        return database_name(lane, None if self.glue_database == GLUE_AUTO else self.glue_database)
