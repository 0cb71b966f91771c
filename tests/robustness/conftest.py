"""The product as ``make dev`` runs it, in this process, for the robustness tests.

``sandbox.dev.local_deployment`` starts moto's server, the Stripe stand-in, the
custom resources and the local API gateway on free loopback ports; every test
here talks to it over HTTP. It runs in-process (not as ``python -m
sandbox.dev``) so that a test can reach the functions' own boto3 client to
inject DynamoDB faults, and read the table to prove what was, or was not,
written.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
import stripe

from billing.store.table import store_for_table
from billing.stripe_api.client import STRIPE_API_VERSION
from sandbox.dev import LocalDeployment, local_deployment
from sandbox.stripe_standin.server import StripeStandIn
from tests.conftest import forget_cached_clients
from tests.support.local_stack import dev_token, free_port

# Initialised from the environment at import, like a cold start: imported anew
# for each deployment (``local_deployment`` imports them for the custom resources).
_COLD_START_MODULES = (
    "functions.catalog.app",
    "functions.portal_config.app",
    "functions.webhook_endpoint.app",
)


@dataclass
class Product:
    """The running local deployment, and what a test needs to drive and inspect it."""

    deployment: LocalDeployment
    standin: StripeStandIn
    stripe: stripe.StripeClient
    table: str

    @property
    def url(self) -> str:
        return self.deployment.api_url

    def token(self, sub: str, email: str | None = None) -> str:
        return dev_token(self.url, sub, email)

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        timeout = kwargs.pop("timeout", 40)
        return requests.request(
            method, f"{self.url}{path}", headers=headers, timeout=timeout, **kwargs
        )

    def items(self) -> list[dict[str, Any]]:
        """Every item of the billing table, sorted by key (read with a client of our own)."""
        client = boto3.client("dynamodb")
        found: list[dict[str, Any]] = []
        for page in client.get_paginator("scan").paginate(TableName=self.table):
            found.extend(page["Items"])
        return sorted(found, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))

    def functions_dynamodb(self) -> Any:
        """The DynamoDB client the functions use (one per table and warm container)."""
        return store_for_table(self.table).client


@pytest.fixture(scope="module")
def product() -> Iterator[Product]:
    """A fresh local deployment per test module; the environment is restored afterwards."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("AWS_", "STRIPE_")):
            del os.environ[name]
    _forget_warm_containers()
    try:
        with local_deployment(port=free_port(), stripe_port=free_port()) as deployment:
            standin = deployment.standin
            assert standin is not None, "the local deployment runs the Stripe stand-in"
            client = stripe.StripeClient(
                standin.api_key,
                stripe_version=STRIPE_API_VERSION,
                base_addresses={"api": standin.url},
            )
            try:
                yield Product(deployment, standin, client, os.environ["TABLE_NAME"])
            finally:
                # moto keeps its state per process, not per server: the next
                # deployment creates the same table again.
                requests.post(f"{deployment.moto_url}/moto-api/reset", timeout=10)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _forget_warm_containers()


def _forget_warm_containers() -> None:
    forget_cached_clients()
    for name in _COLD_START_MODULES:
        sys.modules.pop(name, None)
