"""AWS resources for tests, created in moto from the definitions in ``template.yaml``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sandbox.cloudformation import create_billing_table as create_table_from_template
from sandbox.cloudformation import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@cache
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def create_billing_table(name: str) -> None:
    """The table exactly as ``BillingTable`` declares its keys, billing mode and TTL."""
    create_table_from_template(template(), name)


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
