"""AWS resources for tests, created in moto from the definitions in ``template.yaml``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import decode

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@cache
def template() -> dict[str, Any]:
    loaded, problems = decode(str(TEMPLATE))
    if loaded is None:
        raise RuntimeError(f"template.yaml does not parse: {problems}")
    return dict(loaded)


def create_billing_table(name: str) -> None:
    """The table exactly as ``BillingTable`` declares its keys, billing mode and TTL."""
    props = template()["Resources"]["BillingTable"]["Properties"]
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode=props["BillingMode"],
    )
    ttl = props["TimeToLiveSpecification"]
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": ttl["Enabled"], "AttributeName": ttl["AttributeName"]},
    )


@contextmanager
def dynamodb_calls(client: Any) -> Iterator[list[str]]:
    """The names of the DynamoDB operations ``client`` sends inside the block, in order."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client.meta.events.register("before-call.dynamodb", record)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.dynamodb", record)
