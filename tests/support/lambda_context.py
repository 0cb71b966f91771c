"""Invoking a handler in-process the way the Lambda runtime does."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class LambdaContext:
    function_name: str = "PortalSessionFunction"
    function_version: str = "$LATEST"
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:PortalSessionFunction"
    )
    memory_limit_in_mb: int = 512
    aws_request_id: str = "4b0a8bb4-5a3c-4a48-9e5c-1f3f1b0c0d11"
    log_group_name: str = "/aws/lambda/PortalSessionFunction"
    log_stream_name: str = "2026/11/21/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@dataclass
class HttpResult:
    status: int
    body: Any
    headers: dict[str, str]
    raw: str


def invoke(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]], event: dict[str, Any]
) -> HttpResult:
    """Run ``handler`` on ``event`` and decode its API Gateway response."""
    response = handler(event, LambdaContext())
    raw = response.get("body") or ""
    body = json.loads(raw) if raw else None
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return HttpResult(response["statusCode"], body, headers, raw)
