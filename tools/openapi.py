"""Write ``docs/openapi.json``, the API contract generated from the Powertools resolvers.

``python -m tools.openapi`` (``make openapi``); a test fails when the file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

from functions.portal_session.app import app as portal_session_app

OPENAPI_FILE = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
TITLE = "Stripe billing portal backend"
VERSION = "0.1.0"


def openapi_document() -> str:
    """The merged OpenAPI document of every HTTP function, as stable JSON text."""
    schema = json.loads(
        portal_session_app.get_openapi_json_schema(
            title=TITLE,
            version=VERSION,
            description="Billing-portal sessions for the signed-in user. "
            "Every route needs `Authorization: Bearer <JWT>` from the configured issuer.",
            security_schemes={"jwt": HTTPBearer(bearerFormat="JWT")},
            security=[{"jwt": []}],
        )
    )
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    OPENAPI_FILE.parent.mkdir(exist_ok=True)
    OPENAPI_FILE.write_text(openapi_document())
    print(f"wrote {OPENAPI_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
