"""The HTTP API as ``template.yaml`` declares it: routes, functions, CORS and the JWT authorizer.

Read with cfn-lint's decoder (as the tests read the template). Parameter
references (``!Ref AllowedOrigins``) resolve from the values passed in, then
from the parameters' defaults; a value the gateway needs but cannot resolve
is a clear error at start, not a 500 on the first request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

ParameterValues = Mapping[str, str | Sequence[str]]

ACCOUNT_ID = "123456789012"
SAM_DEFAULT_TIMEOUT = 3  # seconds, when neither the function nor Globals set one
NO_AUTHORIZER = "NONE"


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
    region: str = "us-east-1",
) -> HttpApi:
    """The HTTP API ``api_id`` of the template at ``path`` (the only one, when not named)."""
    template, problems = decode(str(path))
    if template is None:
        raise TemplateError(f"{path} does not parse: {problems}")
    return http_api_from_template(
        dict(template), parameters or {}, api_id=api_id, stack_name=stack_name, region=region
    )


def http_api_from_template(
    template: Mapping[str, Any],
    parameters: ParameterValues,
    *,
    api_id: str | None = None,
    stack_name: str = "billing-portal-local",
    region: str = "us-east-1",
) -> HttpApi:
    """Like ``load_http_api``, from an already decoded template."""
    resolver = _Resolver(template, parameters, stack_name=stack_name, region=region)
    resources: Mapping[str, Any] = template.get("Resources", {})
    apis = [
        name for name, res in resources.items() if res.get("Type") == "AWS::Serverless::HttpApi"
    ]
    if api_id is None:
        if len(apis) != 1:
            raise TemplateError(f"expected one AWS::Serverless::HttpApi, found {apis}; name one")
        api_id = apis[0]
    elif api_id not in apis:
        raise TemplateError(f"{api_id} is not an AWS::Serverless::HttpApi of the template")
    props: Mapping[str, Any] = resources[api_id].get("Properties", {})
    auth: Mapping[str, Any] = props.get("Auth", {})
    authorizers = {
        name: _jwt_authorizer(name, spec, resolver)
        for name, spec in auth.get("Authorizers", {}).items()
    }
    default_authorizer: str | None = auth.get("DefaultAuthorizer")
    routes = [
        route
        for name, res in resources.items()
        if res.get("Type") == "AWS::Serverless::Function"
        for route in _function_routes(
            name, res, template, resolver, api_id=api_id, default_authorizer=default_authorizer
        )
    ]
    for route in routes:
        if route.authorizer is not None and route.authorizer not in authorizers:
            raise TemplateError(f"{route.key} names the unknown authorizer {route.authorizer}")
    keys = [route.key for route in routes]
    if duplicates := sorted({key for key in keys if keys.count(key) > 1}):
        raise TemplateError(f"routes declared twice: {duplicates}")
    cors = _cors_settings(props)
    return HttpApi(
        logical_id=api_id,
        routes=tuple(routes),
        cors=_cors(cors, resolver) if cors else None,
        authorizers=authorizers,
    )


def _jwt_authorizer(name: str, spec: Mapping[str, Any], resolver: _Resolver) -> JwtAuthorizerConfig:
    jwt = spec.get("JwtConfiguration")
    if jwt is None:
        raise TemplateError(f"authorizer {name}: only JWT authorizers are emulated")
    issuer = resolver.resolve(jwt.get("issuer"), f"authorizer {name} issuer")
    audiences = resolver.resolve(jwt.get("audience", []), f"authorizer {name} audience")
    return JwtAuthorizerConfig(
        name=name,
        issuer=str(issuer),
        audiences=_strings(audiences),
        identity_source=str(spec.get("IdentitySource", "$request.header.Authorization")),
    )


def _function_routes(
    name: str,
    resource: Mapping[str, Any],
    template: Mapping[str, Any],
    resolver: _Resolver,
    *,
    api_id: str,
    default_authorizer: str | None,
) -> list[Route]:
    props: Mapping[str, Any] = resource.get("Properties", {})
    events = {
        event: spec.get("Properties", {})
        for event, spec in props.get("Events", {}).items()
        if spec.get("Type") == "HttpApi"
    }
    if not events:
        return []
    globals_: Mapping[str, Any] = template.get("Globals", {}).get("Function", {})

    def setting(key: str, default: Any = None) -> Any:
        return props.get(key, globals_.get(key, default))

    code_uri, handler = setting("CodeUri"), setting("Handler")
    if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"{name}: CodeUri and Handler must be plain strings (module.attr)")
    module, attribute = handler.rsplit(".", 1)
    package = ".".join(part for part in Path(code_uri).parts if part not in ("", "."))
    function_name = resolver.resolve_or(props.get("FunctionName"), name)
    routes = []
    for event, spec in events.items():
        api = spec.get("ApiId")
        if (api.get("Ref") if isinstance(api, Mapping) else api) != api_id:
            continue  # an event of another (or the implicit) API
        auth: Mapping[str, Any] = spec.get("Auth", {})
        authorizer = auth.get("Authorizer", default_authorizer)
        method, path = spec.get("Method"), spec.get("Path")
        if not isinstance(method, str) or not isinstance(path, str):
            raise TemplateError(f"{name}.{event}: Method and Path must be plain strings")
        method = method.upper()
        routes.append(
            Route(
                method="ANY" if method in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method,
                path=path,
                function=name,
                function_name=str(function_name),
                handler=f"{package}.{module}:{attribute}",
                timeout=int(resolver.resolve(setting("Timeout", SAM_DEFAULT_TIMEOUT), "Timeout")),
                memory_mb=int(resolver.resolve(setting("MemorySize", 128), "MemorySize")),
                authorizer=None if authorizer in (None, NO_AUTHORIZER) else str(authorizer),
                scopes=_strings(resolver.resolve(auth.get("AuthorizationScopes", []), "scopes")),
            )
        )
    return routes


def _cors_settings(props: Mapping[str, Any]) -> Any:
    """The CORS settings as SAM deploys them: the ``DefinitionBody``'s extension, with
    ``CorsConfiguration`` taking precedence key by key; None without either."""
    spec = props.get("CorsConfiguration")
    body = props.get("DefinitionBody")
    extension = body.get(CORS_EXTENSION) if isinstance(body, Mapping) else None
    if spec is True or (spec is None and extension is None):
        return spec
    if spec is not None and not isinstance(spec, Mapping):
        raise TemplateError("CorsConfiguration must be true or a map of CORS settings")
    if spec is not None and _is_intrinsic(spec.get("AllowOrigins")):
        # SAM then writes only the Ref into the API and drops every other setting.
        raise TemplateError(
            "CorsConfiguration.AllowOrigins is an intrinsic function, which makes SAM drop "
            f"the other CORS settings: state CORS in DefinitionBody's {CORS_EXTENSION}"
        )
    merged = {key[:1].upper() + key[1:]: value for key, value in (extension or {}).items()}
    merged.update(spec or {})
    return merged


def _is_intrinsic(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and ("Ref" in value or str(next(iter(value))).startswith("Fn::"))
    )


def _cors(spec: Any, resolver: _Resolver) -> Cors:
    if spec is True:  # CorsConfiguration: true allows every origin
        return Cors(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))
    value = resolver.resolve(spec, "CorsConfiguration")
    max_age = value.get("MaxAge")
    return Cors(
        allow_origins=_strings(value.get("AllowOrigins", [])),
        allow_methods=tuple(m.upper() for m in _strings(value.get("AllowMethods", []))),
        allow_headers=tuple(h.lower() for h in _strings(value.get("AllowHeaders", []))),
        expose_headers=tuple(h.lower() for h in _strings(value.get("ExposeHeaders", []))),
        max_age=None if max_age is None else int(max_age),
        allow_credentials=str(value.get("AllowCredentials", "false")).lower() == "true",
    )


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(item) for item in value or ())


class _Resolver:
    """Resolves ``Ref`` to parameters and pseudo parameters, ``Fn::Join``/``Split``/``Sub``."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: ParameterValues,
        *,
        stack_name: str,
        region: str,
    ) -> None:
        self.declared: Mapping[str, Any] = template.get("Parameters", {})
        unknown = sorted(set(parameters) - set(self.declared))
        if unknown:
            raise TemplateError(f"parameters not declared by the template: {unknown}")
        self.parameters = parameters
        self.pseudo = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, Mapping):
            if len(value) == 1:
                ((function, argument),) = value.items()
                if function == "Ref" or str(function).startswith("Fn::"):
                    return self._intrinsic(str(function), argument, where)
            return {str(k): self.resolve(v, where) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(item, where) for item in value]
        return value

    def _intrinsic(self, function: str, argument: Any, where: str) -> Any:
        if function == "Ref":
            return self._ref(str(argument), where)
        if function == "Fn::Join":
            separator, items = argument
            return str(separator).join(str(i) for i in self.resolve(items, where))
        if function == "Fn::Split":
            separator, text = argument
            return str(self.resolve(text, where)).split(str(separator))
        if function == "Fn::Sub" and isinstance(argument, str):
            return re.sub(
                r"\$\{([^}!]+)\}", lambda m: _text(self._ref(m.group(1), where)), argument
            )
        raise TemplateError(f"{where}: {function} cannot be resolved locally")

    def resolve_or(self, value: Any, fallback: str) -> Any:
        """``value`` resolved, or ``fallback`` when absent or not resolvable here."""
        if value is None:
            return fallback
        try:
            return self.resolve(value, "")
        except TemplateError:
            return fallback

    def _ref(self, name: str, where: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        declared = self.declared.get(name)
        if declared is None:
            raise TemplateError(f"{where}: Ref {name} is not a parameter; cannot resolve locally")
        value = self.parameters.get(name, declared.get("Default"))
        if value is None:
            raise TemplateError(f"{where}: parameter {name} has no value and no default")
        if str(declared.get("Type", "String")).startswith(("CommaDelimitedList", "List<")):
            return list(_strings(value))
        if not isinstance(value, str | int | float):
            raise TemplateError(f"{where}: parameter {name} takes one value, not {value!r}")
        return str(value)


def _text(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)
