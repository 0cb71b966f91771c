"""The snapshot functions' settings, read once from the environment.

The other functions' settings are pydantic-settings models (``billing.aws.settings``);
these are parsed here with the standard library, because the snapshot function
loads no pydantic (its cold start, ``make bench``). The contract is the same: a
missing or malformed variable fails the first invocation with a message naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from billing.core.access import AccessPolicy

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
    access_policy: AccessPolicy = AccessPolicy()  # noqa: RUF009 - frozen, shared safely
    # What GET /plans lists: the lookup keys Checkout sells, and the trial it grants.
    plan_lookup_keys: tuple[str, ...] = ()
    checkout_trial_days: int = 0

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

        def flag(name: str, default: bool) -> bool:
            raw = environ.get(name, "").strip().lower()
            if not raw:
                return default
            if raw not in ("true", "false"):
                problems.append(f"{name}: must be true or false")
                return default
            return raw == "true"

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
            access_policy=AccessPolicy(
                past_due_grace_days=integer("ACCESS_PAST_DUE_GRACE_DAYS", 7, 0, 60),
                incomplete_grants_access=flag("ACCESS_INCOMPLETE_GRANTS", False),
                paused_grants_access=flag("ACCESS_PAUSED_GRANTS", False),
                access_until_period_end=flag("ACCESS_UNTIL_PERIOD_END", False),
            ),
            plan_lookup_keys=tuple(
                key.strip() for key in environ.get("PLAN_LOOKUP_KEYS", "").split(",") if key.strip()
            ),
            checkout_trial_days=integer("CHECKOUT_TRIAL_DAYS", 0, 0, 730),
        )
        if problems:
            raise InvalidSettings("Invalid environment: " + "; ".join(problems))
        return settings


@cache
def get_snapshot_settings() -> SnapshotSettings:
    """This container's settings, read on first use."""
    return SnapshotSettings.from_environment()
