"""Stripe webhook events folded into the projection, each exactly once.

The common path of one event is two DynamoDB requests and no Stripe call:

1. one ``BatchGetItem``: the customer's user link and the names of the
   products a subscription refers to;
2. one ``TransactWriteItems``: the event's dedupe record and its versioned
   write, committed together or not at all.

Stripe is called only when the order is in doubt (two events of one object in
the same second: re-fetch), when a product name is unknown (fetched once), when
a customer has no user link yet (its metadata is read), and for a succeeded
SetupIntent from ``POST /setup-intents`` (its card becomes the default).
Anything that fails raises, so the handler answers 5xx and Stripe retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import stripe
from aws_lambda_powertools import Logger

from billing.aws.settings import ProjectionSettings
from billing.core.errors import CustomerMissing, StorageBusy
from billing.projection.catalog_fanout import CatalogChange
from billing.projection.fold import (
    CatalogCopies,
    Change,
    StripeEvent,
    UnreadableObject,
    change_for,
    change_from_object,
    customer_record,
    entitlements_record,
    feature_record,
    is_ours,
    price_record,
    product_record,
)
from billing.projection.records import Kind
from billing.projection.registry import SHAPE_CHANGES_WITH_VERSION, Fold, HandledType, handled_type
from billing.store.keys import (
    CATALOG,
    PRICE_RECORD,
    SNAPSHOT,
    feature_sort_key,
    invoice_sort_key,
    price_record_key,
    price_sort_key,
    product_features_sort_key,
    product_sort_key,
    slot_attribute,
    user_key,
)
from billing.store.table import BillingStore, price_to_fields
from billing.store.writes import (
    CatalogCheck,
    CommitStatus,
    Context,
    Guard,
    LinkWrite,
    RetireWrite,
    Slot,
    SubscriberEntry,
    Write,
)
from billing.stripe_api.client import STRIPE_API_VERSION, idempotency_key, stripe_errors

logger = Logger(child=True)

_ATTEMPTS = 5


class Outcome(StrEnum):
    """What happened to one delivery; logged, and returned in the 200 body."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    IGNORED = "ignored"  # a type the projection does not keep
    OTHER_MODE = "other_mode"  # a test event on a live deployment, or the reverse
    UNLINKED = "unlinked"  # a customer of no user of this product, or of no customer
    RETIRED = "retired"  # of a customer deleted in Stripe: its user has moved on
    UNREADABLE = "unreadable"  # a handled type whose object lacks what its record needs


