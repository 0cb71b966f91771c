"""The gateway as a WSGI application: API Gateway's HTTP API behaviour, in-process.

Per request, in API Gateway's order: CORS preflight (answered here, before
any authorizer), route match (404 ``{"message":"Not Found"}`` otherwise, also
for a known path with another method), the JWT authorizer (401 before the
function runs), the payload-2.0 event, the function in-process with a Lambda
context (one invocation at a time per function, as one warm container; its
Timeout enforced), the result turned into the HTTP response, CORS headers
for an allowed origin.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import send_from_directory
from werkzeug.wrappers import Request, Response

from sandbox.gateway.identity import JwtVerifier, LocalIdentityProvider, TokenRejected
from sandbox.gateway.payload import (
    MalformedResult,
    build_event,
    build_response,
    new_request_id,
)
from sandbox.gateway.routes import (
    HttpApi,
    ParameterValues,
    Route,
    TemplateError,
    load_http_api,
)
from sandbox.lambda_runtime import LambdaContext

logger = logging.getLogger("sandbox.gateway")

# API Gateway gives up on an integration after 30 s (503), whatever the function's Timeout.
INTEGRATION_TIMEOUT_SECONDS = 30.0
MAX_TOKEN_TTL_SECONDS = 24 * 3600

DevInfo = Mapping[str, Any] | Callable[[], Mapping[str, Any]]

_DEV = Map(
    [
        Rule("/", methods=["GET"], endpoint="index"),
        Rule("/demo/<path:filename>", methods=["GET"], endpoint="static"),
        Rule("/.well-known/jwks.json", methods=["GET"], endpoint="jwks"),
        Rule("/_dev/token", methods=["POST"], endpoint="token"),
        Rule("/_dev/info", methods=["GET"], endpoint="info"),
    ],
    merge_slashes=False,
)
_DEV_PREFIXES = ("/_dev/", "/demo/", "/.well-known/")

PLACEHOLDER_PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Billing portal (local)</title>
<h1>Billing portal: local API gateway</h1>
<p>The demo page is not there yet (<code>sandbox/demo/index.html</code>).</p>
<p>Get a token with <code>POST /_dev/token</code> <code>{"sub": "user-0001",
"email": "ada@example.com"}</code>, then call <code>GET /billing</code> with
<code>Authorization: Bearer &lt;token&gt;</code>.</p>
</html>
"""


class FunctionTimeout(Exception):
    """The function ran past its Timeout (API Gateway answers 500)."""


class IntegrationTimeout(Exception):
    """No answer within API Gateway's 30 s integration timeout (503)."""


@dataclass(frozen=True)
class _Invocation:
    route: Route
    path_parameters: dict[str, str]


