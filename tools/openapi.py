"""Write ``docs/openapi.json``, the API contract generated from the Powertools resolvers.

``python -m tools.openapi`` (``make openapi``); a test fails when the file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

from functions.billing.app import app as billing_app
from functions.invoices.app import app as invoices_app
from functions.portal_session.app import app as portal_session_app
from functions.webhook.app import app as webhook_app

OPENAPI_FILE = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
TITLE = "Stripe billing portal backend"
VERSION = "0.1.0"


def openapi_document() -> str:
    """The merged OpenAPI document of every HTTP function, as stable JSON text."""
    documents = [
        json.loads(
            app.get_openapi_json_schema(
                title=TITLE,
                version=VERSION,
                description="Billing portal sessions, the billing snapshot and the Stripe "
                "webhook. Every route except `POST /webhooks/stripe` and `GET /plans` needs "
                "`Authorization: Bearer <JWT>` from the configured issuer; the webhook is "
                "authenticated by Stripe's signature, and the plan list is public.",
                security_schemes={"jwt": HTTPBearer(bearerFormat="JWT")},
                security=[{"jwt": []}],
            )
        )
        for app in (portal_session_app, billing_app, invoices_app, webhook_app)
    ]
    schema = documents[0]
    for other in documents[1:]:
        schema["paths"].update(other["paths"])
        schemas = other.get("components", {}).get("schemas", {})
        schema.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
    # Stripe cannot send a JWT, and a pricing table is shown to visitors: no authorizer.
    schema["paths"]["/webhooks/stripe"]["post"]["security"] = []
    schema["paths"]["/plans"]["get"]["security"] = []
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    OPENAPI_FILE.parent.mkdir(exist_ok=True)
    OPENAPI_FILE.write_text(openapi_document())
    print(f"wrote {OPENAPI_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