@dataclass
class WebhookProcessor:
    """Applies verified events to the projection."""

    settings: ProjectionSettings
    store: BillingStore
    # Built only when Stripe must be called (the uncommon paths).
    stripe_client: Callable[[], stripe.StripeClient]
    # Hands a catalog change on to the fan-out (billing.projection.catalog_fanout.announcer).
    announce: Callable[[CatalogChange], None]
    clock: Callable[[], float] = time.time

    @property
    def retention_seconds(self) -> int:
        return self.settings.event_retention_days * 86400

    def process(self, event: StripeEvent) -> Outcome:
        """Fold one verified event in. Its content never raises: only storage or Stripe
        failures do (the sender retries)."""
        if event.livemode != self.settings.stripe_livemode:
            return Outcome.OTHER_MODE
        entry = handled_type(event.type)
        if entry is None:
            return Outcome.IGNORED
        try:
            return self._dispatch(event, entry)
        except UnreadableObject as error:
            logger.warning(
                "Event object unreadable; acknowledged without a change",
                extra={"event_id": event.id, "type": event.type, "reason": str(error)},
            )
            return self._record_only(event, Outcome.UNREADABLE)

    def _dispatch(self, event: StripeEvent, entry: HandledType) -> Outcome:
        match entry.fold:
            case Fold.DEFAULT_PAYMENT_METHOD:
                return self._make_default_payment_method(event)
            case Fold.END_CHECKOUT:
                return self._end_checkout(event)
            case Fold.RETIRE_CUSTOMER:
                return self._retire_customer(event, change_for(event, entry))
            case Fold.UPSERT | Fold.TOMBSTONE:
                return self._fold(event, entry)

    def _fold(self, event: StripeEvent, entry: HandledType) -> Outcome:
        """An upsert or tombstone. An event rendered in another API version may keep its
        fields elsewhere: its object is read in ours first (not for a redelivery, which
        needs no Stripe call)."""
        change = change_for(event, entry)
        # Also re-read: a summary that lists only the first page of its entitlements.
        other_shape = entry.updates in SHAPE_CHANGES_WITH_VERSION and not _pinned(event)
        if other_shape or change.incomplete:
            if self.store.event_seen(event.id, now=int(self.clock())):
                return Outcome.DUPLICATE
            try:
                change = self._refetch(change)
            except CustomerMissing:  # a summary of a customer this account does not have
                return self._record_only(event, Outcome.UNLINKED)
        return self._apply(event, change)

    def apply_object(
        self,
        kind: Kind,
        obj: dict[str, Any],
        *,
        version: int,
        source: str,
        fetched_after_version: bool = False,
    ) -> Outcome:
        """Store ``obj`` (fetched from Stripe, e.g. by the backfill) as of ``version``.

        Goes through the same versioned writes as an event, under a synthetic
        event id ``source`` so a repeated run is harmless. With
        ``fetched_after_version`` (the object was fetched after the second ``version``
        ended), an event stored with the same second happened before the fetch: the
        fetched state is the newer one and wins the tie without a re-fetch.
        """
        event = StripeEvent(
            id=source,
            type=f"{kind.value}.fetched",
            created=version,
            livemode=self.settings.stripe_livemode,
            data=StripeEvent.Data(object=obj),
        )
        change = change_from_object(kind, obj)
        return self._apply(event, change, allow_equal=fetched_after_version)

    # --- projection writes ----------------------------------------------------------------

    def _apply(self, event: StripeEvent, change: Change, *, allow_equal: bool = False) -> Outcome:
        lost: set[Slot] = set()  # secondary writes that lost to newer state: left out
        for attempt in range(_ATTEMPTS):
            context = self.store.context(
                change.customer, change.products, change.prices, change.features
            )
            route = self._route(change, context)
            if isinstance(route, Outcome):
                return self._record_only(event, route)
            user_id, link, guard = route
            products = catalog_copies(context)
            fetched = [
                *self._fetch_missing_products(event, change, products),
                *self._fetch_missing_features(event, change, products),
            ]
            writes = [
                write
                for write in (
                    *fetched,
                    *self._writes(event, change, user_id, products, allow_equal),
                )
                if write.slot not in lost
            ]
            if not writes and link is None:
                return self._record_only(event, Outcome.APPLIED)
            checks, subscribers = self._catalog_ties(change, user_id, context, products)
            result = self.store.commit(
                event.id,
                event.type,
                writes,
                link=link,
                guard=guard,
                checks=checks,
                subscribers=subscribers,
                retention_seconds=self.retention_seconds,
                now=int(self.clock()),
            )
            match result.status:
                case CommitStatus.COMMITTED | CommitStatus.DUPLICATE:
                    # Also on a redelivery: an announcement lost after the commit is made.
                    self._announce_catalog_change(event, change)
                    if result.status is CommitStatus.DUPLICATE:
                        return Outcome.DUPLICATE
                    return Outcome.APPLIED
                case CommitStatus.RETIRED:
                    continue  # the customer was deleted meanwhile: read the link again
                case CommitStatus.LINK_TAKEN:
                    logger.warning("Customer belongs to a user linked to another customer")
                    return self._record_only(event, Outcome.UNLINKED)
                case CommitStatus.OUTDATED:
                    stored = result.outdated.get(self._main_slot(change, user_id))
                    if stored is None:
                        # Only a secondary write lost (a fetched product, or a lookup key
                        # another price holds): someone stored newer; retry without it.
                        lost.update(result.outdated)
                        continue
                    version, stored_event = stored
                    if version > event.created or stored_event == event.id:
                        outcome = self._record_only(event, Outcome.STALE)
                        self._announce_catalog_change(event, change)
                        return outcome
                    # Same second, another event: the order is in doubt.
                    change = self._refetch(change)
                    allow_equal = True
                case CommitStatus.CONFLICT:
                    time.sleep(0.05 * (attempt + 1))
        raise StorageBusy("The projection is busy; retry.")

    def _route(
        self, change: Change, context: Context
    ) -> tuple[str | None, LinkWrite | None, Guard | None] | Outcome:
        """Whose partition ``change`` goes to, and how the customer's link is written or
        checked with it; or, when it belongs to nobody, the outcome to record."""
        if not change.belongs_to_customer:
            return None, None, None
        if change.customer is None:
            return Outcome.UNLINKED  # nothing to key it by
        if context.retired:
            return Outcome.RETIRED
        if context.user_id is not None:
            return context.user_id, None, Guard(context.user_id, change.customer)
        user_id = self._user_of_unlinked(change)
        if user_id is None:
            return Outcome.UNLINKED
        return user_id, LinkWrite(user_id, change.customer), None

    def _writes(
        self,
        event: StripeEvent,
        change: Change,
        user_id: str | None,
        products: CatalogCopies,
        allow_equal: bool,
    ) -> list[Write]:
        slot = self._main_slot(change, user_id)
        if change.kind is Kind.PRICE:
            return self._price_writes(event, change, slot, allow_equal)
        key = self.settings.customer_user_metadata_key
        fields = change.record(key, products, version=event.created).stored()
        if change.kind is Kind.INVOICE:
            fields = {"r": fields}
        return [Write(slot, event.created, event.id, fields, allow_equal)]

    @staticmethod
    @staticmethod
    def _catalog_ties(
        change: Change, user_id: str | None, context: Context, products: CatalogCopies
    ) -> tuple[list[CatalogCheck], list[SubscriberEntry]]:
        """For a subscription: the stored catalog records its copies come from (unchanged
        at commit, or the write is retried with what changed), and its entries in the
        products' subscriber indexes."""
        if change.kind is not Kind.SUBSCRIPTION or user_id is None:
            return [], []
        checks = [
            CatalogCheck(
                CATALOG, product_sort_key(product), version, context.product_events[product]
            )
            for product, version in context.product_versions.items()
            if product in change.products
        ]
        for price_id in change.prices:
            stored = context.prices.get(price_id)
            checks.append(
                CatalogCheck(
                    price_record_key(price_id),
                    PRICE_RECORD,
                    stored.version if stored else None,
                    stored.event_id if stored else None,
                )
            )
        billed: dict[str, list[tuple[int, str]]] = {}
        for position, (product_id, price_id) in enumerate(change.item_prices):
            billed.setdefault(product_id, []).append((position, price_id))
        entries = [
            SubscriberEntry(product_id, change.object_id, user_id, tuple(items))
            for product_id, items in billed.items()
            if product_id in products.names
        ]
        return checks, entries

    def _announce_catalog_change(self, event: StripeEvent, change: Change) -> None:
        """Hand a change of the fields snapshots copy (a product's name, a price's lookup
        key or nickname) to the catalog fan-out, which copies what is stored *now*: so
        this is safe to repeat, and also done for an event that lost to a newer one (a
        rename delivered after a later event of the product carried the new name)."""
        previous = event.data.previous_attributes or {}
        if change.kind is Kind.PRODUCT and "name" in previous:
            self.announce(CatalogChange(product_id=change.object_id, version=event.created))
        elif change.kind is Kind.PRICE and {"lookup_key", "nickname"} & previous.keys():
            product = price_record(change.object).product
            if product:
                self.announce(
                    CatalogChange(
                        product_id=product, version=event.created, price_id=change.object_id
                    )
                )

    def _retire_customer(self, event: StripeEvent, change: Change) -> Outcome:
        """``customer.deleted``: the user is unlinked from the customer for good (the
        next request that needs one creates a new customer), the customer's link is
        kept as retired history so a late event cannot link it again, and its records
        leave the user's partition. Repeated deliveries finish an interrupted purge."""
        customer_id = change.object_id
        key = self.settings.customer_user_metadata_key
        for attempt in range(_ATTEMPTS):
            context = self.store.context(customer_id, ())
            user_id = context.user_id or customer_record(change.object, key).user_id
            if user_id is None:
                return self._record_only(event, Outcome.UNLINKED)
            if context.retired:
                outcome = self._record_only(event, Outcome.RETIRED)
                self.store.purge_customer(user_id, customer_id)
                return outcome
            retire = RetireWrite(user_id, customer_id, linked=context.user_id is not None)
            result = self.store.commit(
                event.id,
                event.type,
                [],
                retire=retire,
                retention_seconds=self.retention_seconds,
                now=int(self.clock()),
            )
            match result.status:
                case CommitStatus.COMMITTED | CommitStatus.DUPLICATE:
                    self.store.purge_customer(user_id, customer_id)
                    if result.status is CommitStatus.DUPLICATE:
                        return Outcome.DUPLICATE
                    logger.info("Customer deleted in Stripe: link retired")
                    return Outcome.APPLIED
                case _:  # the link changed between the read and the write: read again
                    time.sleep(0.05 * (attempt + 1))
        raise StorageBusy("The projection is busy; retry.")

    def _main_slot(self, change: Change, user_id: str | None) -> Slot:
        match change.kind:
            case Kind.CUSTOMER | Kind.SUBSCRIPTION | Kind.PAYMENT_METHOD | Kind.ENTITLEMENTS:
                return Slot(
                    user_key(user_id or ""), SNAPSHOT, slot_attribute(change.kind, change.object_id)
                )
            case Kind.INVOICE:
                created = int(change.object["created"])
                return Slot(user_key(user_id or ""), invoice_sort_key(created, change.object_id))
            case Kind.PRICE:
                return Slot(price_record_key(change.object_id), PRICE_RECORD)
            case Kind.PRODUCT:
                return Slot(CATALOG, product_sort_key(change.object_id))
            case Kind.FEATURE:
                return Slot(CATALOG, feature_sort_key(change.object_id))
            case Kind.PRODUCT_FEATURES:
                return Slot(CATALOG, product_features_sort_key(change.object_id))

    def _price_writes(
        self, event: StripeEvent, change: Change, slot: Slot, allow_equal: bool
    ) -> list[Write]:
        """The price's own record (what subscriptions copy of it) and, when it has a
        lookup key, the catalog entry under that key."""
        previous = (event.data.previous_attributes or {}).get("lookup_key")
        record = price_record(change.object, deleted=change.deleted)
        current = record.lookup_key
        if previous and previous != current:
            # The key moved to another price or was removed: this price no
            # longer answers to it (idempotent, before the transaction).
            self.store.release_lookup_key(previous, change.object_id, event.created)
        copied = {"lookup_key": current, "nickname": record.nickname, "product": record.product}
        writes = [Write(slot, event.created, event.id, copied, allow_equal)]
        if current:
            catalog = Slot(CATALOG, price_sort_key(current))
            fields = price_to_fields(record.catalog_price(change.object_id))
            writes.append(Write(catalog, event.created, event.id, fields, allow_equal))
        return writes

    def _record_only(self, event: StripeEvent, outcome: Outcome) -> Outcome:
        first = self.store.record_event(
            event.id, event.type, retention_seconds=self.retention_seconds, now=int(self.clock())
        )
        return outcome if first else Outcome.DUPLICATE

    # --- the uncommon paths: Stripe calls ---------------------------------------------------

    def _user_of_unlinked(self, change: Change) -> str | None:
        """The user of a customer seen for the first time, from its metadata."""
        key = self.settings.customer_user_metadata_key
        if change.kind is Kind.CUSTOMER:
            metadata = change.object.get("metadata") or {}
        else:
            client = self.stripe_client()
            try:
                with stripe_errors("customers.retrieve"):
                    customer = client.v1.customers.retrieve(change.customer or "").to_dict()
            except CustomerMissing:  # not in this account (any more)
                return None
            metadata = customer.get("metadata") or {}
        user = metadata.get(key)
        return str(user) if user else None

    def _fetch_missing_products(
        self, event: StripeEvent, change: Change, products: CatalogCopies
    ) -> list[Write]:
        """Products the table does not know yet, from Stripe (their names are copied)."""
        writes = []
        names = cast("dict[str, str]", products.names)
        versions = cast("dict[str, int]", products.versions)
        for product_id in change.products:
            if product_id in names:
                continue
            client = self.stripe_client()
            with stripe_errors("products.retrieve"):
                product = client.v1.products.retrieve(product_id).to_dict()
            version = int(product.get("updated") or product.get("created") or 0)
            names[product_id] = product.get("name") or ""
            versions[product_id] = version
            fields = product_record(product).stored()
            writes.append(
                Write(Slot(CATALOG, product_sort_key(product_id)), version, event.id, fields)
            )
        return writes

    def _fetch_missing_features(
        self, event: StripeEvent, change: Change, copies: CatalogCopies
    ) -> list[Write]:
        """Features an entitlements summary grants whose name neither the event (an
        expanded feature) nor the table has: from Stripe, once (their names are copied)."""
        if change.kind is not Kind.ENTITLEMENTS:
            return []
        names = cast("dict[str, str]", copies.features)
        unnamed = [
            grant.feature
            for grant in entitlements_record(change.object).grants
            if grant.name is None and grant.feature not in names
        ]
        writes = []
        for feature_id in unnamed:
            client = self.stripe_client()
            with stripe_errors("entitlements.features.retrieve"):
                feature = client.v1.entitlements.features.retrieve(feature_id).to_dict()
            record = feature_record(feature)
            names[feature_id] = record.name
            # Features carry no timestamp: stored as of the second before the fetch.
            version = int(self.clock()) - 1
            slot = Slot(CATALOG, feature_sort_key(feature_id))
            writes.append(Write(slot, version, event.id, record.stored()))
        return writes

    def _refetch(self, change: Change) -> Change:
        """The object's current state from Stripe (deleted if Stripe no longer has it)."""
        client = self.stripe_client().v1
        if change.kind is Kind.ENTITLEMENTS:
            return change_from_object(
                Kind.ENTITLEMENTS, active_entitlements(self.stripe_client(), change.object_id)
            )
        if change.kind is Kind.PRODUCT_FEATURES:
            return change_from_object(
                Kind.PRODUCT_FEATURES, product_features(self.stripe_client(), change.object_id)
            )
        retrieve: dict[Kind, Callable[[str], Any]] = {
            Kind.CUSTOMER: client.customers.retrieve,
            Kind.SUBSCRIPTION: client.subscriptions.retrieve,
            Kind.PAYMENT_METHOD: client.payment_methods.retrieve,
            Kind.INVOICE: client.invoices.retrieve,
            Kind.PRICE: client.prices.retrieve,
            Kind.PRODUCT: client.products.retrieve,
            Kind.FEATURE: client.entitlements.features.retrieve,
        }
        with stripe_errors(f"{change.kind.value}.retrieve"):
            try:
                obj = retrieve[change.kind](change.object_id).to_dict()
            except stripe.InvalidRequestError as error:
                if error.http_status != 404:
                    raise
                return Change(change.kind, change.object_id, change.customer, change.object, True)
        fetched = change_from_object(change.kind, obj)
        # A detached payment method no longer names its customer: keep the routing.
        return Change(
            fetched.kind,
            fetched.object_id,
            change.customer,
            fetched.object,
            fetched.deleted,
        )

    def _end_checkout(self, event: StripeEvent) -> Outcome:
        """Forget the user's remembered Checkout session when this one ended. The user is
        the one the session's metadata names (this product's sessions carry it); a session
        opened elsewhere (a Payment Link, the Dashboard) names none and changes nothing."""
        session = event.object
        metadata = session.get("metadata") or {}
        user = metadata.get(self.settings.customer_user_metadata_key)
        session_id = session.get("id")
        if not isinstance(user, str) or not user or not isinstance(session_id, str):
            return self._record_only(event, Outcome.UNLINKED)
        first = self.store.end_checkout(
            event.id,
            event.type,
            user,
            session_id,
            retention_seconds=self.retention_seconds,
            now=int(self.clock()),
        )
        return Outcome.APPLIED if first else Outcome.DUPLICATE

    def _make_default_payment_method(self, event: StripeEvent) -> Outcome:
        """Make the card of a succeeded SetupIntent the customer's default, and the default of
        subscriptions that have their own. The resulting ``customer.updated`` and
        ``customer.subscription.updated`` events update the projection."""
        if not is_ours(event):
            return Outcome.IGNORED
        if self.store.event_seen(event.id, now=int(self.clock())):
            return Outcome.DUPLICATE
        intent = event.object
        customer, method = intent.get("customer"), intent.get("payment_method")
        if not isinstance(customer, str) or not isinstance(method, str):
            return self._record_only(event, Outcome.IGNORED)
        client = self.stripe_client()
        try:
            with stripe_errors("customers.update"):
                client.v1.customers.update(
                    customer,
                    params={"invoice_settings": {"default_payment_method": method}},
                    options={"idempotency_key": idempotency_key("default-pm", event.id)},
                )
        except CustomerMissing:  # deleted since: nothing to make default
            return self._record_only(event, Outcome.RETIRED)
        with stripe_errors("subscriptions.list"):
            subscriptions = client.v1.subscriptions.list(
                params={"customer": customer, "limit": 100}
            ).data
        for subscription in subscriptions:
            own = subscription.default_payment_method
            if own is None or own == method or subscription.status in _ENDED:
                continue
            with stripe_errors("subscriptions.update"):
                client.v1.subscriptions.update(
                    subscription.id,
                    params={"default_payment_method": method},
                    options={
                        "idempotency_key": idempotency_key("default-pm", event.id, subscription.id)
                    },
                )
        return self._record_only(event, Outcome.APPLIED)


