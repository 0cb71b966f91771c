"""The snapshot functions' settings, read once from the environment.

The other functions' settings are pydantic-settings models (``billing.aws.settings``);
these four are parsed here with the standard library, because the snapshot function
loads no pydantic (its cold start, ``make bench``). The contract is the same: a
missing or malformed variable fails the first invocation with a message naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

DEFAULT_PORTAL_FLOWS = ("payment_method_update", "subscription_cancel", "subscription_update")


class InvalidSettings(ValueError):
    """The environment the function was deployed with is wrong; the message names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotSettings:
    table_name: str
    # Flows the portal configuration offers; the snapshot's ``actions`` only list
    # these. The deploy-time portal configuration sets it.
    portal_flows: tuple[str, ...] = DEFAULT_PORTAL_FLOWS
    invoice_page_size: int = 10
    # A card expiring within this many days is flagged ``expiring_soon``.
    card_expiry_warning_days: int = 30

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SnapshotSettings:
        problems: list[str] = []

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = environ.get(name, "").strip()
            if not raw:
                return default
            if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
                problems.append(f"{name}: must be a whole number from {low} to {high}")
                return default
            return int(raw)

        table_name = environ.get("TABLE_NAME", "")
        if not table_name:
            problems.append("TABLE_NAME: required")
        flows = environ.get("PORTAL_FLOWS")
        settings = cls(
            table_name=table_name,
            portal_flows=DEFAULT_PORTAL_FLOWS
            if flows is None
            else tuple(part.strip() for part in flows.split(",") if part.strip()),
            invoice_page_size=integer("INVOICE_PAGE_SIZE", 10, 1, 50),
            card_expiry_warning_days=integer("CARD_EXPIRY_WARNING_DAYS", 30, 0, 365),
        )
        if problems:
            raise InvalidSettings("Invalid environment: " + "; ".join(problems))
        return settings


@cache
def get_snapshot_settings() -> SnapshotSettings:
    """This container's settings, read on first use."""
    return SnapshotSettings.from_environment()
