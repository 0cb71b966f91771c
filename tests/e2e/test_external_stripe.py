"""``make dev`` against a Stripe account given in the environment instead of the stand-in.

No real Stripe account is reachable here, so a second stand-in plays the
developer's test-mode account (its own key, nothing of ``make dev``'s), and a
webhook endpoint registered on it plays ``stripe listen --forward-to``: it
forwards the account's events to the local webhook route, signed with the
secret ``make dev`` is given. What ``make dev`` does differs only in its
inputs: the key, the API base and that secret.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import stripe

from billing.projection.registry import HANDLED_EVENT_TYPES
from billing.stripe_api.client import STRIPE_API_VERSION
from sandbox.seed import CATALOG, DEMO_EMAIL
from sandbox.stripe_standin.server import StripeStandIn
from tests.e2e.conftest import (
    ROOT,
    LocalStack,
    dev_command,
    dev_environment,
    eventually,
    start_local_stack,
    stop_local_stack,
)
from tests.support.local_stack import free_port


@dataclass
class DeveloperAccount:
    standin: StripeStandIn
    client: stripe.StripeClient

    def environment(self, webhook_secret: str) -> dict[str, str]:
        return {
            "STRIPE_API_KEY": self.standin.api_key,
            "STRIPE_API_BASE": self.standin.url,
            "STRIPE_WEBHOOK_SECRET": webhook_secret,
        }

    def stripe_listen(self, port: int) -> str:
        """Forward the account's events to ``make dev`` on ``port``; returns the signing secret."""
        # Any: the SDK types events and versions as literals; these are plain strings.
        params: Any = {
            "url": f"http://127.0.0.1:{port}/webhooks/stripe",
            "enabled_events": sorted(HANDLED_EVENT_TYPES),
            "api_version": STRIPE_API_VERSION,
        }
        endpoint = self.client.v1.webhook_endpoints.create(params)
        assert endpoint.secret
        return endpoint.secret

    def price_ids(self, lookup_key: str) -> list[str]:
        return [p.id for p in self.client.v1.prices.list({"lookup_keys": [lookup_key]}).data]

    def customers(self, email: str) -> list[Any]:
        return list(self.client.v1.customers.list({"email": email, "limit": 100}).data)


@dataclass
class ExternalRun:
    account: DeveloperAccount
    stack: LocalStack
    existing_pro_price: str
    stand_in_port: int  # where make dev would have started its own stand-in


@pytest.fixture(scope="module")
def external() -> Iterator[ExternalRun]:
    standin = StripeStandIn(api_key=f"sk_test_{secrets.token_hex(12)}").start()
    client = stripe.StripeClient(
        standin.api_key, stripe_version=STRIPE_API_VERSION, base_addresses={"api": standin.url}
    )
    account = DeveloperAccount(standin, client)
    # What the account already holds from before: one catalog price, and a
    # subscriber whose events were delivered before `stripe listen` ran.
    pro = client.v1.products.create({"name": "Pro"})
    existing = client.v1.prices.create(
        {
            "product": pro.id,
            "currency": "usd",
            "unit_amount": 2900,
            "recurring": {"interval": "month"},
            "lookup_key": "pro_monthly",
        }
    )
    earlier = client.v1.customers.create(
        {"email": "earlier@example.com", "metadata": {"user_id": "earlier-user"}}
    )
    card = client.v1.payment_methods.attach("pm_card_visa", {"customer": earlier.id})
    client.v1.customers.update(
        earlier.id, {"invoice_settings": {"default_payment_method": card.id}}
    )
    client.v1.subscriptions.create({"customer": earlier.id, "items": [{"price": existing.id}]})

    port, stand_in_port = free_port(), free_port()
    secret = account.stripe_listen(port)
    stack = start_local_stack(account.environment(secret), port=port, stripe_port=stand_in_port)
    yield ExternalRun(account, stack, existing.id, stand_in_port)
    stop_local_stack(stack)
    standin.stop()