class LocalGateway:
    """A WSGI application serving ``api`` with the functions in this process.

    ``identity`` issues the development tokens (``POST /_dev/token``) and its
    JWKS is the one the authorizers trust; by default one is made for the
    template's issuer and first audience. ``static_dir`` holds the demo page
    (``index.html`` at ``/``, other files at ``/demo/<file>``). ``dev_info`` is
    served at ``GET /_dev/info`` (a dict, or a function called per request).
    """

    def __init__(
        self,
        api: HttpApi,
        identity: LocalIdentityProvider | None = None,
        *,
        static_dir: str | Path | None = None,
        dev_info: DevInfo | None = None,
        region: str = "us-east-1",
        api_id: str = "local",
    ) -> None:
        self.api = api
        self.identity = identity or _default_identity(api)
        self.static_dir = Path(static_dir) if static_dir is not None else None
        self.dev_info = dev_info
        self.region = region
        self.api_id = api_id
        self.verifiers = {
            name: self._verifier(config.name, config.issuer, config.audiences)
            for name, config in api.authorizers.items()
        }
        # One invocation at a time across *all* functions, not one per function as
        # Lambda would: Powertools' resolver keeps the current event on a class
        # (BaseRouter.current_event), shared by every function of this one process, so
        # two functions running at once could each read the other's request, its user
        # included. On Lambda every process handles one event at a time.
        self._one_invocation = threading.Lock()
        self._routes = Map(merge_slashes=False)
        for index, route in enumerate(api.routes):
            if route.path == "/" or route.path.startswith(_DEV_PREFIXES):
                raise TemplateError(f"{route.key} collides with the gateway's development routes")
            self._routes.add(
                Rule(
                    _werkzeug_path(route.path),
                    methods=None if route.method == "ANY" else [route.method],
                    endpoint=index,
                )
            )

    @classmethod
    def from_template(
        cls,
        path: str | Path,
        parameters: ParameterValues | None = None,
        identity: LocalIdentityProvider | None = None,
        *,
        static_dir: str | Path | None = None,
        dev_info: DevInfo | None = None,
        stack_name: str = "billing-portal-local",
        region: str = "us-east-1",
    ) -> LocalGateway:
        """The gateway for the HTTP API of the template at ``path`` with these parameter values."""
        api = load_http_api(path, parameters, stack_name=stack_name)
        return cls(api, identity, static_dir=static_dir, dev_info=dev_info, region=region)

    def _verifier(self, name: str, issuer: str, audiences: tuple[str, ...]) -> JwtVerifier:
        if self.identity.issuer != issuer:
            raise TemplateError(
                f"authorizer {name} accepts issuer {issuer!r}, but the local identity provider "
                f"issues {self.identity.issuer!r}: pass the same value as the issuer parameter"
            )
        if self.identity.audience not in audiences:
            raise TemplateError(
                f"authorizer {name} accepts audiences {list(audiences)}, but the local identity "
                f"provider issues {self.identity.audience!r}: add it to the audience parameter"
            )
        return self.identity.verifier(issuer, audiences)

    # --- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        started = time.monotonic()
        request_id = new_request_id()
        response = self.handle(request, request_id)
        response.headers["Apigw-Requestid"] = request_id
        self._apply_cors(request, response)
        logger.info(
            "%s %s %s %.0f ms%s",
            request.method,
            request.full_path.rstrip("?"),
            response.status_code,
            (time.monotonic() - started) * 1000,
            _outcome(response),
        )
        return response(environ, start_response)

    def handle(self, request: Request, request_id: str) -> Response:
        """The response to ``request``, before the CORS headers."""
        if self._is_preflight(request):
            return Response(status=204)
        dev = self._dev_route(request)
        if dev is not None:
            return dev
        invocation = self._match(request)
        if invocation is None:
            return _message(404, "Not Found")
        route = invocation.route
        claims: dict[str, Any] | None = None
        scopes: list[str] | None = None
        if route.authorizer is not None:
            outcome = self._authorize(request, route)
            if isinstance(outcome, Response):
                return outcome
            claims = outcome
            scopes = _token_scopes(claims) if route.scopes else None
        event = build_event(
            request,
            route,
            path_parameters=invocation.path_parameters,
            claims=claims,
            scopes=scopes,
            api_id=self.api_id,
            request_id=request_id,
        )
        return self._integrate(route, event)

    # --- routing ---------------------------------------------------------------------------

    def _match(self, request: Request) -> _Invocation | None:
        try:
            index, args = self._routes.bind_to_environ(request.environ).match()
        except HTTPException:  # NotFound, MethodNotAllowed: API Gateway says 404 to both
            return None
        route = self.api.routes[int(index)]
        if route.method not in ("ANY", request.method):  # werkzeug lets HEAD match GET
            return None
        return _Invocation(route, {_param_name(route.path, k): str(v) for k, v in args.items()})

    # --- the JWT authorizer ----------------------------------------------------------------

    def _authorize(self, request: Request, route: Route) -> dict[str, Any] | Response:
        verifier = self.verifiers[str(route.authorizer)]
        source = self.api.authorizers[str(route.authorizer)].identity_source
        header = source.removeprefix("$request.header.")
        value = request.headers.get(header, "").strip()
        if not value:
            return _message(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})
        token = value[7:].strip() if value[:7].lower() == "bearer " else value
        try:
            claims = verifier.verify(token)
        except TokenRejected as rejected:
            logger.info("%s: token rejected: %s", route.key, rejected.description)
            challenge = (
                f'Bearer scope="" error="invalid_token" error_description="{rejected.description}"'
            )
            return _message(401, "Unauthorized", {"WWW-Authenticate": challenge})
        if route.scopes and not set(route.scopes) & set(_token_scopes(claims)):
            challenge = (
                f'Bearer scope="{" ".join(route.scopes)}" error="insufficient_scope" '
                'error_description="the token does not have a required scope"'
            )
            return _message(403, "Forbidden", {"WWW-Authenticate": challenge})
        return claims

    # --- the Lambda integration ------------------------------------------------------------

    def _integrate(self, route: Route, event: dict[str, Any]) -> Response:
        try:
            result = self._invoke(route, event)
        except IntegrationTimeout:
            logger.error("%s: no answer within %.0f s", route.key, INTEGRATION_TIMEOUT_SECONDS)
            return _message(503, "Service Unavailable")
        except FunctionTimeout:
            logger.error("%s: Task timed out after %d seconds", route.function, route.timeout)
            return _message(500, "Internal Server Error")
        except Exception:
            logger.exception("%s (%s) raised", route.function, route.handler)
            return _message(500, "Internal Server Error")
        try:
            return build_response(result)
        except MalformedResult as error:
            logger.error("%s returned a malformed response: %s", route.function, error)
            return _message(500, "Internal Server Error")

    def _invoke(self, route: Route, event: dict[str, Any]) -> Any:
        """Run the function on ``event`` in its own thread, like one container: one
        invocation at a time (``_one_invocation`` says why across functions too)."""
        lock = self._one_invocation
        if not lock.acquire(timeout=INTEGRATION_TIMEOUT_SECONDS):
            raise IntegrationTimeout
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                handler = load_handler(route.handler)
                context = LambdaContext.for_route(route, region=self.region)
                outcome["result"] = handler(event, context)
            except Exception as error:
                outcome["error"] = error
            finally:
                lock.release()

        worker = threading.Thread(target=run, name=f"lambda:{route.function}", daemon=True)
        worker.start()
        worker.join(min(route.timeout, INTEGRATION_TIMEOUT_SECONDS))
        if worker.is_alive():  # it runs on, as nothing can stop a thread; the answer is lost
            if route.timeout < INTEGRATION_TIMEOUT_SECONDS:
                raise FunctionTimeout
            raise IntegrationTimeout
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    # --- CORS ------------------------------------------------------------------------------

    def _is_preflight(self, request: Request) -> bool:
        return (
            self.api.cors is not None
            and request.method == "OPTIONS"
            and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers
        )

    def _apply_cors(self, request: Request, response: Response) -> None:
        cors = self.api.cors
        if cors is None:
            return
        # With CORS configured, API Gateway replaces whatever CORS headers the function set.
        for name in {k for k, _ in response.headers if k.lower().startswith("access-control-")}:
            del response.headers[name]
        origin = request.headers.get("Origin")
        if not cors.allows(origin):
            return
        wildcard = "*" in cors.allow_origins and not cors.allow_credentials
        response.headers["Access-Control-Allow-Origin"] = "*" if wildcard else str(origin)
        if cors.allow_credentials:
            response.headers["Access-Control-Allow-Credentials"] = "true"
        if self._is_preflight(request):
            response.headers["Access-Control-Allow-Methods"] = ",".join(cors.allow_methods)
            if cors.allow_headers:
                response.headers["Access-Control-Allow-Headers"] = ",".join(cors.allow_headers)
            if cors.max_age is not None:
                response.headers["Access-Control-Max-Age"] = str(cors.max_age)
        elif cors.expose_headers:
            response.headers["Access-Control-Expose-Headers"] = ",".join(cors.expose_headers)

    # --- development routes (never in template.yaml) ---------------------------------------

    def _dev_route(self, request: Request) -> Response | None:
        try:
            endpoint, args = _DEV.bind_to_environ(request.environ).match()
        except HTTPException:
            if request.path.startswith(_DEV_PREFIXES):
                return _message(404, "Not Found")
            return None
        if endpoint in ("index", "static"):
            return self._static(str(args.get("filename", "index.html")), request)
        if endpoint == "token":
            return self._issue_token(request)
        if endpoint == "jwks":
            return _json(self.identity.jwks)
        info = self.dev_info() if callable(self.dev_info) else self.dev_info
        return _json(dict(info or {}))

    def _issue_token(self, request: Request) -> Response:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return _message(400, 'The body must be a JSON object: {"sub": ..., "email": ...}')
        sub, email, ttl = body.get("sub"), body.get("email"), body.get("ttl", 3600)
        if not isinstance(sub, str) or not sub.strip():
            return _message(400, "sub must be a non-empty string (the user id)")
        if email is not None and not isinstance(email, str):
            return _message(400, "email must be a string when given")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= 86400:
            return _message(400, f"ttl must be seconds between 1 and {MAX_TOKEN_TTL_SECONDS}")
        token = self.identity.issue_token(sub, email, ttl=ttl)
        return _json({"token": token, "expires_in": ttl})

    def _static(self, filename: str, request: Request) -> Response:
        directory = self.static_dir
        if filename == "index.html" and (directory is None or not (directory / filename).is_file()):
            return Response(PLACEHOLDER_PAGE, mimetype="text/html")
        if directory is None:
            return _message(404, "Not Found")
        try:
            response = send_from_directory(directory, filename, request.environ)
        except NotFound:
            return _message(404, "Not Found")
        response.headers["Cache-Control"] = "no-cache"
        return response


