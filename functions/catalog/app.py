"""Custom::StripeCatalog: the products, prices and entitlement features of the
deployment, made to match ``template.yaml`` in Stripe on every deploy.

The properties state the whole catalog (``billing.provisioning.catalog``); this function
applies it (``billing.provisioning.catalog_resource``) and answers CloudFormation exactly
once (``billing.provisioning.answer``), even when initialisation below fails.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.aws.library_logs import cap_library_loggers
from billing.provisioning.answer import ResourceHandler, Status, answer_request

logger = Logger()
cap_library_loggers()  # before any AWS or Stripe client logs a secret

resource: ResourceHandler | None = None
init_error: Exception | None = None
margin_seconds = 5.0
try:
    from billing.aws.settings import get_provisioning_settings
    from billing.provisioning.catalog_resource import StripeCatalogResource
    from billing.stripe_api.client import get_stripe_client

    settings = get_provisioning_settings()
    margin_seconds = settings.answer_margin_seconds
    resource = StripeCatalogResource(lambda: get_stripe_client(settings))
except Exception as error:  # answered FAILED on the first request, not left hanging
    logger.exception("Initialisation failed")
    init_error = error


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Status:
    return answer_request(
        event, context, resource, init_error=init_error, margin_seconds=margin_seconds
    )
