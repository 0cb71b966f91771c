"""A Lambda SQS event source, locally: poll a queue and invoke a function with its messages.

Like the event source mapping the template declares (``Events: Type: SQS``, batch size
1): a message is deleted once the handler returns, and left to reappear after the
queue's visibility timeout when the handler raises, so SQS's redrive policy applies.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3

from sandbox.lambda_runtime import ACCOUNT_ID, LambdaContext

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


class SqsEventSource:
    """Feeds one queue's messages to ``handler``, one message per invocation."""

    def __init__(
        self, queue_url: str, handler: Handler, *, function_name: str, timeout: float
    ) -> None:
        self.queue_url = queue_url
        self.handler = handler
        self.function_name = function_name
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=function_name)
        self._sqs = boto3.client("sqs")
        self._arn = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def drain(self) -> int:
        """Invoke the handler for every message waiting now (and those it sends); the
        number of invocations. For tests, with the source not started."""
        invoked = 0
        while self._poll_once(wait_seconds=0):
            invoked += 1
        return invoked

    def _run(self) -> None:
        # Short polls: `make dev`'s moto serves one request at a time, and a long poll
        # would hold every other AWS call for its whole wait.
        while not self._stop.is_set():
            try:
                if not self._poll_once(wait_seconds=0):
                    self._stop.wait(0.25)
            except Exception:  # the source keeps polling, as Lambda's does
                logger.exception("SQS event source %s failed", self.function_name)
                self._stop.wait(1)

    def _poll_once(self, *, wait_seconds: int) -> bool:
        messages: list[Any] = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return False
        message = messages[0]
        try:
            self.handler(self._event(message), self._context())
        except Exception:
            logger.exception("%s failed; the message comes back", self.function_name)
            return True
        self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return True

    def _event(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": message["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self._arn,
                    "awsRegion": self._arn.split(":")[3],
                }
            ]
        }

    def _context(self) -> LambdaContext:
        name = self.function_name
        return LambdaContext(
            function_name=name,
            memory_limit_in_mb=512,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{name}",
            log_group_name=f"/aws/lambda/{name}",
            log_stream_name=time.strftime("%Y/%m/%d/[$LATEST]") + secrets.token_hex(16),
            deadline=time.monotonic() + self.timeout,
        )


def create_queue(template: dict[str, Any], logical_id: str, name: str) -> str:
    """A queue as the template declares it (visibility timeout, and the redrive policy's
    dead-letter queue, made first); returns its URL."""
    sqs = boto3.client("sqs")
    properties = template["Resources"][logical_id]["Properties"]
    attributes: Any = {"VisibilityTimeout": str(properties.get("VisibilityTimeout", 30))}
    redrive = properties.get("RedrivePolicy")
    if redrive:
        dead_letters = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        dlq_url = create_queue(template, dead_letters, f"{name}-dead-letters")
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"],
                "maxReceiveCount": redrive["maxReceiveCount"],
            }
        )
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url