def _outcome(response: Response) -> str:
    """`` applied`` for a webhook's answer (its ``outcome``), else nothing."""
    if response.mimetype != "application/json" or (response.content_length or 0) > 200:
        return ""
    try:
        body = json.loads(response.get_data())
    except ValueError:
        return ""
    outcome = body.get("outcome") if isinstance(body, dict) else None
    return f" {outcome}" if isinstance(outcome, str) else ""


def load_handler(spec: str) -> Callable[[dict[str, Any], Any], Any]:
    """The function named by ``module:attribute``, looked up per call (tests may replace it)."""
    module, attribute = spec.split(":", 1)
    handler: Callable[[dict[str, Any], Any], Any] = getattr(
        importlib.import_module(module), attribute
    )
    return handler


def _default_identity(api: HttpApi) -> LocalIdentityProvider:
    if not api.authorizers:
        return LocalIdentityProvider("https://local.invalid", "local")
    config = next(iter(api.authorizers.values()))
    if not config.audiences:
        raise TemplateError(f"authorizer {config.name} accepts no audience")
    return LocalIdentityProvider(config.issuer, config.audiences[0])


def _werkzeug_path(path: str) -> str:
    """``/items/{id}`` -> ``/items/<p0>``; ``{proxy+}`` -> ``<path:p0>`` (greedy)."""
    parts = []
    index = 0
    for segment in path.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            greedy = segment.endswith("+}")
            parts.append(f"<{'path:' if greedy else ''}p{index}>")
            index += 1
        else:
            parts.append(segment)
    return "/".join(parts)


def _param_name(path: str, placeholder: str) -> str:
    names = [
        segment[1:-1].removesuffix("+")
        for segment in path.split("/")
        if segment.startswith("{") and segment.endswith("}")
    ]
    return names[int(placeholder.removeprefix("p"))]


def _token_scopes(claims: Mapping[str, Any]) -> list[str]:
    scope = claims.get("scope", claims.get("scp", ""))
    return scope.split() if isinstance(scope, str) else [str(s) for s in scope]


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _message(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    response = _json({"message": message}, status)
    response.headers.extend(headers or {})
    return response