def test_make_dev_talks_to_the_account_and_starts_no_stand_in(external: ExternalRun) -> None:
    assert external.stack.info["stripe_url"] == external.account.standin.url
    assert external.stack.info["webhook_secret"].startswith("whsec_")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", external.stand_in_port))  # no stand-in took its port
    log = requests.get(f"{external.account.standin.url}/_standin/requests", timeout=5).json()
    paths = {entry["path"] for entry in log["data"]}
    assert "/v1/billing_portal/configurations" in paths, "the portal configuration is created there"


def test_the_catalog_is_completed_not_duplicated(external: ExternalRun) -> None:
    assert external.account.price_ids("pro_monthly") == [external.existing_pro_price]
    for lookup_key in CATALOG:
        assert len(external.account.price_ids(lookup_key)) == 1, lookup_key


def test_what_the_account_held_before_is_backfilled(external: ExternalRun) -> None:
    token = external.stack.token("earlier-user")

    billing = external.stack.get("/billing", token).json()

    assert billing["status"] == "active"
    assert billing["plan"]["lookup_key"] == "pro_monthly"
    assert billing["payment_method"]["last4"] == "4242"


def test_the_demo_user_is_created_in_the_account(external: ExternalRun) -> None:
    [customer] = external.account.customers(DEMO_EMAIL)
    token = external.stack.token(external.stack.info["demo_user"])

    billing = external.stack.get("/billing", token).json()

    assert customer.metadata["user_id"] == "demo-user"
    assert billing["plan"]["lookup_key"] == "pro_monthly"


def test_forwarded_events_reach_the_billing_page(external: ExternalRun) -> None:
    account, stack = external.account, external.stack
    [customer] = account.customers("earlier@example.com")
    [subscription] = account.client.v1.subscriptions.list({"customer": customer.id}).data
    token = stack.token("earlier-user")

    account.client.v1.subscriptions.update(subscription.id, {"cancel_at_period_end": True})

    billing = eventually(stack, token, lambda b: b["cancels_at"] is not None)
    assert billing["cancels_at"], (
        "the cancellation forwarded by `stripe listen` reached GET /billing"
    )


def test_portal_sessions_open_on_the_account(external: ExternalRun) -> None:
    token = external.stack.token(external.stack.info["demo_user"])

    response = external.stack.post("/portal-sessions", token, {})

    assert response.status_code == 200, response.text
    assert response.json()["url"].startswith(f"{external.account.standin.url}/p/session/")


def test_a_rerun_adds_nothing_and_deactivates_its_configuration_at_exit(
    external: ExternalRun,
) -> None:
    account = external.account
    before = {c.id for c in account.client.v1.billing_portal.configurations.list().data}
    port = free_port()
    rerun = start_local_stack(account.environment(account.stripe_listen(port)), port=port)
    output = stop_local_stack(rerun)

    configurations = account.client.v1.billing_portal.configurations.list().data
    created = [c for c in configurations if c.id not in before]
    assert len(created) == 1, output[-2000:]
    assert created[0].active is False, (
        f"Ctrl-C deactivates the configuration it created; make dev printed:\n{output[-3000:]}"
    )
    assert len(account.customers(DEMO_EMAIL)) == 1
    for lookup_key in CATALOG:
        assert len(account.price_ids(lookup_key)) == 1, lookup_key


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"STRIPE_API_KEY": "sk_live_notForDevelopment"}, "must be a test-mode key"),
        (
            {"STRIPE_API_KEY": "sk_test_noListenSecret"},
            "STRIPE_WEBHOOK_SECRET=$(stripe listen --print-secret)",
        ),
    ],
)
def test_an_unusable_account_is_refused_before_anything_starts(
    environment: dict[str, str], message: str
) -> None:
    port = free_port()
    run = subprocess.run(  # noqa: S603 - our own command line
        dev_command(port, free_port()),
        cwd=ROOT,
        env={**dev_environment(), **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 1
    assert message in run.stderr
    assert "notForDevelopment" not in run.stderr + run.stdout, "the key is never echoed"
