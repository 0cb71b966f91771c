"""The billing table's key schema: every item the product stores, in one place.

One table, single-table design. ``pk`` / ``sk`` are strings; ``expires_at`` is
the TTL attribute (epoch seconds), also checked in code because TTL deletion
lags. User ids are the JWT ``sub``, used as-is inside keys (DynamoDB keys take
any UTF-8 string up to 2048 bytes; ``sub`` is at most 255 characters).

==============================  ==============================  ====================================
pk                              sk                              item
==============================  ==============================  ====================================
``USER#<user_id>``              ``LINK``                        ``customer_id``, ``linked_at``: the
                                                                user's Stripe customer, absent while
                                                                the user has none; ``generation``:
                                                                how many of the user's customers
                                                                were retired (part of the creation
                                                                key).
``USER#<user_id>``              ``SNAPSHOT``                    one attribute per projected
                                                                customer, subscription and payment
                                                                method, and the customer's active
                                                                entitlements (keyed by customer),
                                                                ``<kind>#<stripe id>`` =
                                                                ``{v, e, r}`` (version, event id,
                                                                record); one item, so ``GET
                                                                /billing`` reads it in the same
                                                                request as the newest invoices.
``USER#<user_id>``              ``INVOICE#<created>#<digest>``  one invoice, ``{v, e, r}``; sorted
                                                                by date under the user, so a
                                                                descending query returns SNAPSHOT,
                                                                LINK, then the newest invoices; the
                                                                digest keeps invoice ids out of
                                                                paging cursors.
``CUSTOMER#<customer_id>``      ``LINK``                        ``user_id``: the reverse link,
                                                                written in the same transaction;
                                                                webhooks use it to find the user of
                                                                an event. Kept with
                                                                ``retired_at``/``retired_reason``
                                                                when the customer is deleted in
                                                                Stripe (history: it is never linked
                                                                again).
``CATALOG``                     ``PRICE#<lookup_key>``          a catalog price (id, product,
                                                                amount, currency, interval, active),
                                                                ``v``, ``e``; cached on a miss with
                                                                ``expires_at``, kept current by
                                                                ``price.*`` events.
``PRICEID#<price_id>``          ``PRICE``                       what a subscription item copies of
                                                                its price (``lookup_key``,
                                                                ``nickname``), as the price's own
                                                                events stored it.
``CATALOG``                     ``PRODUCT#<product_id>``        the product's name and description,
                                                                ``v``, ``e``. One partition with the
                                                                prices: ``GET /plans`` reads both in
                                                                one Query.
``CATALOG``                     ``FEATURE#<feature_id>``        an entitlement feature's lookup key
                                                                and name, ``v``, ``e`` (from the
                                                                backfill or the catalog resource:
                                                                Stripe sends no feature events).
``CATALOG``                     ``PRODUCTFEATURES#<product>``   the ids of the features attached to
                                                                the product (``GET /plans`` lists
                                                                them), ``v``, ``e``.
``SUBSCRIBERS#<product_id>``    ``SUBSCRIPTION#<id>``           the product's subscriber index:
                                                                ``{user_id, items: [{position,
                                                                price}]}``, written with the
                                                                subscription; a catalog change walks
                                                                it to every snapshot that copies it.
``CHECKOUT#<user_id>``          ``CHECKOUT``                    the user's open Checkout session
                                                                (``session_id``, ``url`` or
                                                                ``client_secret``, ``fingerprint``
                                                                of the request), until
                                                                ``expires_at``: handed out again to
                                                                the same request, expired before a
                                                                different one.
``REFRESH#<user_id>``           ``REFRESH``                     ``at``: when the user's last
                                                                ``POST /billing/refresh`` ran (its
                                                                rate limit), until ``expires_at``.
``EVENT#<event_id>``            ``EVENT``                       the dedupe record of a processed
                                                                event, written in the same
                                                                transaction as its effect,
                                                                ``expires_at`` >= 4 days.
==============================  ==============================  ====================================

Every projected write is conditional on ``v`` being older than the event's
(``billing.projection.fold`` states the version rule).
"""

from __future__ import annotations

import hashlib

from billing.projection.records import Kind

LINK = "LINK"
CATALOG = "CATALOG"
PRICE_PREFIX = "PRICE#"
PRODUCT_PREFIX = "PRODUCT#"
FEATURE_PREFIX = "FEATURE#"
PRODUCT_FEATURES_PREFIX = "PRODUCTFEATURES#"
SNAPSHOT = "SNAPSHOT"
INVOICE_PREFIX = "INVOICE#"
EVENT = "EVENT"
CHECKOUT = "CHECKOUT"
REFRESH = "REFRESH"
PRICE_RECORD_PREFIX = "PRICEID#"
PRICE_RECORD = "PRICE"
# Why a customer link was retired (``retired_reason``).
DELETED_IN_STRIPE = "deleted_in_stripe"  # its customer.deleted event arrived
MISSING_IN_STRIPE = "missing_in_stripe"  # Stripe answered "No such customer"


def user_key(user_id: str) -> str:
    return f"USER#{user_id}"


def customer_key(customer_id: str) -> str:
    return f"CUSTOMER#{customer_id}"


def price_sort_key(lookup_key: str) -> str:
    return f"{PRICE_PREFIX}{lookup_key}"


def checkout_key(user_id: str) -> str:
    return f"CHECKOUT#{user_id}"


def refresh_key(user_id: str) -> str:
    return f"REFRESH#{user_id}"


def event_key(event_id: str) -> str:
    return f"EVENT#{event_id}"


def product_sort_key(product_id: str) -> str:
    return f"{PRODUCT_PREFIX}{product_id}"


def feature_sort_key(feature_id: str) -> str:
    return f"{FEATURE_PREFIX}{feature_id}"


def product_features_sort_key(product_id: str) -> str:
    return f"{PRODUCT_FEATURES_PREFIX}{product_id}"


def price_record_key(price_id: str) -> str:
    return f"{PRICE_RECORD_PREFIX}{price_id}"


def subscribers_key(product_id: str) -> str:
    return f"SUBSCRIBERS#{product_id}"


def subscriber_sort_key(subscription_id: str) -> str:
    return f"SUBSCRIPTION#{subscription_id}"


def invoice_sort_key(created: int, invoice_id: str) -> str:
    digest = hashlib.sha256(invoice_id.encode()).hexdigest()[:16]
    return f"{INVOICE_PREFIX}{created:010d}#{digest}"


def slot_attribute(kind: Kind, object_id: str) -> str:
    return f"{kind.value}#{object_id}"
