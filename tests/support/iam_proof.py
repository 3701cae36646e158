"""The IAM proof moto cannot give: recorded AWS calls, evaluated against the synthesized policies.

1. ``tests/support/call_recording.py`` records each call (service, operation, parameters, principal) made in
   the moto scenarios.
2. ``iam_requests`` (tests/support/iam_requests.py) turns a call into the IAM request(s) AWS authorizes
   for it; a call with no mapping fails the proof (fail closed).
3. ``PolicySet`` reads each principal's identity policies (and the lane bucket's resource policy) from the
   synthesized CloudFormation template, with intrinsics resolved to the moto deployment's names.
4. ``simulate`` evaluates every distinct request with @cloud-copilot/iam-simulate (node, tests/support/
   iam_simulate.mjs): a maintained evaluator, not one written here.

What Step Functions does on its own behalf for ``batch:submitJob.sync`` (the managed EventBridge rule,
TerminateJob on stop) is never an API call moto shows: those requests come from
``stacks.orchestration.SERVICE_INTEGRATION_PERMISSIONS``, the table that cites the AWS documentation.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacks.common import ident
from stacks.orchestration import BATCH_SYNC_RULE, SERVICE_INTEGRATION_PERMISSIONS
from support.iam_requests import IamRequest, Names, ProofError, iam_requests

__all__ = ["IamRequest", "Names", "PolicySet", "ProofError", "Resolver", "Verdict", "figures", "iam_requests",
           "integration_requests", "proof_requests", "simulate"]

REPO = Path(__file__).resolve().parents[2]
SIMULATOR = Path(__file__).resolve().parent / "iam_simulate.mjs"
UNRESOLVED = "unresolved:"

# principal (as recorded) -> (kind, construct id inside the template's logical ids)
COMPONENTS = {
    "job": ("role", "ComputeJobRole"),
    "check-job": ("role", "ComputeBatchCheckRole"),      # the Batch check job for big products
    "check": ("role", "FunctionsCheckFunctionRole"),
    "gate": ("role", "FunctionsGateFunctionRole"),
    "resolve": ("role", "FunctionsResolveFunctionRole"),
    "state-machine": ("role", "OrchestrationStateMachineRole"),
    "operator": ("managed", "OrchestrationOperatorPolicy"),
    # Glue publication (stacks/catalog.py): whoever holds these customer-managed policies
    "catalog-publisher": ("managed", "CatalogPublishPolicy"),
    "catalog-reader": ("managed", "CatalogReaderPolicy"),
}


def integration_requests(calls: Iterable[dict[str, Any]], names: Names, integration: str) -> list[IamRequest]:
    """What Step Functions itself calls for each job the state machine submitted with ``integration``
    (e.g. ``batch:submitJob.sync``), from the table that cites the AWS documentation."""
    found: list[IamRequest] = []
    for call in calls:
        if call["principal"] != "state-machine" or (call["service"], call["operation"]) != ("batch", "SubmitJob"):
            continue
        for action, kind in SERVICE_INTEGRATION_PERMISSIONS[integration]:
            resource = {"job-queue": names.job_queue(call["params"]["jobQueue"]),
                        "job-definition": names.job_definition(call["params"]["jobDefinition"]),
                        "job": names.arn("batch", "job/submitted-by-the-execution"),
                        "rule": names.arn("events", f"rule/{BATCH_SYNC_RULE}"),
                        "*": "*"}[kind]
            found.append(IamRequest("state-machine", action, resource, (), f"implicit: {integration} (AWS docs table)"))
    return found


# --------------------------------------------------------------------------- policies from the template


PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None}


@dataclass
class Resolver:
    """CloudFormation intrinsics -> the moto deployment's values (unknown references stay unresolved, so a
    statement that names them matches nothing real: fail closed)."""

    region: str
    account: str
    physical: dict[str, dict[str, str]] = field(default_factory=dict)   # logical id -> {"Ref": ..., attr: ...}

    def attribute(self, logical: str, attr: str) -> str:
        return self.physical.get(logical, {}).get(attr, f"{UNRESOLVED}{logical}.{attr}")

    def pseudo(self, name: str) -> Any:
        return {"AWS::Region": self.region, "AWS::AccountId": self.account, **PSEUDO}.get(name, f"{UNRESOLVED}{name}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, argument), = value.items()
            if name == "Ref":
                return self.pseudo(argument) if argument.startswith("AWS::") else self.attribute(argument, "Ref")
            if name == "Fn::GetAtt":
                logical, attr = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.attribute(logical, attr)
            if name == "Fn::Join":
                separator, parts = argument
                return separator.join(str(self.resolve(part)) for part in parts)
            if name == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument

                def substitute(match: re.Match[str]) -> str:
                    key = match.group(1)
                    if key in variables:
                        return str(self.resolve(variables[key]))
                    if key.startswith("AWS::"):
                        return str(self.pseudo(key))
                    logical, _, attr = key.partition(".")
                    return self.attribute(logical, attr or "Ref")

                return re.sub(r"\$\{([^}]+)\}", substitute, text)
            if name == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(index)]
            if name == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
        return {key: self.resolve(item) for key, item in value.items()}


@dataclass
class PolicySet:
    """Identity policies per principal and the lane bucket's resource policy, from one synthesized template."""

    template: dict[str, Any]
    resolver: Resolver
    bucket: str                                        # the lane bucket's physical name
    overrides: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # canaries: edited documents

    def _resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: body for name, body in self.template["Resources"].items() if body["Type"] == kind}

    def logical(self, kind: str, construct: str) -> str:
        found = [name for name in self._resources(kind) if name.startswith(construct)]
        if len(found) != 1:
            raise ProofError(f"template: expected one {kind} {construct}*, found {found}")
        return found[0]

    def component(self, principal: str) -> tuple[str, str]:
        if principal.startswith("consumer:"):
            return "role", f"ConsumersConsumer{ident(principal.split(':', 1)[1])}Role"
        if principal not in COMPONENTS:
            raise ProofError(f"unknown principal {principal!r}: not a component of the stack")
        return COMPONENTS[principal]

    def principal_arn(self, principal: str) -> str:
        kind, construct = self.component(principal)
        name = construct if kind == "role" else "lane-operator" if principal == "operator" else principal
        return f"arn:aws:iam::{self.resolver.account}:{'role' if kind == 'role' else 'user'}/{name}"

    def identity_policies(self, principal: str) -> list[dict[str, Any]]:
        if principal in self.overrides:
            return self.overrides[principal]
        kind, construct = self.component(principal)
        documents: list[dict[str, Any]] = []
        if kind == "managed":
            logical = self.logical("AWS::IAM::ManagedPolicy", construct)
            documents.append(self._resources("AWS::IAM::ManagedPolicy")[logical]["Properties"]["PolicyDocument"])
        else:
            role = self.logical("AWS::IAM::Role", construct)
            body = self._resources("AWS::IAM::Role")[role]["Properties"]
            documents += [policy["PolicyDocument"] for policy in body.get("Policies", [])]
            for policy_kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                for policy in self._resources(policy_kind).values():
                    if {"Ref": role} in policy["Properties"].get("Roles", []):
                        documents.append(policy["Properties"]["PolicyDocument"])
            if body.get("ManagedPolicyArns"):
                raise ProofError(f"{role} attaches managed policies {body['ManagedPolicyArns']}: not evaluated here")
        if not documents:
            raise ProofError(f"{principal}: no identity policy found in the template")
        return [self.resolver.resolve(document) for document in documents]

    def bucket_policy(self) -> dict[str, Any] | None:
        bucket = self.logical("AWS::S3::Bucket", "StorageLaneBucket")
        for policy in self._resources("AWS::S3::BucketPolicy").values():
            if policy["Properties"]["Bucket"] == {"Ref": bucket}:
                return self.resolver.resolve(policy["Properties"]["PolicyDocument"])
        return None

    def without_statement(self, principal: str, sid: str) -> PolicySet:
        """A copy where ``principal`` lacks the statement ``sid`` (the canary)."""
        documents = self.identity_policies(principal)
        edited, removed = [], 0
        for document in documents:
            kept = [s for s in document["Statement"] if s.get("Sid") != sid]
            removed += len(document["Statement"]) - len(kept)
            edited.append({**document, "Statement": kept})
        if not removed:
            raise ProofError(f"{principal} has no statement {sid}")
        return PolicySet(self.template, self.resolver, self.bucket, {**self.overrides, principal: edited})


