"""CloudFormation's side of a custom resource: the request events and the response URL.

CloudFormation invokes the function with an event naming a pre-signed S3 URL
and waits for one JSON document PUT there. :class:`ResponseReceiver` is that
URL on loopback: it records every PUT (and can refuse the first ones).
"""

from __future__ import annotations

import copy
import importlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

from tests.support.events import EVENTS
from tests.support.lambda_context import LambdaContext


@dataclass
class Answer:
    path: str
    body: dict[str, Any]
    content_type: str | None
    at: float


@dataclass
class ResponseReceiver:
    """Records PUTs; answers ``refuse_with`` statuses first (one per PUT), then 200."""

    answers: list[Answer] = field(default_factory=list)
    refuse_with: list[int] = field(default_factory=list)
    attempts: int = 0
    _server: ThreadingHTTPServer | None = None

    def start(self) -> ResponseReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.refuse_with:
                    self.send_response(receiver.refuse_with.pop(0))
                    self.end_headers()
                    return
                receiver.answers.append(
                    Answer(
                        self.path, json.loads(body), self.headers.get("Content-Type"), time.time()
                    )
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()

    def url(self, tag: str) -> str:
        assert self._server
        return f"http://127.0.0.1:{self._server.server_port}/{tag}?X-Amz-Signature=test"

    def only_answer(self) -> dict[str, Any]:
        """The single answer received; fails if there were none or several."""
        assert len(self.answers) == 1, [a.body for a in self.answers]
        return self.answers[0].body


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
