"""Object shapes of the stand-in, taken from Stripe's own fixtures.

``shaped(kind, **fields)`` starts from a deep copy of Stripe's example object of
that kind (``shapes.json``, a subset of Stripe's ``fixtures3.json``) and sets
the given fields, refusing names the real object does not have. Every object
the stand-in returns is built this way, so its field names are Stripe's.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

SHAPES_FILE = Path(__file__).with_name("shapes.json")


@cache
def _examples() -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = json.loads(SHAPES_FILE.read_text())["resources"]
    return resources


def example(kind: str) -> dict[str, Any]:
    """A fresh copy of Stripe's example object of ``kind`` (e.g. ``"customer"``)."""
    return copy.deepcopy(_examples()[kind])


def shaped(kind: str, /, **fields: Any) -> dict[str, Any]:
    """Stripe's example ``kind`` with ``fields`` set; unknown field names are an error."""
    obj = example(kind)
    unknown = set(fields) - set(obj)
    if unknown:
        raise KeyError(f"{kind} has no field(s) {sorted(unknown)}")
    obj.update(fields)
    return obj
