"""HTTP plumbing shared by the API functions: error bodies and exception handlers."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from botocore.exceptions import BotoCoreError, ClientError

from billing.errors import BillingError, MalformedBody
from billing.models import ErrorResponse, GatewayMessage

logger = Logger(child=True)


def error_doc(description: str) -> OpenAPIResponse:
    """An OpenAPI response entry with the error body."""
    return {"description": description, "content": {"application/json": {"model": ErrorResponse}}}


def unauthorized_doc() -> OpenAPIResponse:
    """The 401 of a route behind the JWT authorizer.

    API Gateway answers a missing or invalid token itself, before the function
    runs, with its own body; the function answers a token without a user with
    the error body.
    """
    return {
        "description": "No valid token (API Gateway's authorizer), or no user in it",
        "content": {"application/json": {"model": GatewayMessage | ErrorResponse}},
    }


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


def install_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Domain errors answer with their status and code; invalid requests 400 or 422 with a
    message; DynamoDB failures 503."""

    @app.exception_handler(RequestValidationError)
    def handle_invalid_request(error: RequestValidationError) -> Response[Any]:
        problems = error.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return malformed_body()
        return error_response(422, "invalid_request", describe_validation_errors(problems))

    @app.exception_handler(UnicodeDecodeError)
    def handle_undecodable_body(error: UnicodeDecodeError) -> Response[Any]:
        # A binary body (API Gateway passes it base64-encoded) that is not UTF-8 text.
        return malformed_body()

    @app.exception_handler(BillingError)
    def handle_billing_error(error: BillingError) -> Response[Any]:
        return error_response(
            error.status, error.code, error.message, getattr(error, "retry_after_seconds", None)
        )

    @app.exception_handler([ClientError, BotoCoreError])
    def handle_storage_error(error: Exception) -> Response[Any]:
        code = (
            error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
        )
        logger.exception("DynamoDB request failed", extra={"aws_error_code": code})
        return error_response(
            503, "storage_unavailable", "Storage is unavailable; retry shortly.", 5
        )


def malformed_body() -> Response[Any]:
    malformed = MalformedBody("The request body must be a JSON object.")
    return error_response(malformed.status, malformed.code, malformed.message)


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
