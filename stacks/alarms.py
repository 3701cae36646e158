"""Alarms: failed or timed-out runs, rejected products (per lane), messages in any dead-letter queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.common import EVENT_SOURCE, alarm_on_any, retention

METRIC_NAMESPACE = "batchlane"
REJECTED_METRIC = "RejectedProducts"


@dataclass(frozen=True)
class AlarmsProps:
    lane: str
    log_retention_days: int
    alarm_topic_arn: str | None = None


class LaneAlarms(Construct):
    """alarms; rejected_logs (the audit trail of DataProductRejected events, and the metric's source)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: AlarmsProps, state_machine: sfn.StateMachine,
                 bus: events.IEventBus, dead_letter_queues: dict[str, sqs.IQueue]) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []
        failed = cloudwatch.MathExpression(
            expression="failed + timedout",
            using_metrics={"failed": state_machine.metric_failed(statistic="Sum"),
                           "timedout": state_machine.metric_timed_out(statistic="Sum")},
            period=Duration.minutes(5), label="Failed or timed-out runs")
        self.alarms.append(alarm_on_any(
            self, failed, "FailedRunsAlarm", f"batchlane {props.lane}: a run failed or timed out (redrive it from the console)"))

        self.rejected_logs = logs.LogGroup(self, "RejectedEventsLogs", retention=retention(props.log_retention_days),
                                           removal_policy=RemovalPolicy.RETAIN)
        events.Rule(self, "RejectedRule",
                    description=f"batchlane {props.lane}: keep DataProductRejected events (alarm + audit)",
                    event_bus=bus,
                    event_pattern=events.EventPattern(source=[EVENT_SOURCE], detail_type=["DataProductRejected"]),
                    targets=[_LogGroupTarget(self.rejected_logs)])
        # What CDK's CloudWatchLogGroup target would install through a custom-resource Lambda, as a plain
        # resource: EventBridge may write to this log group only. (Accounts have 10 such policies per region.)
        logs.ResourcePolicy(self, "RejectedEventsLogsPolicy", policy_statements=[iam.PolicyStatement(
            sid="EventBridgeWritesRejectedEvents",
            principals=[iam.ServicePrincipal("events.amazonaws.com"), iam.ServicePrincipal("delivery.logs.amazonaws.com")],
            actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.rejected_logs.log_group_arn])])
        # One lane's rejections alarm that lane only: the metric carries the lane as a dimension, taken from
        # the event itself, and the filter counts this lane's events.
        rejected = logs.MetricFilter(
            self, "RejectedProductsMetric",
            log_group=self.rejected_logs,
            filter_pattern=logs.FilterPattern.string_value("$.detail.lane", "=", props.lane),
            metric_namespace=METRIC_NAMESPACE,
            metric_name=REJECTED_METRIC,
            metric_value="1",
            dimensions={"Lane": "$.detail.lane"},
        ).metric(statistic="Sum", period=Duration.minutes(5), dimensions_map={"Lane": props.lane})
        self.alarms.append(alarm_on_any(
            self, rejected, "RejectedProductsAlarm",
            f"batchlane {props.lane}: a data product was rejected (FAIL): see its check receipt"))
        for name, queue in sorted(dead_letter_queues.items()):
            self.alarms.append(alarm_on_any(
                self, queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum"),
                f"{name}DlqAlarm", f"batchlane {props.lane}: messages in the {name} dead-letter queue"))
        if props.alarm_topic_arn:
            action = cw_actions.SnsAction(sns.Topic.from_topic_arn(self, "AlarmTopic", props.alarm_topic_arn))
            for alarm in self.alarms:
                alarm.add_alarm_action(action)


@jsii.implements(events.IRuleTarget)
class _LogGroupTarget:
    """An EventBridge target writing events to a log group (resource policy created by the stack)."""

    def __init__(self, log_group: logs.LogGroup) -> None:
        self.log_group = log_group

    def bind(self, rule: Any, id: str | None = None) -> events.RuleTargetConfig:  # (jsii types it IRuleRef)
        arn = Stack.of(self.log_group).format_arn(
            service="logs", resource="log-group", resource_name=self.log_group.log_group_name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
        return events.RuleTargetConfig(arn=arn, target_resource=self.log_group)
