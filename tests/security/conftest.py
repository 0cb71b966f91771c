"""Known secrets for the security checks, and a Stripe stand-in that accepts only that key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.stripe_standin.server import StripeStandIn

# Distinctive values: if one shows up in a log line or a response, it leaked.
STRIPE_SECRET_KEY = "sk_test_51SecProbeKEY7Qx2Vw9Lm4Rt8Zp3Hd6Ns"
WRONG_STRIPE_KEY = "sk_test_51SecProbeWRONG5Jk8Fq1Yb7Gc2Xe9Mu"
WEBHOOK_SIGNING_SECRET = "whsec_SecProbeSigning9Tf3Kw7Pb2Lx6Qz"
CARD_NUMBER = "4242424242424242"


@pytest.fixture(scope="module")
def standin() -> Iterator[StripeStandIn]:
    """The stand-in, accepting only :data:`STRIPE_SECRET_KEY` (``deployment`` stores it)."""
    server = StripeStandIn(api_key=STRIPE_SECRET_KEY).start()
    yield server
    server.stop()