@dataclass(frozen=True)
class Verdict:
    request: IamRequest
    result: str                    # Allowed | ExplicitlyDenied | ImplicitlyDenied | Error
    errors: Any = None

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"


def simulate(requests: Iterable[IamRequest], policies: PolicySet) -> list[Verdict]:
    """Evaluate each distinct request once (node + @cloud-copilot/iam-simulate)."""
    distinct: dict[tuple[str, str, str, str], IamRequest] = {}
    for request in requests:
        distinct.setdefault(request.key(), request)
    ordered = list(distinct.values())
    if not ordered:
        return []
    bucket_policy = policies.bucket_policy()
    payload = []
    for request in ordered:
        on_bucket = request.resource.startswith(f"arn:aws:s3:::{policies.bucket}")
        payload.append({
            "principal": policies.principal_arn(request.principal),
            "action": request.action,
            "resource": request.resource,
            "account": policies.resolver.account,
            "context": dict(request.context),
            "identityPolicies": policies.identity_policies(request.principal),
            "resourcePolicy": bucket_policy if on_bucket else None,
        })
    result = subprocess.run(["node", str(SIMULATOR)], input=json.dumps(payload), capture_output=True, text=True,
                            cwd=REPO, timeout=300, check=False)
    if result.returncode != 0:
        raise ProofError(f"iam-simulate failed (is node_modules installed? make setup runs npm ci): {result.stderr}")
    answers = json.loads(result.stdout)
    return [Verdict(request, answer["result"], answer.get("errors")) for request, answer in zip(ordered, answers, strict=True)]


