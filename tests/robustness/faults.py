"""AWS faults injected into the functions' own botocore clients, below their retries.

A ``before-send`` handler answers in the service's place (DynamoDB, Secrets Manager), as
the service answers a throttled or failed request, so botocore parses the answer and
applies the retry policy the layer configured, exactly as on Lambda.
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
class AwsError:
    code: str
    status: int


THROTTLED = AwsError("ProvisionedThroughputExceededException", 400)
THROTTLING = AwsError("ThrottlingException", 400)
INTERNAL_ERROR = AwsError("InternalServerError", 500)
UNAVAILABLE = AwsError("ServiceUnavailable", 503)
SECRETS_INTERNAL_ERROR = AwsError("InternalServiceError", 500)


class _Body:
    def __init__(self, content: bytes) -> None:
        self.content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.content


@contextmanager
def aws_failing(
    client: Any,
    error: AwsError,
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
        body = {"__type": f"{error_type_prefix}{error.code}", "message": "injected"}
        headers = HTTPHeaders()
        headers["x-amzn-RequestId"] = "injected"
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return AWSResponse(request.url, error.status, headers, _Body(json.dumps(body).encode()))

    service = client.meta.service_model.service_id.hyphenize()
    error_type_prefix = "com.amazonaws.dynamodb.v20120810#" if service == "dynamodb" else ""
    client.meta.events.register(f"before-send.{service}", fail)
    try:
        yield failed
    finally:
        client.meta.events.unregister(f"before-send.{service}", fail)
