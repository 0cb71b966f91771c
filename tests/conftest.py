"""Shared fixtures: moto for AWS, the local Stripe stand-in over HTTP, a configured environment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
import requests
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

from billing.aws.secrets import secrets_provider
from billing.aws.session import aws_session
from billing.aws.settings import (
    get_backfill_settings,
    get_fanout_settings,
    get_provisioning_settings,
    get_settings,
    get_webhook_settings,
)
from billing.projection.catalog_fanout import fanout_queue
from billing.read.settings import get_snapshot_settings
from billing.store.table import store_for_table
from billing.stripe_api.client import reset_stripe_client
from sandbox.cloudformation import ResponseReceiver
from sandbox.fast_moto import fast_dynamodb
from sandbox.stripe_standin.server import StripeStandIn
from tests.support.aws import create_billing_table
from tests.support.stripe_seed import Account, seed_account


@pytest.fixture(scope="session", autouse=True)
def one_botocore_loader() -> Iterator[None]:
    """Share one loader of botocore's model files between the sessions the tests create.

    Every test forgets the cached boto3 session (a cold container), and each new
    session would otherwise parse the same service models from JSON again: most of
    the time of a typical integration test. The loader reads static files only.
    """
    shared = botocore.loaders.create_loader()
    patcher = pytest.MonkeyPatch()
    patcher.setattr(botocore.session, "create_loader", lambda *_: shared)
    yield
    patcher.undo()


TIERS = {
    "unit": "unit",
    "bench": "unit",
    "integration": "integration",
    "contract": "integration",
    "security": "integration",
    "e2e": "e2e",
    "robustness": "robustness",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its tier: its own marker if it has one, else its folder's.

    Tests marked ``long`` go first: pytest-xdist hands each worker a contiguous part
    of this list, so the longest test starts at once while the other worker and the
    work stealing share out the rest, instead of starting last and setting the end.
    """
    tiers = set(TIERS.values())
    for item in items:
        if not tiers & {marker.name for marker in item.iter_markers()}:
            folder = item.path.relative_to(item.config.rootpath / "tests").parts[0]
            item.add_marker(TIERS[folder])
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


TABLE = "billing-test"
SECRET_NAME = "billing-portal/stripe-secret-key"
WEBHOOK_SECRET_NAME = "billing-portal/stripe-webhook-secret"
WEBHOOK_SECRET = "whsec_primaryTestSecret0123456789"


@pytest.fixture(scope="session")
def standin() -> Iterator[StripeStandIn]:
    server = StripeStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def stripe_account(standin: StripeStandIn) -> Iterator[StripeStandIn]:
    """The stand-in, emptied before the test."""
    requests.post(f"{standin.url}/_standin/reset", timeout=5).raise_for_status()
    yield standin
    requests.delete(f"{standin.url}/_standin/faults", timeout=5)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    # One request at a time, as `make dev` serves moto (sandbox.dev._OneAtATime): moto
    # copies a whole table at the start of a transaction, and a webhook thread writing
    # meanwhile breaks the copy ("dictionary changed size during iteration").
    process = BotocoreStubber.process_request
    lock = threading.Lock()

    def one_at_a_time(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return process(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", one_at_a_time)
    with mock_aws(), fast_dynamodb():
        yield


@pytest.fixture
def deployment(
    aws: None, stripe_account: StripeStandIn, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A deployed stack in miniature: table, secret, environment, stand-in."""
    create_billing_table(TABLE)
    boto3.client("secretsmanager").create_secret(
        Name=SECRET_NAME, SecretString=stripe_account.api_key
    )
    env = {
        "TABLE_NAME": TABLE,
        "STRIPE_SECRET_NAME": SECRET_NAME,
        "STRIPE_API_BASE": stripe_account.url,
        "STRIPE_READ_TIMEOUT_SECONDS": "2",
        "ALLOWED_ORIGINS": "https://app.example.com,http://localhost:5173",
        "DEFAULT_RETURN_URL": "https://app.example.com/account",
        "POWERTOOLS_SERVICE_NAME": "billing-portal-test",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PORTAL_CONFIGURATION_ID", raising=False)
    forget_cached_clients()
    yield env
    forget_cached_clients()


@pytest.fixture
def webhook_deployment(
    deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The deployment plus the webhook function's signing secret."""
    boto3.client("secretsmanager").create_secret(
        Name=WEBHOOK_SECRET_NAME, SecretString=WEBHOOK_SECRET
    )
    monkeypatch.setenv("WEBHOOK_SECRET_NAME", WEBHOOK_SECRET_NAME)
    forget_cached_clients()
    return {**deployment, "WEBHOOK_SECRET_NAME": WEBHOOK_SECRET_NAME}


@pytest.fixture
def account(deployment: dict[str, Any], stripe_account: StripeStandIn) -> Account:
    """A seeded Stripe account (catalog + portal configuration) behind the deployment."""
    account = seed_account(stripe_account)
    account.clear_requests_log()
    return account


@pytest.fixture
def configured(account: Account, monkeypatch: pytest.MonkeyPatch) -> Account:
    """The deployment pointed at the seeded portal configuration (as the custom resource will)."""
    monkeypatch.setenv("PORTAL_CONFIGURATION_ID", account.configuration)
    forget_cached_clients()
    return account


@pytest.fixture
def receiver() -> Iterator[ResponseReceiver]:
    """CloudFormation's response URL for custom-resource requests, on loopback."""
    server = ResponseReceiver().start()
    yield server
    server.stop()


def forget_cached_clients() -> None:
    """Drop what a warm container caches, so the next call reads the environment again."""
    get_settings.cache_clear()
    get_webhook_settings.cache_clear()
    get_snapshot_settings.cache_clear()
    get_provisioning_settings.cache_clear()
    get_backfill_settings.cache_clear()
    get_fanout_settings.cache_clear()
    store_for_table.cache_clear()
    fanout_queue.cache_clear()
    aws_session.cache_clear()
    reset_stripe_client()
    secrets_provider.cache_clear()
