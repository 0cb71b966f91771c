"""POST /portal-sessions and POST /setup-intents for the signed-in user."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from billing.errors import BillingError, MalformedBody
from billing.identity import user_from_claims
from billing.models import (
    ErrorResponse,
    PortalSessionRequest,
    PortalSessionResponse,
    SetupIntentResponse,
)
from billing.portal import PortalService, stripe_subscription_lookup
from billing.settings import get_settings
from billing.store import store_for_table
from billing.stripe_client import get_stripe_client

logger = Logger()
app = APIGatewayHttpResolver(enable_validation=True)


def _error_doc(description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": ErrorResponse}}}


_COMMON_ERRORS: dict[int, OpenAPIResponse] = {
    401: _error_doc("No signed-in user"),
    422: _error_doc("Invalid request"),
    502: _error_doc("Stripe failed; retry after Retry-After seconds"),
    503: _error_doc("Stripe or storage unavailable; retry after Retry-After seconds"),
}


def service() -> PortalService:
    """The service with this container's settings, store and Stripe client."""
    settings = get_settings()
    client = get_stripe_client(settings)
    return PortalService(
        settings=settings,
        store=store_for_table(settings.table_name),
        stripe=client,
        current_subscription=stripe_subscription_lookup(client),
    )


@app.post(
    "/portal-sessions",
    summary="Open the Stripe billing portal for the signed-in user",
    responses={
        200: {"description": "Portal session created"},
        400: _error_doc("Body is not JSON"),
        409: _error_doc("The flow does not fit the user's subscription"),
        **_COMMON_ERRORS,
    },
)
def post_portal_session(
    request: Annotated[PortalSessionRequest | None, Body()] = None,
) -> PortalSessionResponse:
    user = user_from_claims(app.current_event.request_context.authorizer.jwt_claim)
    url = service().create_portal_session(user, request or PortalSessionRequest())
    return PortalSessionResponse(url=url)


@app.post(
    "/setup-intents",
    summary="Start saving a new card with Stripe Elements",
    responses={200: {"description": "SetupIntent created"}, **_COMMON_ERRORS},
)
def post_setup_intent() -> SetupIntentResponse:
    user = user_from_claims(app.current_event.request_context.authorizer.jwt_claim)
    return SetupIntentResponse(client_secret=service().create_setup_intent(user))


def error_response(
    status: int, code: str, message: str, retry_after: int | None = None
) -> Response[Any]:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(
        status_code=status,
        content_type="application/json",
        body=ErrorResponse.model_validate(
            {"error": {"code": code, "message": message}}
        ).model_dump_json(),
        headers=headers,
    )


@app.exception_handler(BillingError)
def handle_billing_error(error: BillingError) -> Response[Any]:
    return error_response(
        error.status, error.code, error.message, getattr(error, "retry_after_seconds", None)
    )


@app.exception_handler(RequestValidationError)
def handle_invalid_request(error: RequestValidationError) -> Response[Any]:
    problems = error.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        malformed = MalformedBody("The request body must be a JSON object.")
        return error_response(malformed.status, malformed.code, malformed.message)
    return error_response(422, "invalid_request", describe_validation_errors(problems))


def describe_validation_errors(problems: Any) -> str:
    """One readable line per problem, e.g. ``flow: Input should be ...``."""
    lines = []
    for problem in problems:
        location = ".".join(
            str(part) for part in problem.get("loc", ()) if part not in ("body", "request")
        )
        message = str(problem.get("msg", "invalid value")).removeprefix("Value error, ")
        lines.append(f"{location}: {message}" if location else message)
    return "; ".join(lines) or "The request is invalid."


@app.exception_handler([ClientError, BotoCoreError])
def handle_storage_error(error: Exception) -> Response[Any]:
    logger.exception("DynamoDB request failed")
    return error_response(503, "storage_unavailable", "Storage is unavailable; retry shortly.", 5)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
