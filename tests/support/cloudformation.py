"""CloudFormation's side of a custom resource: the request events and the response URL.

CloudFormation invokes the function with an event naming a pre-signed S3 URL
and waits for one JSON document PUT there; ``sandbox.cloudformation``'s
:class:`ResponseReceiver` is that URL on loopback (``make dev`` uses it too).
"""

from __future__ import annotations

import copy
import importlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from sandbox.cloudformation import ResponseReceiver
from tests.support.events import EVENTS
from tests.support.lambda_context import LambdaContext


def sample_event(name: str) -> dict[str, Any]:
    """``events/<name>.json`` as committed."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def cfn_event(name: str, receiver: ResponseReceiver, **fields: Any) -> dict[str, Any]:
    """``events/<name>.json`` answering to ``receiver``, with top-level ``fields`` replaced."""
    event = copy.deepcopy(sample_event(name))
    event["ResponseURL"] = receiver.url(event["RequestId"])
    event.update(fields)
    return event


class DeadlineContext(LambdaContext):
    """A Lambda context whose deadline is ``seconds`` from its creation."""

    def __init__(self, seconds: float = 60.0) -> None:
        super().__init__(function_name="CustomResourceFunction")
        self.deadline = time.time() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.deadline - time.time()) * 1000), 0)


@contextmanager
def fresh_module(name: str) -> Iterator[ModuleType]:
    """Import ``name`` anew, so its initialisation runs against the current environment."""
    module = importlib.import_module(name)
    yield importlib.reload(module)