_ENDED = {"canceled", "incomplete_expired"}


def active_entitlements(client: stripe.StripeClient, customer_id: str) -> dict[str, Any]:
    """The customer's active entitlements as Stripe lists them now, every page, with each
    feature expanded (its name), in the shape of the summary event's object."""
    with stripe_errors("entitlements.active_entitlements.list"):
        listed = client.v1.entitlements.active_entitlements.list(
            params={"customer": customer_id, "limit": 100, "expand": ["data.feature"]}
        )
        data = [entitlement.to_dict() for entitlement in listed.auto_paging_iter()]
    return {
        "object": "entitlements.active_entitlement_summary",
        "customer": customer_id,
        "entitlements": {"object": "list", "data": data, "has_more": False},
    }


def product_features(client: stripe.StripeClient, product_id: str) -> dict[str, Any]:
    """The features attached to a product now, as ``{"id", "object", "features"}``."""
    with stripe_errors("products.features.list"):
        listed = client.v1.products.features.list(product_id, {"limit": 100})
        ids = [attached.entitlement_feature.id for attached in listed.auto_paging_iter()]
    return {"id": product_id, "object": "product_features", "features": ids}


def catalog_copies(context: Context) -> CatalogCopies:
    """What a subscription copies from the stored catalog, as ``context`` read it."""
    return CatalogCopies(
        dict(context.product_names),
        dict(context.product_versions),
        {p: (s.lookup_key, s.nickname, s.version) for p, s in context.prices.items()},
        dict(context.feature_names),
    )


def _pinned(event: StripeEvent) -> bool:
    """Whether the event's object is rendered in the API version this code reads."""
    return event.api_version == STRIPE_API_VERSION
