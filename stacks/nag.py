"""cdk-nag AwsSolutions (3.x API): a validation plugin, so findings fail synth.

Acknowledgements live next to the construct that causes them (stacks/lane_stack.py), one finding id
at a time (an IAM5 finding names the wildcard resource), never app- or stack-wide. A wildcard that a
later change adds to an already-acknowledged role is still caught by tests/cdk/test_cdk_iam.py.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_nag(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def ack(scope: IConstruct, *, id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on scope (and below) with a specific reason."""
    if len(reason) < 40:
        raise ValueError(f"acknowledgement {id}: give a specific reason, not {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=id, reason=reason))
