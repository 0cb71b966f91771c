"""HTTP plumbing shared by the API functions: error bodies and exception handlers.

No pydantic here: the snapshot function uses it and loads none (see
``functions/billing/app.py``). The bodies are dataclasses, which the resolvers' OpenAPI
generation reads like models.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from botocore.exceptions import BotoCoreError, ClientError

from billing.core.errors import BillingError, MalformedBody

logger = Logger(child=True)


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """What went wrong: a stable code for programs and a message for people."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """The body of every error answer of this API."""

    error: ErrorDetail


@dataclass(frozen=True, slots=True)
class GatewayMessage:
    """API Gateway's own error body, e.g. its JWT authorizer's ``{"message": "Unauthorized"}``."""

    message: str


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
        body=json.dumps(
            {"error": {"code": code, "message": message}}, separators=(",", ":"), ensure_ascii=False
        ),
        headers=headers,
    )


# Browsers revalidate with If-None-Match every time; shared caches never store it.
CACHE_CONTROL = "private, no-cache"


# The same for everyone: browsers and CDNs may keep it a minute (a price change shows
# within a minute), then revalidate with If-None-Match.
PUBLIC_CACHE_CONTROL = "public, max-age=60"


def cacheable(body: str, if_none_match: str | None, *, public: bool = False) -> Response[Any]:
    """200 with an ETag, or 304 when the client already has this body.

    Private (one user's data: revalidated every time, never in a shared cache) unless
    ``public``.
    """
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    headers = (
        {"ETag": etag, "Cache-Control": PUBLIC_CACHE_CONTROL}
        if public
        else {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
    )
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(status_code=200, content_type="application/json", body=body, headers=headers)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison against an If-None-Match list (or ``*``)."""
    if not if_none_match:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates


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
