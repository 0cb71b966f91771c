"""Cold start to the first response: the import, then one real request, in fresh processes.

``bench.cold_start`` times what the budgets call the cold start, the import of the handler
module. A function can shrink that figure by putting work off to its first request (an
import, a client), which moves the cost instead of removing it. This times what a user
waits for on a new container: the CPU time of a fresh ``python3.13`` from the import
through the handler's first answer, on the same build, layer, runtime packages and
environment as ``bench.cold_start`` (so the two tables compare).

The request is a real one. AWS calls go over HTTP to moto's server (``AWS_ENDPOINT_URL``)
and Stripe calls to the stand-in, both running in this process on the seeded offline
stack, so their CPU time is not the function's. The client side of each call (building,
signing, parsing; the first client of each service loading its model) is.

- ``GET /billing`` for a subscriber: one ``Query``;
- ``POST /portal-sessions`` for a linked customer, no flow: the Stripe key from Secrets
  Manager, the link from DynamoDB, one Stripe call.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto.server import ThreadedMotoServer

from bench.cold_start import function_environments, python313, run_child, workspace
from bench.counts import subscribed_user
from bench.stack import Stack
from tests.support.events import http_event
from tests.support.local_stack import free_port

USER = "bench-first-response"

# Timed inside the child; sys.argv: function dir, layer dir, runtime dir, event file.
_CHILD = """
import importlib, json, os, sys, time
task, layer, runtime, event_file = sys.argv[1:5]
sys.path[0:0] = [task, layer, runtime]
os.chdir(task)
with open(event_file) as f:
    event = json.load(f)

class Context:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    memory_limit_in_mb = 512
    aws_request_id = "bench-first-response"
    log_group_name = "/aws/lambda/" + function_name
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self):
        return 10_000

start = time.process_time()
app = importlib.import_module("app")
imported = time.process_time()
response = app.lambda_handler(event, Context())
answered = time.process_time()
print(json.dumps({
    "import": (imported - start) * 1000,
    "request": (answered - imported) * 1000,
    "status": response["statusCode"],
    "body": response.get("body") or "",
}))
"""


@dataclass(frozen=True)
class Request:
    """One function's first request, and what its answer must be for the run to count."""

    function: str
    description: str
    event: Callable[[], dict[str, Any]]
    answered: Callable[[dict[str, Any]], bool]


REQUESTS = (
    Request(
        "BillingFunction",
        "`GET /billing`, a subscriber",
        lambda: http_event("billing/get_billing", user=USER),
        lambda body: body.get("status") == "active",
    ),
    Request(
        "PortalSessionFunction",
        "`POST /portal-sessions`, linked customer, no flow",
        lambda: http_event("portal_session/post_portal_session", body={}, user=USER),
        lambda body: str(body.get("url", "")).startswith("http"),
    ),
)


@dataclass(frozen=True)
class FirstResponse:
    function: str
    request: str
    import_ms: float  # medians, CPU time
    request_ms: float
    total_ms: float  # median of the per-run sums


@dataclass(frozen=True)
class FirstResponses:
    functions: tuple[FirstResponse, ...]
    runs: int

    def of(self, function: str) -> FirstResponse:
        return next(f for f in self.functions if f.function == function)


def measure_first_responses(stack: Stack, runs: int = 15) -> FirstResponses:
    """Median CPU time to the first response of each of ``REQUESTS``, on ``stack``'s data."""
    subscribed_user(stack, USER)
    environments = function_environments()
    interpreter = python313()
    samples: dict[str, list[dict[str, float]]] = {}
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server.start()
    try:
        endpoint = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
        with workspace([r.function for r in REQUESTS], naive=False, variants=("pyc",)) as built:
            events = _event_files(built.runtime.parent)
            for round_ in range(runs + 1):  # round 0 warms the file cache
                for request in REQUESTS:
                    task = built.tasks["pyc"][request.function]
                    paths = (task, built.layers["pyc"], built.runtime, events[request.function])
                    answer = run_child(
                        [interpreter, "-I", "-S", "-c", _CHILD, *map(str, paths)],
                        cwd=task,
                        env={**environments[request.function], **stack.environment, **endpoint},
                        failure=f"first request of {request.function} failed",
                    )
                    _check(request, answer)
                    if round_:
                        samples.setdefault(request.function, []).append(answer)
    finally:
        server.stop()

    def figures(request: Request) -> FirstResponse:
        runs_ = samples[request.function]
        return FirstResponse(
            request.function,
            request.description,
            statistics.median(r["import"] for r in runs_),
            statistics.median(r["request"] for r in runs_),
            statistics.median(r["import"] + r["request"] for r in runs_),
        )

    return FirstResponses(tuple(figures(r) for r in REQUESTS), runs)


def _event_files(directory: Path) -> dict[str, Path]:
    files = {}
    for request in REQUESTS:
        files[request.function] = directory / f"{request.function}.event.json"
        files[request.function].write_text(json.dumps(request.event()))
    return files


def _check(request: Request, answer: dict[str, Any]) -> None:
    """Only a right answer counts: a fast 503 would flatter the figures."""
    body = json.loads(answer["body"]) if answer["body"] else {}
    if answer["status"] != 200 or not request.answered(body):
        raise RuntimeError(
            f"{request.description} answered {answer['status']}: {answer['body'][:300]}"
        )
