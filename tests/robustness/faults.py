"""DynamoDB faults injected into the functions' own boto3 client, below its retries.

A ``before-send`` handler answers in DynamoDB's place, as DynamoDB answers a
throttled or failed request, so botocore parses the answer and applies the
retry policy the layer configured, exactly as on Lambda.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders


@dataclass(frozen=True)
class DynamoDBError:
    code: str
    status: int


THROTTLED = DynamoDBError("ProvisionedThroughputExceededException", 400)
THROTTLING = DynamoDBError("ThrottlingException", 400)
INTERNAL_ERROR = DynamoDBError("InternalServerError", 500)
UNAVAILABLE = DynamoDBError("ServiceUnavailable", 503)


class _Body:
    def __init__(self, content: bytes) -> None:
        self.content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.content


@contextmanager
def dynamodb_failing(
    client: Any,
    error: DynamoDBError,
    *,
    count: int | None = None,
    operations: Collection[str] = (),
) -> Iterator[list[str]]:
    """Inside the block, the next ``count`` requests (all, by default) of ``client`` to the
    ``operations`` named (all, by default) fail with ``error``. Yields the names of the
    operations failed so far, one per failed attempt."""
    failed: list[str] = []
    lock = threading.Lock()

    def fail(request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        if operations and operation not in operations:
            return None
        with lock:
            if count is not None and len(failed) >= count:
                return None
            failed.append(operation)
        body = {"__type": f"com.amazonaws.dynamodb.v20120810#{error.code}", "message": "injected"}
        headers = HTTPHeaders()
        headers["x-amzn-RequestId"] = "injected"
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return AWSResponse(request.url, error.status, headers, _Body(json.dumps(body).encode()))

    client.meta.events.register("before-send.dynamodb", fail)
    try:
        yield failed
    finally:
        client.meta.events.unregister("before-send.dynamodb", fail)
