"""A local API gateway: the template's HTTP API with its functions in this process (no Docker).

Everything comes from ``template.yaml``: each ``HttpApi`` event of an
``AWS::Serverless::Function`` is a route to ``functions.<CodeUri folder>.app``
(the ``Handler`` attribute) with the function's Timeout; the JWT authorizer
guards every route without ``Auth: Authorizer: NONE``; CORS as the HttpApi's
``DefinitionBody`` (``x-amazon-apigateway-cors``) and ``CorsConfiguration`` say.
Parameter references resolve from the values passed in (then the defaults). The
gateway sets no environment variables and creates no AWS resources: whoever
starts it prepares those first.

    from sandbox.gateway import LocalGateway, LocalIdentityProvider, serve

    identity = LocalIdentityProvider("https://idp.local.invalid", "billing-portal-local")
    gateway = LocalGateway.from_template(
        "template.yaml",
        parameters={
            "JwtIssuer": identity.issuer,
            "JwtAudience": identity.audience,
            "AllowedOrigins": "http://127.0.0.1:3000",
            "DefaultReturnUrl": "http://127.0.0.1:3000/",
        },
        identity=identity,                    # optional: made from the template's issuer
        static_dir="sandbox/demo",            # index.html at /, other files at /demo/<file>
        dev_info=lambda: {"stripe": standin.url, "webhook_secret": secret},
    )
    server = serve(gateway, "127.0.0.1", 3000)  # PortInUse names a taken port
    print(server.url); ...; server.stop()

Besides the template's routes (API Gateway's answers: 404 ``{"message":"Not
Found"}``, 401 ``{"message":"Unauthorized"}`` before the function runs, 500
``{"message":"Internal Server Error"}`` when it raises or times out), the
gateway serves development-only routes that never exist in the template:

- ``POST /_dev/token`` ``{"sub": ..., "email": ..., "ttl": seconds}`` -> ``{"token"}``:
  an RS256 access token from the local identity provider;
- ``GET /_dev/info``: the ``dev_info`` dict;
- ``GET /.well-known/jwks.json``: the identity provider's public keys;
- ``GET /`` and ``GET /demo/<file>``: the demo page from ``static_dir``.

Modules: ``routes`` (the template), ``identity`` (tokens and their checks),
``payload`` (events and responses in payload format 2.0), ``app`` (the WSGI
application), ``server`` (``serve``).
"""

from sandbox.gateway.app import LocalGateway
from sandbox.gateway.identity import JwtVerifier, LocalIdentityProvider, TokenRejected
from sandbox.gateway.routes import HttpApi, Route, TemplateError, load_http_api
from sandbox.gateway.server import GatewayServer, PortInUse, serve

__all__ = [
    "GatewayServer",
    "HttpApi",
    "JwtVerifier",
    "LocalGateway",
    "LocalIdentityProvider",
    "PortInUse",
    "Route",
    "TemplateError",
    "TokenRejected",
    "load_http_api",
    "serve",
]
