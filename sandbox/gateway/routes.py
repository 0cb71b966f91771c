"""The HTTP API as ``template.yaml`` deploys it: routes, functions, CORS and the JWT authorizer.

The template goes through SAM's own transform (``sandbox.cloudformation.sam_translate``),
and the gateway reads what CloudFormation would receive: the API's OpenAPI body
(paths, each operation's Lambda integration and security, the authorizers, the
``x-amazon-apigateway-cors`` extension) and the functions with SAM's Globals
merged in. Intrinsic functions resolve through the local stack's one resolver
(``LocalStack``): parameter values passed in, then the parameters' defaults. A
value the gateway needs but cannot resolve is a clear error at start, not a 500
on the first request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.model.exceptions import (  # type: ignore[import-untyped]
    InvalidDocumentException,
)

from sandbox.cloudformation import LocalStack, code_folder, load_template, sam_translate

ParameterValues = Mapping[str, str | Sequence[str]]

LAMBDA_DEFAULT_TIMEOUT = 3  # seconds, when neither the function nor Globals set one
LAMBDA_DEFAULT_MEMORY = 128
NO_AUTHORIZER = "NONE"
# The function an operation's integration invokes: ...functions/${Name.Arn}/invocations
_INTEGRATION_FUNCTION = re.compile(r"\$\{([A-Za-z0-9]+)\.Arn\}")


class TemplateError(ValueError):
    """The template (or a parameter value) does not describe an API the gateway can serve."""


@dataclass(frozen=True)
class Route:
    """One ``HttpApi`` event of one function."""

    method: str  # upper case, or ANY
    path: str  # as in the template, e.g. /billing or /items/{id}
    function: str  # logical id
    function_name: str  # the deployed name, for the Lambda context
    handler: str  # module:attribute, e.g. functions.billing.app:lambda_handler
    timeout: int  # seconds
    memory_mb: int
    authorizer: str | None  # name of the JWT authorizer, None for Auth: Authorizer: NONE
    scopes: tuple[str, ...] = ()  # AuthorizationScopes: the token needs one of them

    @property
    def key(self) -> str:
        """The route key, as API Gateway names it: ``GET /billing``."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Cors:
    """An HTTP API's CORS settings (``CorsConfiguration``, or the body's extension)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    def allows(self, origin: str | None) -> bool:
        """Whether ``origin`` is allowed, compared as API Gateway does: exactly, or by
        ``*`` (any origin), ``https://*`` or ``http://*`` (any origin of that scheme)."""
        if not origin:
            return False
        for allowed in self.allow_origins:
            if allowed in ("*", origin):
                return True
            scheme = allowed.removesuffix("*")
            if allowed in _SCHEME_WILDCARDS and origin.startswith(scheme) and origin != scheme:
                return True
        return False


_SCHEME_WILDCARDS = ("https://*", "http://*")
# API Gateway's OpenAPI extension for an HTTP API's CORS (keys in camelCase).
CORS_EXTENSION = "x-amazon-apigateway-cors"


@dataclass(frozen=True)
class JwtAuthorizerConfig:
    """A JWT authorizer: accepted issuer and audiences."""

    name: str
    issuer: str
    audiences: tuple[str, ...]
    identity_source: str = "$request.header.Authorization"


@dataclass(frozen=True)
class HttpApi:
    """Everything the gateway serves for one ``AWS::Serverless::HttpApi``."""

    logical_id: str
    routes: tuple[Route, ...]
    cors: Cors | None = None
    authorizers: Mapping[str, JwtAuthorizerConfig] = field(default_factory=dict)


def load_http_api(
    path: str | Path,
    parameters: ParameterValues | None = None,
    *,
    api_id: str | None = None,
    stack_name: str = "billing-portal-local",
) -> HttpApi:
    """The HTTP API ``api_id`` of the template at ``path`` (the only one, when not named)."""
    try:
        template = load_template(Path(path))
    except ValueError as error:
        raise TemplateError(str(error)) from None
    return http_api_from_template(template, parameters or {}, api_id=api_id, stack_name=stack_name)


def http_api_from_template(
    template: Mapping[str, Any],
    parameters: ParameterValues,
    *,
    api_id: str | None = None,
    stack_name: str = "billing-portal-local",
) -> HttpApi:
    """Like ``load_http_api``, from an already decoded (SAM) template."""
    _refuse_cors_that_sam_drops(template)
    unknown = sorted(set(parameters) - set(template.get("Parameters", {})))
    if unknown:
        raise TemplateError(f"parameters not declared by the template: {unknown}")
    try:
        translated = sam_translate(template)
    except InvalidDocumentException as error:
        raise TemplateError(f"SAM cannot transform the template: {error}") from None
    stack = LocalStack(translated, stack_name, parameters=dict(parameters))
    resources: Mapping[str, Any] = translated["Resources"]
    apis = [name for name, res in resources.items() if res["Type"] == "AWS::ApiGatewayV2::Api"]
    if api_id is None:
        if len(apis) != 1:
            raise TemplateError(f"expected one AWS::Serverless::HttpApi, found {apis}; name one")
        api_id = apis[0]
    elif api_id not in apis:
        raise TemplateError(f"{api_id} is not an AWS::Serverless::HttpApi of the template")
    props: Mapping[str, Any] = resources[api_id]["Properties"]
    body: Mapping[str, Any] = props.get("Body", {})
    schemes = body.get("components", {}).get("securitySchemes", {})
    authorizers = {name: _jwt_authorizer(name, scheme, stack) for name, scheme in schemes.items()}
    routes = tuple(
        _route(method, path, operation, resources, stack)
        for path, operations in body.get("paths", {}).items()
        for method, operation in operations.items()
        if "x-amazon-apigateway-integration" in operation
    )
    for route in routes:
        if route.authorizer is not None and route.authorizer not in authorizers:
            raise TemplateError(f"{route.key} names the unknown authorizer {route.authorizer}")
    cors = body.get(CORS_EXTENSION, props.get("CorsConfiguration"))
    return HttpApi(
        logical_id=api_id,
        routes=routes,
        cors=_cors(cors, stack) if cors else None,
        authorizers=authorizers,
    )


