"""What the webhook function records in CloudWatch: embedded-metric-format lines on
stdout, one per delivery, parsed as CloudWatch parses them. Names, units and dimensions
are fixed and bounded (an outcome, never an event, object or customer id), and nothing
secret is in them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from functions.webhook import app as webhook_function
from tests.conftest import WEBHOOK_SECRET
from tests.support.portal import subscribed_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import deliver, events_from_changes, stripe_event

NAMESPACE = "BillingPortalTest"
OUTCOMES = {
    "applied",
    "duplicate",
    "stale",
    "ignored",
    "other_mode",
    "unlinked",
    "retired",
    "unreadable",
    "rejected_signature",
    "malformed",
    "failed",
}


@pytest.fixture
def hooks(
    webhook_deployment: dict[str, Any], account: Account, monkeypatch: pytest.MonkeyPatch
) -> Account:
    monkeypatch.setattr(webhook_function.metrics, "namespace", NAMESPACE)
    return account


def emitted(out: str) -> list[dict[str, Any]]:
    """The EMF documents among the captured output lines."""
    documents = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def metric_values(document: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Each metric of an EMF document: (unit, value), checked against its directive."""
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    (dimensions,) = directive["Dimensions"]
    assert "outcome" in dimensions
    assert set(dimensions) <= {"outcome", "service"}  # bounded: never an id
    values = {}
    for metric in directive["Metrics"]:
        value = document[metric["Name"]]
        values[metric["Name"]] = (metric["Unit"], value[0] if isinstance(value, list) else value)
    return values


def test_each_delivery_is_one_metric_line_with_its_outcome_and_lag(
    hooks: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    subscribed_user(hooks, "user-metrics")
    events = events_from_changes(hooks.changes())
    capsys.readouterr()

    for event in events:
        deliver(event)
    deliver(events[0])  # Stripe's redelivery
    deliver(
        stripe_event(
            "charge.succeeded",
            {"object": "charge", "id": "ch_1"},
            created=int(time.time()),
            event_id="evt_metricsIgnored",
        )
    )
    deliver(events[0], secret="whsec_forged")
    deliver('{"not": "an event"}')

    documents = emitted(capsys.readouterr().out)
    assert len(documents) == len(events) + 4
    outcomes = [d["outcome"] for d in documents]
    assert set(outcomes) <= OUTCOMES
    assert outcomes[-4:] == ["duplicate", "ignored", "rejected_signature", "malformed"]
    assert outcomes.count("applied") >= len(events) - 2
    for document in documents:
        metrics = metric_values(document)
        assert metrics["WebhookEvents"] == ("Count", 1)
        if document["outcome"] not in ("rejected_signature", "malformed"):
            unit, lag = metrics["WebhookLag"]
            assert unit == "Seconds"
            assert 0 <= lag < 120
        text = json.dumps(document)
        assert WEBHOOK_SECRET not in text
        assert not any(e["id"] in text for e in events)
        assert "cus_" not in text
        assert "sub_" not in text


def test_lag_is_the_age_of_the_event(hooks: Account, capsys: pytest.CaptureFixture[str]) -> None:
    subscribed_user(hooks, "user-late")
    (event, *_) = events_from_changes(hooks.changes())
    event["created"] = int(time.time()) - 3600  # delivered an hour after Stripe made it
    capsys.readouterr()

    deliver(event)

    (document,) = emitted(capsys.readouterr().out)
    unit, lag = metric_values(document)["WebhookLag"]
    assert unit == "Seconds"
    assert 3600 <= lag < 3700
