"""Answering CloudFormation custom-resource requests: exactly once, before the deadline.

A custom resource that never answers leaves its stack waiting until the
resource's ``ServiceTimeout``; one that answers twice can confuse a rollback.
:func:`answer_request` runs one request and guarantees a single answer:

- SUCCESS with the resource's physical id and attributes when the handler returns;
- FAILED with a short reason when it raises (:class:`ResourceFailed` carries a
  reason written for the person running ``sam deploy``; anything else is
  summarised and logged in full), when the function failed to initialise, or
  when the Lambda deadline is ``margin_seconds`` away (a timer thread).

Why not crhelper: its defaults sleep 120 s on every Delete, its timer fires
0.5 s before the deadline with no guard against the main thread answering too,
its sender retries forever and speaks only HTTPS, and it creates three boto3
clients at import. The event is read with Powertools'
``CloudFormationCustomResourceEvent``; the answer is one bounded-retry PUT.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent

logger = Logger(child=True)

Status = Literal["SUCCESS", "FAILED"]

# CloudFormation rejects answers over 4 KiB; reasons are for humans anyway.
REASON_LIMIT = 500
# Physical id of a resource whose Create failed: Delete handlers treat any id
# they did not issue as "nothing to delete" (the rollback after a failed Create).
NOT_CREATED = "not-created"


class ResourceFailed(Exception):
    """An expected failure; the message is the reason CloudFormation shows."""


@dataclass(frozen=True, slots=True)
class Provisioned:
    """The outcome of Create or Update: the physical id and the ``Fn::GetAtt`` attributes."""

    physical_resource_id: str
    data: Mapping[str, str] = field(default_factory=dict)


class ResourceHandler(Protocol):
    """What one custom resource type does on each request type."""

    def create(self, request: CloudFormationCustomResourceEvent) -> Provisioned: ...

    def update(self, request: CloudFormationCustomResourceEvent) -> Provisioned: ...

    def delete(self, request: CloudFormationCustomResourceEvent) -> None: ...


class LambdaContextLike(Protocol):
    @property
    def log_stream_name(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...


Sender = Callable[[str, Mapping[str, Any]], bool]


def answer_request(
    event: dict[str, Any],
    context: LambdaContextLike,
    handler: ResourceHandler | None,
    *,
    init_error: BaseException | None = None,
    margin_seconds: float = 5.0,
    send: Sender | None = None,
) -> Status:
    """Run ``handler`` for the request in ``event`` and answer CloudFormation once.

    ``handler`` is None exactly when the function failed to initialise
    (``init_error``). Returns the status that was sent.
    """
    request = CloudFormationCustomResourceEvent(event)
    answer = _Answer(request, send or put_response)
    logger.append_keys(
        request_type=request.request_type,
        logical_resource_id=request.logical_resource_id,
        resource_type=request.resource_type,
    )
    deadline = context.get_remaining_time_in_millis() / 1000 - margin_seconds
    timer = threading.Timer(max(deadline, 0.0), answer.timed_out)
    timer.daemon = True
    timer.start()
    try:
        if handler is None:
            reason = _describe(init_error) if init_error else "unknown error"
            answer.failed(f"The function failed to initialise: {reason}")
        else:
            answer.succeeded(_dispatch(request, handler))
    except ResourceFailed as error:
        logger.warning("Custom resource request failed", extra={"reason": str(error)})
        answer.failed(str(error))
    except Exception as error:
        logger.exception("Custom resource request failed unexpectedly")
        answer.failed(f"{_describe(error)} (details in log stream {context.log_stream_name})")
    finally:
        timer.cancel()
    # If the timer is answering right now, let it finish before Lambda freezes us.
    return answer.wait(timeout=max(context.get_remaining_time_in_millis() / 1000, 1.0))


def _dispatch(request: CloudFormationCustomResourceEvent, handler: ResourceHandler) -> Provisioned:
    match request.request_type:
        case "Create":
            return handler.create(request)
        case "Update":
            return handler.update(request)
        case "Delete":
            handler.delete(request)
            return Provisioned(request.physical_resource_id)
    raise ResourceFailed(f"Unknown request type {request.request_type!r}.")


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Answer:
    """The single answer to one request; whichever thread comes first sends it."""

    def __init__(self, request: CloudFormationCustomResourceEvent, send: Sender) -> None:
        self._request = request
        self._send = send
        self._lock = threading.Lock()
        self._claimed = False
        self._sent = threading.Event()
        self._status: Status = "FAILED"

    def succeeded(self, outcome: Provisioned) -> None:
        self._answer("SUCCESS", "", outcome.physical_resource_id, outcome.data)

    def failed(self, reason: str) -> None:
        # Keep the id CloudFormation knows, so a failed Update is not read as a replacement.
        self._answer("FAILED", reason, self._request.physical_resource_id or NOT_CREATED, {})

    def timed_out(self) -> None:
        logger.error("Custom resource request about to time out; answering FAILED")
        self.failed("Timed out before the work finished; the deploy can be retried.")

    def wait(self, timeout: float) -> Status:
        self._sent.wait(timeout)
        return self._status

    def _answer(
        self, status: Status, reason: str, physical_id: str, data: Mapping[str, str]
    ) -> None:
        with self._lock:
            if self._claimed:
                return
            self._claimed = True
        self._status = status
        body = {
            "Status": status,
            "Reason": _short(reason or status),
            "PhysicalResourceId": physical_id,
            "StackId": self._request.stack_id,
            "RequestId": self._request.request_id,
            "LogicalResourceId": self._request.logical_resource_id,
            "NoEcho": False,
            "Data": dict(data),
        }
        try:
            delivered = self._send(self._request.response_url, body)
            logger.info(
                "Answered CloudFormation",
                extra={"status": status, "reason": body["Reason"], "delivered": delivered},
            )
        finally:
            self._sent.set()


def _short(reason: str) -> str:
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 1] + "…"


def put_response(
    url: str,
    body: Mapping[str, Any],
    *,
    attempts: int = 4,
    timeout_seconds: float = 3.0,
    backoff_seconds: float = 0.5,
) -> bool:
    """PUT the answer to CloudFormation's pre-signed URL, retrying a bounded number of times.

    The URL is a credential and is never logged. Client errors (an expired or
    malformed URL) are not retried. Returns whether CloudFormation took it.
    """
    payload = json.dumps(body).encode()
    for attempt in range(1, attempts + 1):
        # The pre-signed URL is signed without a content type: send an empty one.
        request = urllib.request.Request(  # noqa: S310 - CloudFormation's https URL
            url, data=payload, method="PUT", headers={"Content-Type": ""}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_seconds):  # noqa: S310
                return True
        except urllib.error.HTTPError as error:
            logger.warning("CloudFormation refused the answer", extra={"http_status": error.code})
            if error.code < 500:
                return False
        except (urllib.error.URLError, OSError) as error:
            logger.warning(
                "Could not reach CloudFormation",
                extra={"attempt": attempt, "error": type(error).__name__},
            )
        if attempt < attempts:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
    logger.error("Gave up answering CloudFormation", extra={"attempts": attempts})
    return False
