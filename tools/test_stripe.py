"""``make test-stripe``: the contract scenarios against your own Stripe test-mode account.

Runs ``tests/contract`` (the same scenarios ``make test`` runs against the stand-in)
with the key from ``STRIPE_API_KEY``. Only test-mode keys are accepted: the scenarios
create customers, subscriptions, a portal configuration and a webhook endpoint, and a
live key would bill real cards. Exit status: pytest's, or 2 when no usable key is given
(a missing key is not a skipped run counted as a pass).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

NEEDS_KEY = (
    "make test-stripe needs a Stripe test-mode secret key:\n"
    "  STRIPE_API_KEY=sk_test_... make test-stripe\n"
    "It runs the Stripe-facing scenarios (customers, every portal flow, a SetupIntent, the "
    "portal configuration and webhook endpoint resources, a subscription's webhooks, the "
    "backfill) against that account, tags what it creates with a run id and removes it "
    "again."
)
LIVE_KEY = (
    "make test-stripe refuses live-mode keys: the scenarios create subscriptions and "
    "would charge real cards. Use a test-mode key (sk_test_... or rk_test_...)."
)
TEST_MODE_PREFIXES = ("sk_test_", "rk_test_")


def contract_environment(environ: Mapping[str, str]) -> dict[str, str] | str:
    """The environment for the contract run, or why there is none."""
    key = environ.get("STRIPE_API_KEY", "").strip()
    if not key:
        return NEEDS_KEY
    if not key.startswith(TEST_MODE_PREFIXES):
        return LIVE_KEY
    return {**environ, "CONTRACT_STRIPE_API_KEY": key}


def main(argv: list[str] | None = None) -> int:
    environment = contract_environment(os.environ)
    if isinstance(environment, str):
        print(environment, file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "pytest", "tests/contract", "-v", *(argv or [])]
    return subprocess.call(command, env=environment)  # noqa: S603 - our own pytest


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
