"""Every Stripe event type the product handles, declared once: type → what it updates → how.

Everything that depends on "which events matter" derives from :data:`REGISTRY`:

- the projection's dispatch (``billing.projection.fold.change_for`` and the webhook
  processor's ``match`` on :class:`Fold`);
- the webhook endpoint's ``enabled_events`` (``Custom::StripeWebhookEndpoint``);
- the ``stripe listen --events`` line that ``make dev`` prints;
- the backfill's replay of undelivered events.

A type that is not here is acknowledged with ``200 {"outcome": "ignored"}`` and
nothing is stored, whatever its object looks like: Stripe still sends types the
endpoint never asked for (one added in the Dashboard, or everything from
``stripe listen`` without ``--events``), and ``invoice.upcoming``'s object has
no ``id`` at all. Types are listed one by one, never matched by prefix.

Pure data: no I/O, no Stripe, no pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from billing.projection.records import Kind


class Fold(StrEnum):
    """How an event of a handled type changes the projection."""

    UPSERT = "upsert"
    """The object's new state replaces the stored one, under the version rule."""

    TOMBSTONE = "tombstone"
    """The object is gone: it is stored as deleted, so later events of it are stale."""

    RETIRE_CUSTOMER = "retire_customer"
    """The customer was deleted in Stripe: its user is unlinked (the link is kept as
    retired history), its records leave the user's snapshot, and the user gets a
    fresh customer on the next request that needs one."""

    END_CHECKOUT = "end_checkout"
    """A Checkout session ended (paid, its delayed payment settled or failed, or expired):
    the user's remembered open session is forgotten if it is this one, so the next ``POST
    /checkout-sessions`` opens a new session instead of handing out a finished one. The
    subscription it started arrives with its own ``customer.subscription.*`` and
    ``invoice.*`` events (before ``checkout.session.completed``); nothing of the session
    itself is kept, so nothing of it can reach a browser."""

    DEFAULT_PAYMENT_METHOD = "default_payment_method"
    """A SetupIntent of ``POST /setup-intents`` succeeded: its payment method becomes
    the customer's default in Stripe; the ``customer.updated`` that follows updates
    the projection."""


@dataclass(frozen=True, slots=True)
class HandledType:
    type: str
    updates: Kind
    fold: Fold


def _entries(kind: Kind, fold: Fold, *types: str) -> list[HandledType]:
    return [HandledType(t, kind, fold) for t in types]


REGISTRY: Mapping[str, HandledType] = MappingProxyType(
    {
        entry.type: entry
        for entry in [
            *_entries(Kind.CUSTOMER, Fold.UPSERT, "customer.created", "customer.updated"),
            *_entries(Kind.CUSTOMER, Fold.RETIRE_CUSTOMER, "customer.deleted"),
            # A deleted subscription stays in Stripe (status canceled): its state is stored.
            *_entries(
                Kind.SUBSCRIPTION,
                Fold.UPSERT,
                "customer.subscription.created",
                "customer.subscription.updated",
                "customer.subscription.deleted",
                "customer.subscription.paused",
                "customer.subscription.resumed",
                "customer.subscription.pending_update_applied",
                "customer.subscription.pending_update_expired",
                "customer.subscription.trial_will_end",
            ),
            *_entries(
                Kind.INVOICE,
                Fold.UPSERT,
                "invoice.created",
                "invoice.finalized",
                "invoice.marked_uncollectible",
                "invoice.paid",
                "invoice.payment_action_required",
                "invoice.payment_failed",
                "invoice.payment_succeeded",
                "invoice.updated",
                "invoice.voided",
            ),
            *_entries(Kind.INVOICE, Fold.TOMBSTONE, "invoice.deleted"),
            *_entries(
                Kind.ENTITLEMENTS, Fold.UPSERT, "entitlements.active_entitlement_summary.updated"
            ),
            *_entries(
                Kind.PAYMENT_METHOD,
                Fold.UPSERT,
                "payment_method.attached",
                "payment_method.automatically_updated",
                "payment_method.detached",
                "payment_method.updated",
            ),
            *_entries(Kind.PRICE, Fold.UPSERT, "price.created", "price.updated"),
            *_entries(Kind.PRICE, Fold.TOMBSTONE, "price.deleted"),
            *_entries(Kind.PRODUCT, Fold.UPSERT, "product.created", "product.updated"),
            *_entries(Kind.PRODUCT, Fold.TOMBSTONE, "product.deleted"),
            *_entries(Kind.CUSTOMER, Fold.DEFAULT_PAYMENT_METHOD, "setup_intent.succeeded"),
            # What they update is the customer's user's open Checkout session.
            *_entries(
                Kind.CUSTOMER,
                Fold.END_CHECKOUT,
                "checkout.session.completed",
                "checkout.session.async_payment_succeeded",
                "checkout.session.async_payment_failed",
                "checkout.session.expired",
            ),
        ]
    }
)

HANDLED_EVENT_TYPES: tuple[str, ...] = tuple(sorted(REGISTRY))
"""What the webhook endpoint subscribes to, sorted (Stripe stores the list as given)."""

# The kinds whose fields the projection reads moved between API versions (a
# subscription's period end went to its items and an invoice's subscription to
# ``parent`` in 2025-03-31.basil). An event rendered in another version than the
# pinned one is re-fetched in the pinned version before it is folded in. The other
# kinds' fields read here have the same shape in every version since 2020-03-02.
SHAPE_CHANGES_WITH_VERSION: frozenset[Kind] = frozenset({Kind.SUBSCRIPTION, Kind.INVOICE})


def handled_type(event_type: str) -> HandledType | None:
    """The registry entry of ``event_type``, or None: acknowledge and ignore it."""
    return REGISTRY.get(event_type)
