"""The template ships its own monitoring: every function and the webhook route are
covered by an alarm, every alarm notifies the stack's topic, and the topic reaches an
address only when ``AlarmEmail`` gives one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.aws import template

ROOT = Path(__file__).resolve().parents[2]


def resources_of(kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template()["Resources"].items() if r["Type"] == kind}


def alarm_dimensions(alarm: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Each metric's dimensions, for a single-metric alarm or a metric-math one."""
    properties = alarm["Properties"]
    if "Metrics" not in properties:
        return [properties.get("Dimensions", [])]
    return [
        query["MetricStat"]["Metric"].get("Dimensions", [])
        for query in properties["Metrics"]
        if "MetricStat" in query
    ]


def test_every_function_has_an_alarm_on_its_errors_and_throttles() -> None:
    alarms = resources_of("AWS::CloudWatch::Alarm").values()
    for function in resources_of("AWS::Serverless::Function"):
        watched = [
            alarm
            for alarm in alarms
            for dimensions in alarm_dimensions(alarm)
            if {"Name": "FunctionName", "Value": {"Ref": function}} in dimensions
        ]
        names = {
            query["MetricStat"]["Metric"]["MetricName"]
            for alarm in watched
            for query in alarm["Properties"].get("Metrics", [])
            if "MetricStat" in query
        }
        assert {"Errors", "Throttles"} <= names, function


def test_the_webhook_route_and_the_api_have_5xx_alarms() -> None:
    alarms = resources_of("AWS::CloudWatch::Alarm").values()
    routes = [
        d["Value"]
        for alarm in alarms
        if alarm["Properties"].get("MetricName") == "5xx"
        for dimensions in alarm_dimensions(alarm)
        for d in dimensions
        if d["Name"] == "Route"
    ]
    assert routes == ["POST /webhooks/stripe"]
    api_wide = [
        alarm
        for alarm in alarms
        if alarm["Properties"].get("MetricName") == "5xx"
        and alarm_dimensions(alarm) == [[{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]]
    ]
    assert len(api_wide) == 1
    settings = template()["Resources"]["HttpApi"]["Properties"]["RouteSettings"]
    assert settings["POST /webhooks/stripe"]["DetailedMetricsEnabled"] is True


def test_every_alarm_notifies_the_topic_and_only_alarm_email_subscribes_to_it() -> None:
    for name, alarm in resources_of("AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["Properties"]["AlarmDescription"], name
    (subscription,) = resources_of("AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    condition = template()["Conditions"]["HasAlarmEmail"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert template()["Parameters"]["AlarmEmail"]["Default"] == ""


def test_the_webhook_metric_alarms_match_what_the_function_emits() -> None:
    declared = template()
    service = declared["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    custom = {
        name: alarm["Properties"]
        for name, alarm in resources_of("AWS::CloudWatch::Alarm").items()
        if alarm["Properties"].get("Namespace") == {"Ref": "MetricsNamespace"}
    }
    watched = {
        (p["MetricName"], {d["Name"]: d["Value"] for d in p["Dimensions"]}["outcome"])
        for p in custom.values()
    }
    assert watched == {("WebhookEvents", "rejected_signature"), ("WebhookLag", "applied")}
    for properties in custom.values():
        dimensions = {d["Name"]: d["Value"] for d in properties["Dimensions"]}
        # EMF metrics carry the service dimension: an alarm without it watches nothing.
        assert dimensions["service"] == service
    source = (ROOT / "functions" / "webhook" / "app.py").read_text()
    assert '"WebhookEvents"' in source
    assert '"WebhookLag"' in source
    assert "rejected_signature" in source
