"""Custom::StripeWebhookEndpoint: the Stripe webhook endpoint and its signing secret.

Registers the endpoint at the API's webhook URL (``billing.provisioning.resources``),
keeps the signing secret in the Secrets Manager secret the webhook function
reads, and answers CloudFormation exactly once (``billing.provisioning.answer``),
even when initialisation below fails.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.aws.library_logs import cap_library_loggers
from billing.provisioning.answer import ResourceHandler, Status, answer_request

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = Logger()
cap_library_loggers()  # before any AWS or Stripe client logs a secret

resource: ResourceHandler | None = None
init_error: Exception | None = None
margin_seconds = 5.0
try:
    import boto3

    from billing.aws.settings import get_provisioning_settings
    from billing.provisioning.resources import SigningSecrets, WebhookEndpointResource
    from billing.stripe_api.client import get_stripe_client

    @cache
    def secrets_manager() -> SecretsManagerClient:
        return boto3.client("secretsmanager")

    settings = get_provisioning_settings()
    margin_seconds = settings.answer_margin_seconds
    resource = WebhookEndpointResource(
        lambda: get_stripe_client(settings), SigningSecrets(secrets_manager)
    )
except Exception as error:  # answered FAILED on the first request, not left hanging
    logger.exception("Initialisation failed")
    init_error = error


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Status:
    return answer_request(
        event, context, resource, init_error=init_error, margin_seconds=margin_seconds
    )
