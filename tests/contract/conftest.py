"""Where the contract scenarios run: the stand-in (in ``make test``), or a real Stripe
test-mode account (``make test-stripe`` sets ``CONTRACT_STRIPE_API_KEY``).

Against a real account the scenarios create only what they tag: products, prices and
coupons carry ``metadata.contract_run``, webhook endpoints and portal configurations
are made by the stack's own custom resources (their metadata and description name the
run), and customers are created by the product for users whose id starts with the
run id (their ``metadata.user_id``). Everything is deleted or archived at the end of
each scenario, also when it fails. DynamoDB and Secrets Manager are moto either way.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import stripe

from billing.stripe_api.client import STRIPE_API_VERSION
from tests.conftest import (
    SECRET_NAME,
    TABLE,
    WEBHOOK_SECRET,
    WEBHOOK_SECRET_NAME,
    forget_cached_clients,
)
from tests.support.aws import create_billing_table

CONTRACT_KEY = "CONTRACT_STRIPE_API_KEY"


@dataclass
class Contract:
    """One scenario's Stripe account, catalog and clean-up list."""

    target: str  # "stand-in" or "stripe"
    client: stripe.StripeClient
    run_id: str
    prices: dict[str, str] = field(default_factory=dict)  # lookup key -> price id
    product: str = ""
    _cleanup: list[Callable[[], Any]] = field(default_factory=list)

    def user(self, name: str) -> str:
        """A user id that tags the customer the product creates for it."""
        return f"{self.run_id}-{name}"

    def lookup_key(self, plan: str) -> str:
        return f"{self.run_id}_{plan}"

    def on_cleanup(self, step: Callable[[], Any]) -> None:
        self._cleanup.append(step)

    def clean_up(self) -> list[str]:
        problems = []
        for step in reversed(self._cleanup):
            try:
                step()
            except stripe.StripeError as error:  # keep cleaning; report at the end
                problems.append(str(error.user_message or error))
        return problems


@pytest.fixture
def contract(
    aws: None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Contract]:
    key = os.environ.get(CONTRACT_KEY, "")
    if key:
        target, base = "stripe", None
    else:
        standin = request.getfixturevalue("stripe_account")
        key, target, base = standin.api_key, "stand-in", standin.url
    create_billing_table(TABLE)
    secrets_manager = boto3.client("secretsmanager")
    secrets_manager.create_secret(Name=SECRET_NAME, SecretString=key)
    secrets_manager.create_secret(Name=WEBHOOK_SECRET_NAME, SecretString=WEBHOOK_SECRET)
    env = {
        "TABLE_NAME": TABLE,
        "STRIPE_SECRET_NAME": SECRET_NAME,
        "WEBHOOK_SECRET_NAME": WEBHOOK_SECRET_NAME,
        "ALLOWED_ORIGINS": "https://app.example.com",
        "DEFAULT_RETURN_URL": "https://app.example.com/account",
        "POWERTOOLS_SERVICE_NAME": "billing-portal-contract",
        # A real Stripe answers in well under these; the stand-in at once.
        "STRIPE_READ_TIMEOUT_SECONDS": "20",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if base:
        monkeypatch.setenv("STRIPE_API_BASE", base)
    else:
        monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    monkeypatch.delenv("PORTAL_CONFIGURATION_ID", raising=False)
    forget_cached_clients()
    client = stripe.StripeClient(
        key,
        stripe_version=STRIPE_API_VERSION,
        max_network_retries=2,
        base_addresses={"api": base} if base else {},
    )
    run = Contract(target, client, f"ct{secrets.token_hex(4)}")
    try:
        _catalog(run)
        yield run
    finally:
        problems = run.clean_up()
        forget_cached_clients()
    assert not problems, f"clean-up left objects in Stripe: {problems}"


def _archive_price(api: Any, price_id: str) -> Callable[[], Any]:
    return lambda: api.prices.update(price_id, params={"active": False})


def _catalog(run: Contract) -> None:
    """A product with two monthly prices under lookup keys of this run."""
    api = run.client.v1
    tag = {"contract_run": run.run_id}
    product = api.products.create(params={"name": f"Contract {run.run_id}", "metadata": tag})
    run.product = product.id
    run.on_cleanup(lambda: api.products.update(product.id, params={"active": False}))
    for plan, amount in (("basic", 900), ("pro", 2900)):
        price = api.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "unit_amount": amount,
                "recurring": {"interval": "month"},
                "lookup_key": run.lookup_key(plan),
                "metadata": tag,
            }
        )
        run.prices[plan] = price.id
        run.on_cleanup(_archive_price(api, price.id))
