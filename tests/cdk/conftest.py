"""tests/cdk: the session's one CDK synth (tests/support/synth.py) and template helpers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:  # `support` helpers
    sys.path.insert(0, str(TESTS))

from support.synth import (  # noqa: E402 - after the sys.path entry above
    COPY_CONTEXT,
    FIXTURE_SPEC,
    FIXTURES,
    OPTIONS_CONTEXT,
    OPTIONS_KMS_KEY,
    REPO,
    Synth,
    session_synth,
)

__all__ = ["COPY_CONTEXT", "FIXTURES", "FIXTURE_SPEC", "OPTIONS_CONTEXT", "OPTIONS_KMS_KEY", "REPO", "Synth"]


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return session_synth(tmp_path_factory)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == kind}


def one(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.items()))


def statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(policy logical id, statement) for every identity policy statement in the template."""
    found = []
    for name, body in template["Resources"].items():
        if body["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in body["Properties"]["PolicyDocument"]["Statement"]:
                found.append((name, statement))
        if body["Type"] == "AWS::IAM::Role":
            for policy in body["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    found.append((name, statement))
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def logical(template: dict[str, Any], kind: str, construct: str) -> str:
    """The logical id of the one resource of `kind` whose id contains the construct id (e.g. "JobRole")."""
    found = [name for name in resources(template, kind) if construct in name]
    assert len(found) == 1, f"{kind} {construct}: {found}"
    return found[0]


def role_statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    """Statements of the default policy attached to the role whose logical id contains role_prefix."""
    roles = [name for name in resources(template, "AWS::IAM::Role") if role_prefix in name]
    assert len(roles) == 1, f"role {role_prefix}: {roles}"
    found = []
    for body in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": roles[0]} in body["Properties"].get("Roles", []):
            found.extend(body["Properties"]["PolicyDocument"]["Statement"])
    return found


def actions_of(statements_: list[dict[str, Any]], effect: str = "Allow") -> set[str]:
    return {action for s in statements_ if s.get("Effect", "Allow") == effect for action in as_list(s["Action"])}
