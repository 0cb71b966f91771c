"""HTTP API payload format 2.0: the event a request becomes, and the response a result becomes.

Shaped after what API Gateway sends (``events/*/*.json`` are real samples):
header names lower-cased and repeated headers comma-joined, cookies moved
out of the headers into ``cookies``, ``queryStringParameters`` comma-joined,
``pathParameters`` only when the route has ``{params}``, the body plain for
text content types and base64 otherwise. Keys API Gateway leaves out when
empty (``cookies``, ``queryStringParameters``, ``pathParameters``, ``body``)
are left out here too.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.gateway.routes import Route
from sandbox.lambda_runtime import ACCOUNT_ID

# Content types API Gateway hands to the function as text; anything else is base64.
_TEXT_TYPES = (
    "application/json",
    "application/javascript",
    "application/xml",
    "application/graphql",
)


class MalformedResult(ValueError):
    """The function's result is not a payload-2.0 response (API Gateway answers 500)."""


def new_request_id() -> str:
    """An id shaped like API Gateway's (``JKJaXmPLvHcESHA=``)."""
    return base64.b64encode(secrets.token_bytes(10)).decode()


def build_event(
    request: Request,
    route: Route,
    *,
    path_parameters: Mapping[str, str],
    claims: Mapping[str, Any] | None,
    scopes: list[str] | None = None,
    api_id: str = "local",
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload-2.0 event API Gateway would send to ``route``'s function for ``request``.

    ``claims`` are the verified token's claims (None on a route without an
    authorizer); API Gateway passes them as strings.
    """
    now = time.time() if now is None else now
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key == "cookie":
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    headers.setdefault("x-forwarded-for", request.remote_addr or "127.0.0.1")
    headers.setdefault("x-forwarded-proto", request.scheme)
    if request.host and ":" in request.host:
        headers.setdefault("x-forwarded-port", request.host.rsplit(":", 1)[1])
    headers.setdefault("x-amzn-trace-id", _trace_id(now))
    host = request.host or "localhost"
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": request.method,
            "path": request.path,
            "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "sourceIp": request.remote_addr or "127.0.0.1",
            "userAgent": request.headers.get("User-Agent", ""),
        },
        "requestId": request_id or new_request_id(),
        "routeKey": route.key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        context["authorizer"] = {
            "jwt": {"claims": {k: _claim_text(v) for k, v in claims.items()}, "scopes": scopes}
        }
    raw_query = request.environ.get("QUERY_STRING", "")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": request.environ.get("RAW_URI", request.path).split("?", 1)[0],
        "rawQueryString": raw_query,
    }
    cookies = [
        part.strip() for part in request.headers.get("Cookie", "").split(";") if part.strip()
    ]
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if request.args:
        event["queryStringParameters"] = {
            name: ",".join(request.args.getlist(name)) for name in request.args
        }
    event["requestContext"] = context
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event.update(_body(request))
    return event


def _body(request: Request) -> dict[str, Any]:
    data = request.get_data(cache=True)
    if not data:
        return {"isBase64Encoded": False}
    if is_text(request.mimetype):
        try:
            return {"body": data.decode("utf-8"), "isBase64Encoded": False}
        except UnicodeDecodeError:
            pass
    return {"body": base64.b64encode(data).decode(), "isBase64Encoded": True}


def is_text(mimetype: str) -> bool:
    """Whether API Gateway passes a body of this content type as text (not base64)."""
    mimetype = mimetype.lower()
    return (
        mimetype.startswith("text/")
        or mimetype in _TEXT_TYPES
        or mimetype.endswith(("+json", "+xml"))
    )


def _claim_text(value: Any) -> str:
    # API Gateway hands every claim over as a string; arrays as "[a b]".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _trace_id(now: float) -> str:
    return f"Root=1-{int(now):08x}-{secrets.token_hex(12)}"


def build_response(result: Any) -> Response:
    """The HTTP response API Gateway makes of a function's payload-2.0 result.

    A dict with ``statusCode`` is taken as the response; anything else (a dict
    without it, a string, a list) is a 200 ``application/json`` whose body is
    the result (a string as is, anything else as JSON).
    """
    if not (isinstance(result, Mapping) and "statusCode" in result):
        body = result if isinstance(result, str) else json.dumps(result)
        return Response(body, status=200, content_type="application/json")
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResult(f"statusCode must be an HTTP status, not {status!r}")
    text = result.get("body")
    if text is not None and not isinstance(text, str):
        raise MalformedResult("body must be a string")
    data: bytes = b""
    if text:
        if result.get("isBase64Encoded"):
            try:
                data = base64.b64decode(text, validate=True)
            except ValueError:
                raise MalformedResult("isBase64Encoded but the body is not base64") from None
        else:
            data = text.encode("utf-8")
    response = Response(data, status=status)
    del response.headers["Content-Type"]  # only what the function set
    for name, value in (result.get("headers") or {}).items():
        response.headers[str(name)] = str(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            response.headers.add(str(name), str(value))
    for cookie in result.get("cookies") or []:
        response.headers.add("Set-Cookie", str(cookie))
    return response