def proof_requests(calls: list[dict[str, Any]], names: Names, integrations: Iterable[str]) -> list[IamRequest]:
    """Every IAM request of the recorded calls (set-up by the harness excluded) plus the integrations' own."""
    requests: list[IamRequest] = []
    for call in calls:
        if call["principal"] == "harness":
            continue
        requests += iam_requests(call, names)
    for integration in integrations:
        requests += integration_requests(calls, names, integration)
    return requests


def figures(calls: list[dict[str, Any]], verdicts: list[Verdict]) -> dict[str, Any]:
    recorded = [call for call in calls if call["principal"] != "harness"]
    pairs = sorted({(v.request.principal, v.request.action) for v in verdicts})
    return {"recorded_calls": len(recorded), "distinct_requests": len(verdicts),
            "principal_action_pairs": len(pairs), "allowed": sum(v.allowed for v in verdicts),
            "not_allowed": [(v.request.principal, v.request.action, v.request.resource, v.result, v.request.source)
                            for v in verdicts if not v.allowed],
            "pairs": pairs}


def moto_resolver(template: dict[str, Any], *, region: str, account: str, bucket: str, table: str, bus: str,
                  functions: dict[str, str], job_queue: str, state_machine_arn: str,
                  consumer_queues: dict[str, str]) -> Resolver:
    """Logical ids of the synthesized stack -> the moto deployment's names and ARNs.

    ``functions``: component (gate/check/resolve) -> function name; ``consumer_queues``: consumer construct id
    (e.g. FraudStream) -> queue URL."""
    arn = Names(region=region, account=account)
    by_type: dict[tuple[str, str], dict[str, str]] = {
        ("AWS::S3::Bucket", "StorageLaneBucket"): {"Ref": bucket, "Arn": f"arn:aws:s3:::{bucket}"},
        ("AWS::DynamoDB::Table", "StorageLedgerTable"): {"Ref": table, "Arn": arn.table(table)},
        ("AWS::Events::EventBus", "StorageLaneBus"): {"Ref": bus, "Name": bus, "Arn": arn.bus(bus)},
        ("AWS::Batch::JobQueue", "ComputeJobQueue"): {"Ref": arn.job_queue(job_queue),
                                                      "JobQueueArn": arn.job_queue(job_queue)},
        ("AWS::StepFunctions::StateMachine", "OrchestrationStateMachine"): {
            "Ref": state_machine_arn, "Arn": state_machine_arn, "Name": state_machine_arn.rsplit(":", 1)[-1]},
    }
    for component, name in functions.items():
        by_type[("AWS::Lambda::Function", f"Functions{component.capitalize()}Function")] = {
            "Ref": name, "Arn": arn.function(name)}
    for consumer, url in consumer_queues.items():
        by_type[("AWS::SQS::Queue", f"ConsumersConsumer{consumer}Queue")] = {"Ref": url, "Arn": arn.queue(url),
                                                                            "QueueName": url.rsplit("/", 1)[-1]}
    for kind, construct in COMPONENTS.values():   # roles named in resource policies (the bucket's job deny)
        if kind == "role":
            by_type[("AWS::IAM::Role", construct)] = {"Arn": f"arn:aws:iam::{account}:role/{construct}"}
    physical: dict[str, dict[str, str]] = {}
    for logical, body in template["Resources"].items():
        for (kind, prefix), values in by_type.items():
            if body["Type"] == kind and logical.startswith(prefix):
                physical[logical] = values
    return Resolver(region=region, account=account, physical=physical)