def _jwt_authorizer(name: str, scheme: Mapping[str, Any], stack: LocalStack) -> JwtAuthorizerConfig:
    spec = scheme.get("x-amazon-apigateway-authorizer", {})
    if spec.get("type") != "jwt":
        raise TemplateError(f"authorizer {name}: only JWT authorizers are emulated")
    jwt = spec.get("jwtConfiguration", {})
    identity_source = spec.get("identitySource", "$request.header.Authorization")
    return JwtAuthorizerConfig(
        name=name,
        issuer=str(_resolve(stack, jwt.get("issuer"), f"authorizer {name} issuer")),
        audiences=_strings(_resolve(stack, jwt.get("audience", []), f"authorizer {name} audience")),
        identity_source=",".join(_strings(identity_source)),
    )


def _route(
    method: str,
    path: str,
    operation: Mapping[str, Any],
    resources: Mapping[str, Any],
    stack: LocalStack,
) -> Route:
    uri = operation["x-amazon-apigateway-integration"].get("uri", {})
    target = _INTEGRATION_FUNCTION.search(
        str(uri.get("Fn::Sub", "") if isinstance(uri, Mapping) else uri)
    )
    key = f"{method.upper()} {path}"
    if target is None or target.group(1) not in resources:
        raise TemplateError(f"{key}: its integration invokes no function of the template")
    name = target.group(1)
    props: Mapping[str, Any] = resources[name]["Properties"]
    handler = props.get("Handler")
    if not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"{name}: Handler must be a plain string (module.attr)")
    module, attribute = handler.rsplit(".", 1)
    package = ".".join(part for part in Path(code_folder(resources[name])).parts if part != ".")
    security = operation.get("security") or [{}]
    authorizer, scopes = next(iter(security[0].items()), (None, []))
    return Route(
        method="ANY"
        if method.upper() in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD")
        else method.upper(),
        path=path,
        function=name,
        function_name=str(_resolve_or(stack, props.get("FunctionName"), name)),
        handler=f"{package}.{module}:{attribute}",
        timeout=int(_resolve(stack, props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT), "Timeout")),
        memory_mb=int(
            _resolve(stack, props.get("MemorySize", LAMBDA_DEFAULT_MEMORY), "MemorySize")
        ),
        authorizer=None if authorizer in (None, NO_AUTHORIZER) else str(authorizer),
        scopes=_strings(_resolve(stack, scopes, f"{key} scopes")),
    )


def _refuse_cors_that_sam_drops(template: Mapping[str, Any]) -> None:
    """SAM writes only the ``Ref`` of an intrinsic ``CorsConfiguration.AllowOrigins`` into
    the API and drops every other CORS setting: serving the full settings locally would
    hide a broken deployment, so such a template is refused."""
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Serverless::HttpApi":
            continue
        spec = resource.get("Properties", {}).get("CorsConfiguration")
        if isinstance(spec, Mapping) and _is_intrinsic(spec.get("AllowOrigins")):
            raise TemplateError(
                "CorsConfiguration.AllowOrigins is an intrinsic function, which makes SAM drop "
                f"the other CORS settings: state CORS in DefinitionBody's {CORS_EXTENSION}"
            )


def _is_intrinsic(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and ("Ref" in value or str(next(iter(value))).startswith("Fn::"))
    )


def _cors(spec: Any, stack: LocalStack) -> Cors:
    value = _resolve(stack, spec, CORS_EXTENSION)
    if not isinstance(value, Mapping):
        raise TemplateError(f"{CORS_EXTENSION} must be a map of CORS settings")
    # The body's extension is camelCase; the API's CorsConfiguration property PascalCase.
    value = {key[:1].lower() + key[1:]: item for key, item in value.items()}
    max_age = value.get("maxAge")
    return Cors(
        allow_origins=_strings(value.get("allowOrigins", [])),
        allow_methods=tuple(m.upper() for m in _strings(value.get("allowMethods", []))),
        allow_headers=tuple(h.lower() for h in _strings(value.get("allowHeaders", []))),
        expose_headers=tuple(h.lower() for h in _strings(value.get("exposeHeaders", []))),
        max_age=None if max_age is None else int(max_age),
        allow_credentials=str(value.get("allowCredentials", "false")).lower() == "true",
    )


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(item) for item in value or ())


def _resolve(stack: LocalStack, value: Any, where: str) -> Any:
    try:
        return stack.resolve(value)
    except (KeyError, NotImplementedError) as error:
        reason = error.args[0] if error.args else error
        raise TemplateError(f"{where}: {reason}; cannot resolve locally") from None


def _resolve_or(stack: LocalStack, value: Any, fallback: str) -> Any:
    """``value`` resolved, or ``fallback`` when absent or not resolvable here."""
    if value is None:
        return fallback
    try:
        return _resolve(stack, value, "")
    except TemplateError:
        return fallback
