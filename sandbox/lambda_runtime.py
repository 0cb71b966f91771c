"""What the Lambda runtime gives a function locally: the account it runs in, and the context."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.gateway.routes import Route

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class LambdaContext:
    """The context object the Lambda runtime passes next to the event."""

    function_name: str
    memory_limit_in_mb: int
    aws_request_id: str
    invoked_function_arn: str
    log_group_name: str
    log_stream_name: str
    deadline: float  # time.monotonic() when the function times out
    function_version: str = "$LATEST"

    @classmethod
    def for_route(cls, route: Route, *, region: str = "us-east-1") -> LambdaContext:
        name = route.function_name
        return cls(
            function_name=name,
            memory_limit_in_mb=route.memory_mb,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}",
            log_group_name=f"/aws/lambda/{name}",
            log_stream_name=time.strftime("%Y/%m/%d/[$LATEST]") + secrets.token_hex(16),
            deadline=time.monotonic() + route.timeout,
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))
