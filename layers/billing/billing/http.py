"""HTTP plumbing shared by the API functions: error bodies and exception handlers."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from botocore.exceptions import BotoCoreError, ClientError

from billing.errors import BillingError
from billing.models import ErrorResponse

logger = Logger(child=True)


def error_doc(description: str) -> OpenAPIResponse:
    """An OpenAPI response entry with the error body."""
    return {"description": description, "content": {"application/json": {"model": ErrorResponse}}}


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
    """Domain errors answer with their status and code; DynamoDB failures answer 503."""

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
