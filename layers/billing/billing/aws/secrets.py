"""Secrets Manager reads, bounded like every other call the functions make.

Powertools' default provider builds its client with botocore's defaults: legacy retries
(5 attempts) and 60 s connect and read timeouts, so an unreachable Secrets Manager would
hold a request past the functions' 10 s timeout and end in API Gateway's bare 500. This
provider makes 2 attempts, each at most 1 s to connect and 2 s to read, and a failure
becomes ``SecretsUnavailable``: 503 with Retry-After from the API, and a 503 that Stripe
retries from the webhook. Values stay cached per warm container (Powertools' cache).
"""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.config import Config

from billing.core.errors import SecretsUnavailable

SECRETS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 2},
    connect_timeout=1,
    read_timeout=2,
)

logger = Logger(child=True)


@cache
def secrets_provider() -> SecretsProvider:
    """The container's provider (and its client), made on first use."""
    return SecretsProvider(boto_config=SECRETS_CLIENT_CONFIG)


def secret_string(name: str, *, max_age: int, force_fetch: bool = False) -> str:
    """The secret's string value ("" if it holds binary), cached for ``max_age`` seconds."""
    try:
        value = secrets_provider().get(name, max_age=max_age, force_fetch=force_fetch)
    except GetParameterError as error:
        # The message is botocore's (error code, secret name), never the value.
        logger.warning("Secrets Manager read failed", extra={"reason": str(error)})
        raise SecretsUnavailable("Credentials are unavailable; retry shortly.") from error
    return value if isinstance(value, str) else ""
