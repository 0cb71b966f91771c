"""Sample events under ``events/``, loaded and adjusted for one test."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

_KEEP: Any = object()
EVENTS = Path(__file__).resolve().parents[2] / "events"


@cache
def _load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def http_event(
    name: str,
    *,
    body: Any = _KEEP,
    raw_body: str | None = None,
    user: Any = _KEEP,
    email: str | None = "ada@example.com",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event from ``events/<name>.json``.

    ``body`` replaces the JSON body, ``raw_body`` the raw text; ``user`` sets the
    JWT ``sub`` (None removes the authorizer, as for an anonymous call).
    """
    event = copy.deepcopy(_load(name))
    if body is not _KEEP:
        event["body"] = json.dumps(body)
        event["isBase64Encoded"] = False
    if raw_body is not None:
        event["body"] = raw_body
        event["isBase64Encoded"] = False
    if user is None:
        event["requestContext"].pop("authorizer", None)
    elif user is not _KEEP:
        claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
        claims["sub"] = user
        if email is None:
            claims.pop("email", None)
        else:
            claims["email"] = email
    return event
