"""The local stack of ``make dev``, started as its own process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import requests
import stripe

from tests.support.local_stack import dev_token, free_port

ROOT = Path(__file__).resolve().parents[2]


def dev_command(port: int, stripe_port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sandbox.dev",
        "--port",
        str(port),
        "--stripe-port",
        str(stripe_port),
    ]


def dev_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STRIPE_"))}
    env["PYTHONPATH"] = f"{ROOT / 'layers' / 'billing'}:{ROOT}"
    return env


@dataclass
class LocalStack:
    api_url: str
    stripe_url: str
    port: int
    process: subprocess.Popen[str]
    info: dict[str, Any]
    log: IO[str]

    def token(self, sub: str, email: str | None = None) -> str:
        return dev_token(self.api_url, sub, email)

    def get(self, path: str, token: str) -> requests.Response:
        return requests.get(
            f"{self.api_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def post(self, path: str, token: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(
            f"{self.api_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )


def start_local_stack(
    extra_environment: dict[str, str] | None = None,
    *,
    port: int | None = None,
    stripe_port: int | None = None,
) -> LocalStack:
    """``python -m sandbox.dev`` (on free ports), once ``/_dev/info`` says it is ready."""
    port = port or free_port()
    # A file, not a pipe: nobody reads while it runs, and a full pipe would block its logging.
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop_local_stack
    process = subprocess.Popen(  # noqa: S603 - our own command line
        dev_command(port, stripe_port or free_port()),
        cwd=ROOT,
        env={**dev_environment(), **(extra_environment or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    api_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    info: dict[str, Any] | None = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            info = requests.get(f"{api_url}/_dev/info", timeout=1).json()
            # The gateway answers before the demo customer is seeded.
            if info.get("ready"):
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stack = LocalStack(
        api_url, str(info["stripe_url"]) if info else "", port, process, info or {}, log
    )
    if info is None or not info.get("ready") or process.poll() is not None:
        process.kill()
        pytest.fail(f"make dev did not start:\n{stop_local_stack(stack)[-3000:]}")
    return stack


def stop_local_stack(stack: LocalStack) -> str:
    """Ctrl-C, as a person would; returns what it printed."""
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGINT)
    try:
        stack.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        stack.process.wait(timeout=5)
    stack.log.seek(0)
    output = stack.log.read()
    stack.log.close()
    return output


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    stack = start_local_stack()
    yield stack
    stop_local_stack(stack)


def subscriber(stack: LocalStack, user_id: str, lookup_key: str = "pro_monthly") -> str:
    """A user with a Visa card and a subscription, created in Stripe (the stand-in) directly."""
    client = stripe.StripeClient(
        str(stack.info.get("stripe_api_key", "sk_test_standin")),
        base_addresses={"api": stack.stripe_url},
    )
    customer = client.v1.customers.create(
        {"email": f"{user_id}@example.com", "metadata": {"user_id": user_id}}
    )
    card = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
    client.v1.customers.update(
        customer.id, {"invoice_settings": {"default_payment_method": card.id}}
    )
    price = client.v1.prices.list({"lookup_keys": [lookup_key]}).data[0]
    client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    # Ready once the webhooks have brought the subscription and card to the snapshot.
    billing = eventually(stack, stack.token(user_id), lambda b: b["plan"] and b["payment_method"])
    if not (billing["plan"] and billing["payment_method"]):
        raise AssertionError(f"{user_id}'s subscription never reached GET /billing")
    return customer.id


def eventually(
    stack: LocalStack, token: str, check: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    """The snapshot once ``check`` holds (webhooks are asynchronous), or fail after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        billing: dict[str, Any] = stack.get("/billing", token).json()
        if check(billing) or time.monotonic() > deadline:
            return billing
        time.sleep(0.2)
