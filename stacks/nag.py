"""cdk-nag AwsSolutions (3.x API): a validation plugin, so findings fail synth.

Acknowledgements live next to the construct that causes them (stacks/lane_stack.py); the only
app-wide ones are here, each with the reason it cannot be fixed in this stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_nag(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def ack(scope: IConstruct, *, id: str, reason: str) -> None:  # noqa: A002 - cdk's name
    """Acknowledge one cdk-nag finding on scope (and below) with a specific reason."""
    if len(reason) < 40:
        raise ValueError(f"acknowledgement {id}: give a specific reason, not {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=id, reason=reason))
