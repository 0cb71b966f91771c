"""The stand-in's Stripe account: objects, the rules Stripe applies, and its events.

Only what the product uses is implemented, in the current API shapes (every
object is built with ``shapes.shaped``). Each state change is appended to
``changes`` as ``{"seq", "type", "created", "object", "previous_attributes"}``
with Stripe's event type names, and becomes an ``event`` object (``evt_...``,
API version ``API_VERSION``, ``data.object`` as it was at that moment,
``data.previous_attributes`` on updates, ``request`` of the API call that caused
it). Events are listed and retrieved like Stripe's (``/v1/events`` with
``type``, ``types``, ``created`` and ``delivery_success``).

Webhook endpoints are account objects too; their signing secrets are kept
apart, since Stripe shows a secret only in the create response. For each new
event, ``on_event(event_id, endpoint_ids)`` is told which enabled endpoints
want it (``webhooks.Deliverer`` sends them); ``mark_delivered`` records a 2xx,
which ``pending_webhooks`` and ``delivery_success`` reflect.

Clocks, like Stripe's test clocks, are **per customer**: ``advance_clock``
moves one customer's time forward (an offset over the account clock
``clock``, which keeps running) and bills every period end it passes, in time
order: a subscription due to cancel ends (``customer.subscription.deleted``),
any other renews (``customer.subscription.updated`` with the items' new
periods, then ``invoice.created``, ``invoice.finalized`` and ``invoice.paid`` +
``invoice.payment_succeeded``, or ``invoice.payment_failed`` and a second
``customer.subscription.updated`` to ``past_due`` when the card declines).
Everything done for that customer afterwards, through the API or the portal,
happens on its clock too (objects' timestamps and ``event.created``), so one
customer's events never go back in time and are recorded, hence delivered, in
order; across customers ``created`` is not monotonic, as with test clocks.
Failed renewals are not retried (no dunning). Portal session URLs expire on
the account clock, so advancing a customer does not expire its session.

Portal sessions (``create_portal_session``) are served by ``portal.py``: the
URL must be opened within ``session_open_seconds`` of its creation and then
stays usable for ``session_use_seconds`` (``open_portal_session``). The
portal's actions are the ``portal_*`` methods, which go through the same
methods as the API, so they record the same events.
"""

from __future__ import annotations

import calendar
import copy
import json
import operator
import random
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from stripe.params import billing_portal as portal_params

from sandbox.stripe_standin.enums import (
    AFTER_COMPLETION_TYPES,
    AFTER_EXPIRATION_TYPES,
    CANCEL_MODES,
    CANCEL_PRORATIONS,
    CANCELLATION_REASONS,
    CUSTOMER_UPDATE_FIELDS,
    FLOW_TYPES,
    LOCALES,
    PAUSE_DURATION_TYPES,
    PAUSE_INTERVALS,
    RETENTION_TYPES,
    UPDATE_PRORATIONS,
    stripe_values,
)
from sandbox.stripe_standin.shapes import example, shaped

Obj = dict[str, Any]
Params = dict[str, Any]

# Stripe's test payment-method tokens: attaching one clones a new card.
TEST_CARDS: dict[str, tuple[str, str, bool, bool]] = {
    # token: (brand, last4, attach succeeds, later charges succeed)
    "pm_card_visa": ("visa", "4242", True, True),
    "pm_card_mastercard": ("mastercard", "4444", True, True),
    "pm_card_amex": ("amex", "8431", True, True),
    "pm_card_chargeCustomerFail": ("visa", "0341", True, False),
    "pm_card_visa_chargeDeclined": ("visa", "0002", False, False),
}
SUBSCRIPTION_UPDATE_FIELDS = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesSubscriptionUpdate, "default_allowed_updates"
)
MANAGEABLE_STATUSES = {"active", "trialing", "past_due", "unpaid", "paused"}
# Statuses whose periods end (renew or cancel) when a customer's clock moves.
BILLED_STATUSES = {"active", "trialing", "past_due", "unpaid"}
# A portal URL must be opened this soon after it was created, and then stays usable this long.
SESSION_URL_SECONDS = 300
SESSION_USE_SECONDS = 3600
# The business the stand-in account belongs to (invoices, the portal's "Return to" link).
ACCOUNT_NAME = "Stand-in Inc."
# At most this many period ends per clock advance: a guard against a runaway daily plan.
MAX_PERIOD_ENDS = 1000
# The account's API version, which events carry: the one the product pins.
API_VERSION = "2026-10-28.endive"
_RANGE_OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
# The API request being served on this thread: events name the request that caused them.
_REQUEST: ContextVar[Obj | None] = ContextVar("stripe_standin_request", default=None)
# The customer clock in effect on this thread: seconds ahead of the account clock, or
# a fixed moment while a clock advance bills a period end.
_CLOCK_OFFSET: ContextVar[int] = ContextVar("stripe_standin_clock_offset", default=0)
_FROZEN_AT: ContextVar[int | None] = ContextVar("stripe_standin_frozen_at", default=None)


@contextmanager
def api_request(request_id: str, idempotency_key: str | None) -> Iterator[None]:
    """Attribute the events recorded inside the block to this API request."""
    token = _REQUEST.set({"id": request_id, "idempotency_key": idempotency_key})
    try:
        yield
    finally:
        _REQUEST.reset(token)


@dataclass(frozen=True)
class WebhookDelivery:
    """What to POST for one event to one endpoint: ``body`` is signed with ``secret``."""

    url: str
    secret: str
    body: str


class PortalSessionUnavailable(Exception):
    """A portal URL that cannot be used: ``status`` 404 (unknown) or 410 (expired).
    ``recoverable``: created with ``after_expiration[type]=customer_login``, so the
    customer may sign in again instead."""

    def __init__(self, status: int, message: str, *, recoverable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.recoverable = recoverable


class StripeApiError(Exception):
    """An error answered the way Stripe answers it."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.code, self.param, self.message = (
            status,
            type_,
            code,
            param,
            message,
        )

    def body(self) -> Obj:
        error: Obj = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return {"error": error}


def missing(
    kind: str, object_id: str, param: str | None = None, status: int = 400
) -> StripeApiError:
    return StripeApiError(
        f"No such {kind}: '{object_id}'", status=status, code="resource_missing", param=param
    )


def missing_param(param: str) -> StripeApiError:
    return StripeApiError(
        f"Missing required param: {param}.", code="parameter_missing", param=param
    )


# Own generator: test frameworks (hypothesis) reseed the global one, which
# would hand out the same ids again.
_ids = random.SystemRandom()


def random_id(prefix: str, length: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(_ids.choices(alphabet, k=length))


def add_interval(start: int, interval: str, count: int) -> int:
    """``start`` plus ``count`` intervals, by the calendar for months and years."""
    if interval in ("day", "week"):
        return start + count * (86_400 if interval == "day" else 604_800)
    moment = datetime.fromtimestamp(start, UTC)
    months = count * (12 if interval == "year" else 1)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def as_int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeApiError(f"Invalid integer: {value}", param=param) from None


def as_bool(value: Any, param: str) -> bool:
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    raise StripeApiError(f"Invalid boolean: {value}", param=param)


def merge_metadata(current: Obj | None, update: Any) -> Obj:
    if update == "":
        return {}
    merged = dict(current or {})
    for key, value in (update or {}).items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


def range_filter(spec: Any, param: str) -> Callable[[int], bool]:
    """Stripe's range query: ``created=T`` or ``created[gt|gte|lt|lte]=T``."""
    if spec is None:
        return lambda _: True
    if not isinstance(spec, dict):
        exact = as_int(spec, param)
        return lambda value: value == exact
    bounds = []
    for name, raw in spec.items():
        if name not in _RANGE_OPERATORS:
            raise StripeApiError(f"Invalid {param}[{name}].", param=f"{param}[{name}]")
        bounds.append((_RANGE_OPERATORS[name], as_int(raw, f"{param}[{name}]")))
    return lambda value: all(compare(value, bound) for compare, bound in bounds)


def type_matches(pattern: str, event_type: str) -> bool:
    """``customer.*`` matches every type under ``customer.``; ``*`` matches all."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def diff(before: Obj, after: Obj) -> Obj:
    """Stripe's ``previous_attributes``: old values of the top-level fields that changed."""
    return {k: before.get(k) for k in after if before.get(k) != after[k]}


class StripeState:
    """All objects of one stand-in account. Every public method holds the lock."""

    def __init__(self, base_url: str = "http://127.0.0.1", clock: Callable[[], float] = time.time):
        self.base_url = base_url
        self.clock = clock
        self.lock = threading.RLock()
        self.on_event: Callable[[str, list[str]], None] | None = None
        self.session_open_seconds = SESSION_URL_SECONDS
        self.session_use_seconds = SESSION_USE_SECONDS
        self.business_name = ACCOUNT_NAME
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.objects: dict[str, Obj] = {}
            self.seq: dict[str, int] = {}
            self.changes: list[Obj] = []
            # URL token -> {"session": id, "issued_at", "opened_at", "completed"}; account clock
            self.sessions: dict[str, Obj] = {}
            self.clock_offsets: dict[str, int] = {}  # customer id -> seconds ahead
            self.declining_cards: set[str] = set()
            self.config_products: dict[str, list[Obj]] = {}
            self.invoice_counter: dict[str, int] = {}
            self.webhook_secrets: dict[str, str] = {}
            self.undelivered: dict[str, set[str]] = {}  # event id -> endpoints without a 2xx
            self._next_seq = 0
            self.default_configuration_id = self._seed_default_configuration()

    # --- plumbing ----------------------------------------------------------------------------

    def now(self) -> int:
        """The current time, on the clock of the customer being served (see the docstring)."""
        frozen = _FROZEN_AT.get()
        if frozen is not None:
            return frozen
        return int(self.clock()) + _CLOCK_OFFSET.get()

    @contextmanager
    def _clock_of(self, customer_id: str | None) -> Iterator[None]:
        """Inside the block, ``now()`` is ``customer_id``'s time."""
        token = _CLOCK_OFFSET.set(self.clock_offsets.get(customer_id or "", 0))
        try:
            yield
        finally:
            _CLOCK_OFFSET.reset(token)

    def customer_now(self, customer_id: str) -> int:
        """The time on ``customer_id``'s clock."""
        with self.lock, self._clock_of(customer_id):
            return self.now()

    def _store(self, obj: Obj) -> Obj:
        if obj["id"] not in self.seq:
            self._next_seq += 1
            self.seq[obj["id"]] = self._next_seq
        self.objects[obj["id"]] = obj
        return obj

    def _record(self, event_type: str, obj: Obj, previous: Obj | None = None) -> None:
        self.changes.append(
            {
                "seq": len(self.changes) + 1,
                "type": event_type,
                "created": self.now(),
                "object": copy.deepcopy(obj),
                "previous_attributes": previous,
            }
        )
        self._emit(event_type, obj, previous)

    def _emit(self, event_type: str, obj: Obj, previous: Obj | None) -> None:
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        endpoints = self._endpoints_for(event_type)
        event = shaped(
            "event",
            id=random_id("evt_"),
            api_version=API_VERSION,
            created=self.now(),
            data=data,
            livemode=False,
            pending_webhooks=len(endpoints),
            request=dict(_REQUEST.get() or {"id": None, "idempotency_key": None}),
            type=event_type,
        )
        self._store(event)
        self.undelivered[event["id"]] = set(endpoints)
        if endpoints and self.on_event is not None:
            self.on_event(event["id"], endpoints)

    def get(self, object_id: str, kind: str, *, param: str | None = None, status: int = 400) -> Obj:
        obj = self.objects.get(object_id)
        if obj is None or obj.get("object") != kind or obj.get("deleted"):
            raise missing(kind, object_id, param, status)
        return obj

    def render(self, obj: Obj, expand: Iterable[str] = ()) -> Obj:
        """A copy of ``obj`` for a response, with ``expand`` paths resolved."""
        out = copy.deepcopy(obj)
        for path in expand:
            if out.get("object") == "billing_portal.configuration" and path == (
                "features.subscription_update.products"
            ):
                products = self.config_products.get(out["id"], [])
                out["features"]["subscription_update"]["products"] = copy.deepcopy(products)
                continue
            self._expand(out, path.split("."))
        return out

    def _expand(self, value: Any, parts: list[str]) -> Any:
        if isinstance(value, list):
            return [self._expand(v, parts) for v in value]
        if not parts or not isinstance(value, dict) or parts[0] not in value:
            return value
        head, rest = parts[0], parts[1:]
        target = value[head]
        if isinstance(target, str) and target in self.objects:
            target = copy.deepcopy(self.objects[target])
        value[head] = self._expand(target, rest)
        return value

    def page(self, kind: str, params: Params, url: str, keep: Callable[[Obj], bool]) -> Obj:
        """A Stripe list object: newest first, ``limit``/``starting_after``/``ending_before``."""
        limit = as_int(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise StripeApiError("Invalid limit: must be between 1 and 100.", param="limit")
        rows = [o for o in self.objects.values() if o.get("object") == kind and keep(o)]
        rows.sort(key=lambda o: (o.get("created", 0), self.seq[o["id"]]), reverse=True)
        ids = [o["id"] for o in rows]
        if after := params.get("starting_after"):
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        elif before := params.get("ending_before"):
            rows = rows[: ids.index(before)] if before in ids else []
            rows = rows[-limit:]
        expand = [
            p.removeprefix("data.") for p in params.get("expand", []) if p.startswith("data.")
        ]
        return {
            "object": "list",
            "data": [self.render(o, expand) for o in rows[:limit]],
            "has_more": len(rows) > limit,
            "url": url,
        }

    # --- customers -------------------------------------------------------------------------

    def create_customer(self, params: Params) -> Obj:
        with self.lock:
            customer = shaped(
                "customer",
                id=random_id("cus_", 14),
                created=self.now(),
                email=params.get("email"),
                name=params.get("name"),
                description=params.get("description"),
                phone=params.get("phone"),
                metadata=merge_metadata({}, params.get("metadata")),
                address=None,
                shipping=None,
                discount=None,
                currency=None,
                invoice_prefix="".join(_ids.choices("0123456789ABCDEF", k=8)),
                invoice_settings={
                    "custom_fields": None,
                    "default_payment_method": None,
                    "footer": None,
                    "rendering_options": None,
                },
                preferred_locales=[],
            )
            self._store(customer)
            self._record("customer.created", customer)
            if token := params.get("payment_method"):
                self._attach(token, customer["id"])
            default = (params.get("invoice_settings") or {}).get("default_payment_method")
            if default:
                self.update_customer(
                    customer["id"], {"invoice_settings": {"default_payment_method": default}}
                )
            return customer

    def update_customer(self, customer_id: str, params: Params) -> Obj:
        with self.lock, self._clock_of(customer_id):
            customer = self.get(customer_id, "customer", status=404)
            before = copy.deepcopy(customer)
            for field in ("email", "name", "description", "phone"):
                if field in params:
                    customer[field] = params[field] or None
            if "metadata" in params:
                customer["metadata"] = merge_metadata(customer["metadata"], params["metadata"])
            settings = params.get("invoice_settings") or {}
            if "default_payment_method" in settings:
                pm_id = settings["default_payment_method"] or None
                if pm_id is not None:
                    pm = self.get(
                        pm_id, "payment_method", param="invoice_settings[default_payment_method]"
                    )
                    if pm["customer"] != customer_id:
                        raise StripeApiError(
                            "The payment method must be attached to the customer first.",
                            param="invoice_settings[default_payment_method]",
                        )
                customer["invoice_settings"]["default_payment_method"] = pm_id
            if customer != before:
                self._record("customer.updated", customer, diff(before, customer))
            return customer

    def delete_customer(self, customer_id: str) -> Obj:
        with self.lock, self._clock_of(customer_id):
            customer = self.get(customer_id, "customer", status=404)
            for sub in self._subscriptions_of(customer_id):
                if sub["status"] != "canceled":
                    self.cancel_subscription(sub["id"], {})
            customer["deleted"] = True
            self._record("customer.deleted", {k: v for k, v in customer.items() if k != "deleted"})
            return shaped("deleted_customer", id=customer_id, deleted=True)

    def list_customers(self, params: Params) -> Obj:
        with self.lock:
            email = params.get("email")
            return self.page(
                "customer",
                params,
                "/v1/customers",
                lambda c: not c.get("deleted") and (email is None or c["email"] == email),
            )

    # --- products and prices -------------------------------------------------------------------

    def create_product(self, params: Params) -> Obj:
        with self.lock:
            if not params.get("name"):
                raise missing_param("name")
            now = self.now()
            product = shaped(
                "product",
                id=params.get("id") or random_id("prod_", 14),
                created=now,
                updated=now,
                name=params["name"],
                description=params.get("description"),
                active=as_bool(params.get("active", True), "active"),
                metadata=merge_metadata({}, params.get("metadata")),
                default_price=None,
                images=[],
                marketing_features=[],
                package_dimensions=None,
                shippable=None,
                statement_descriptor=None,
                tax_code=None,
                unit_label=None,
                url=None,
                type="service",
            )
            self._store(product)
            self._record("product.created", product)
            return product

    def update_product(self, product_id: str, params: Params) -> Obj:
        with self.lock:
            product = self.get(product_id, "product", status=404)
            before = copy.deepcopy(product)
            for field in ("name", "description"):
                if field in params:
                    product[field] = params[field]
            if "active" in params:
                product["active"] = as_bool(params["active"], "active")
            if "metadata" in params:
                product["metadata"] = merge_metadata(product["metadata"], params["metadata"])
            if product != before:
                product["updated"] = self.now()
                self._record("product.updated", product, diff(before, product))
            return product

    def list_products(self, params: Params) -> Obj:
        with self.lock:
            active = params.get("active")
            return self.page(
                "product",
                params,
                "/v1/products",
                lambda p: active is None or p["active"] == as_bool(active, "active"),
            )

    def _price_with_lookup_key(self, lookup_key: str) -> Obj | None:
        for obj in self.objects.values():
            if obj.get("object") == "price" and obj.get("lookup_key") == lookup_key:
                return obj
        return None

    def _claim_lookup_key(self, lookup_key: str | None, transfer: Any, price_id: str) -> None:
        if not lookup_key:
            return
        holder = self._price_with_lookup_key(lookup_key)
        if holder is None or holder["id"] == price_id:
            return
        if not as_bool(transfer or False, "transfer_lookup_key"):
            raise StripeApiError(
                f"A price (`{holder['id']}`) already uses that lookup key.",
                param="lookup_key",
            )
        before = copy.deepcopy(holder)
        holder["lookup_key"] = None
        self._record("price.updated", holder, diff(before, holder))

    def create_price(self, params: Params) -> Obj:
        with self.lock:
            if product_data := params.get("product_data"):
                product_id = self.create_product(product_data)["id"]
            elif params.get("product"):
                product_id = self.get(params["product"], "product", param="product")["id"]
            else:
                raise missing_param("product")
            if not params.get("currency"):
                raise missing_param("currency")
            recurring = None
            if r := params.get("recurring"):
                if r.get("interval") not in ("day", "week", "month", "year"):
                    raise StripeApiError(
                        "Invalid recurring[interval].", param="recurring[interval]"
                    )
                recurring = {
                    "interval": r["interval"],
                    "interval_count": as_int(
                        r.get("interval_count", 1), "recurring[interval_count]"
                    ),
                    "meter": None,
                    "usage_type": "licensed",
                    "trial_period_days": None,
                }
            amount = as_int(params.get("unit_amount", 0), "unit_amount")
            price_id = random_id("price_")
            lookup_key = params.get("lookup_key") or None
            self._claim_lookup_key(lookup_key, params.get("transfer_lookup_key"), price_id)
            price = shaped(
                "price",
                id=price_id,
                created=self.now(),
                active=as_bool(params.get("active", True), "active"),
                currency=str(params["currency"]).lower(),
                product=product_id,
                unit_amount=amount,
                unit_amount_decimal=str(amount),
                recurring=recurring,
                type="recurring" if recurring else "one_time",
                lookup_key=lookup_key,
                nickname=params.get("nickname"),
                metadata=merge_metadata({}, params.get("metadata")),
                billing_scheme="per_unit",
                custom_unit_amount=None,
                tax_behavior="unspecified",
                tiers_mode=None,
                transform_quantity=None,
            )
            self._store(price)
            self._record("price.created", price)
            return price

    def update_price(self, price_id: str, params: Params) -> Obj:
        with self.lock:
            price = self.get(price_id, "price", status=404)
            before = copy.deepcopy(price)
            if "lookup_key" in params:
                key = params["lookup_key"] or None
                self._claim_lookup_key(key, params.get("transfer_lookup_key"), price_id)
                price["lookup_key"] = key
            if "active" in params:
                price["active"] = as_bool(params["active"], "active")
            if "nickname" in params:
                price["nickname"] = params["nickname"] or None
            if "metadata" in params:
                price["metadata"] = merge_metadata(price["metadata"], params["metadata"])
            if price != before:
                self._record("price.updated", price, diff(before, price))
            return price

    def list_prices(self, params: Params) -> Obj:
        with self.lock:
            lookup_keys = params.get("lookup_keys")
            active = params.get("active")
            product = params.get("product")
            kind = params.get("type")

            def keep(p: Obj) -> bool:
                return (
                    (lookup_keys is None or p["lookup_key"] in lookup_keys)
                    and (active is None or p["active"] == as_bool(active, "active"))
                    and (product is None or p["product"] == product)
                    and (kind is None or p["type"] == kind)
                )

            return self.page("price", params, "/v1/prices", keep)

    # --- payment methods and setup intents ----------------------------------------------------

    def _attach(self, token_or_id: str, customer_id: str) -> Obj:
        self.get(customer_id, "customer", param="customer")
        if token_or_id in TEST_CARDS:
            brand, last4, attachable, chargeable = TEST_CARDS[token_or_id]
            if not attachable:
                raise StripeApiError(
                    "Your card was declined.", status=402, type_="card_error", code="card_declined"
                )
            card = example("payment_method")["card"]
            card |= {
                "brand": brand,
                "display_brand": brand,
                "last4": last4,
                "exp_month": 12,
                "exp_year": datetime.fromtimestamp(self.now(), UTC).year + 3,
                "fingerprint": random_id("", 16),
                "country": "US",
                "funding": "credit",
                "wallet": None,
                "generated_from": None,
                "networks": {"available": [brand], "preferred": None},
            }
            pm = shaped(
                "payment_method",
                id=random_id("pm_"),
                created=self.now(),
                customer=None,
                card=card,
                type="card",
                metadata={},
                billing_details={
                    "address": {
                        "city": None,
                        "country": None,
                        "line1": None,
                        "line2": None,
                        "postal_code": None,
                        "state": None,
                    },
                    "email": None,
                    "name": None,
                    "phone": None,
                    "tax_id": None,
                },
                allow_redisplay="unspecified",
            )
            self._store(pm)
            if not chargeable:
                self.declining_cards.add(pm["id"])
        else:
            pm = self.get(token_or_id, "payment_method", param="payment_method", status=404)
            if pm["customer"] not in (None, customer_id):
                raise StripeApiError(
                    "The payment method is attached to another customer.", param="payment_method"
                )
        pm["customer"] = customer_id
        self._record("payment_method.attached", pm)
        return pm

    def attach_payment_method(self, pm_id: str, params: Params) -> Obj:
        with self.lock:
            if not params.get("customer"):
                raise missing_param("customer")
            with self._clock_of(params["customer"]):
                return self._attach(pm_id, params["customer"])

    def detach_payment_method(self, pm_id: str) -> Obj:
        with self.lock:
            pm = self.get(pm_id, "payment_method", status=404)
            customer_id = pm["customer"]
            if customer_id is None:
                raise StripeApiError("The payment method is not attached to a customer.")
            with self._clock_of(customer_id):
                pm["customer"] = None
                self._record("payment_method.detached", pm, {"customer": customer_id})
                customer = self.objects[customer_id]
                if customer["invoice_settings"]["default_payment_method"] == pm_id:
                    self.update_customer(
                        customer_id, {"invoice_settings": {"default_payment_method": ""}}
                    )
                return pm

    def list_payment_methods(self, params: Params, customer_id: str | None = None) -> Obj:
        with self.lock:
            customer_id = customer_id or params.get("customer")
            if customer_id:
                self.get(customer_id, "customer", param="customer", status=404)
            kind = params.get("type")
            return self.page(
                "payment_method",
                params,
                "/v1/payment_methods",
                lambda p: (
                    p["customer"] is not None
                    and (customer_id is None or p["customer"] == customer_id)
                    and (kind is None or p["type"] == kind)
                ),
            )

    def create_setup_intent(self, params: Params) -> Obj:
        with self.lock, self._clock_of(params.get("customer")):
            customer = params.get("customer")
            if customer:
                self.get(customer, "customer", param="customer")
            intent_id = random_id("seti_")
            automatic = params.get("automatic_payment_methods")
            intent = shaped(
                "setup_intent",
                id=intent_id,
                client_secret=f"{intent_id}_secret_{random_id('', 25)}",
                created=self.now(),
                customer=customer,
                metadata=merge_metadata({}, params.get("metadata")),
                usage=params.get("usage", "off_session"),
                status="requires_payment_method",
                automatic_payment_methods=(
                    {
                        "enabled": as_bool(
                            automatic.get("enabled", False), "automatic_payment_methods"
                        )
                    }
                    if automatic
                    else None
                ),
                payment_method_types=params.get("payment_method_types", ["card"]),
                payment_method=None,
                last_setup_error=None,
                next_action=None,
                latest_attempt=None,
                mandate=None,
                single_use_mandate=None,
                payment_method_configuration_details=None,
                payment_method_options={},
                cancellation_reason=None,
                description=params.get("description"),
                flow_directions=None,
                on_behalf_of=None,
                application=None,
                excluded_payment_method_types=None,
            )
            self._store(intent)
            self._record("setup_intent.created", intent)
            return intent

    def confirm_setup_intent(self, intent_id: str, params: Params) -> Obj:
        with self.lock:
            intent = self.get(intent_id, "setup_intent", status=404)
            if intent["status"] == "succeeded":
                raise StripeApiError(
                    "This SetupIntent has already succeeded.", code="setup_intent_unexpected_state"
                )
            token = params.get("payment_method")
            if not token:
                raise missing_param("payment_method")
            if intent["customer"] is None:
                raise StripeApiError("This SetupIntent has no customer.", param="customer")
            with self._clock_of(intent["customer"]):
                before = copy.deepcopy(intent)
                pm = self._attach(token, intent["customer"])
                intent.update(status="succeeded", payment_method=pm["id"])
                self._record("setup_intent.succeeded", intent, diff(before, intent))
                return intent

    # --- subscriptions and invoices -------------------------------------------------------------

    def _subscriptions_of(self, customer_id: str) -> list[Obj]:
        return [
            o
            for o in self.objects.values()
            if o.get("object") == "subscription" and o["customer"] == customer_id
        ]

    def _new_item(self, subscription_id: str, spec: Params, start: int, index: int) -> Obj:
        param = f"items[{index}][price]"
        if not spec.get("price"):
            raise missing_param(param)
        price = self.get(spec["price"], "price", param=param)
        if price["recurring"] is None:
            raise StripeApiError("The price must be recurring.", param=param)
        if not price["active"]:
            raise StripeApiError("The price is not active.", param=param)
        quantity = as_int(spec.get("quantity", 1), f"items[{index}][quantity]")
        recurring = price["recurring"]
        plan_template = example("subscription_item")["plan"]
        plan = dict.fromkeys(plan_template)
        plan.update(
            active=price["active"],
            amount=price["unit_amount"],
            amount_decimal=price["unit_amount_decimal"],
            billing_scheme="per_unit",
            created=price["created"],
            currency=price["currency"],
            id=price["id"],
            interval=recurring["interval"],
            interval_count=recurring["interval_count"],
            livemode=False,
            metadata=price["metadata"],
            nickname=price["nickname"],
            object="plan",
            product=price["product"],
            usage_type="licensed",
        )
        return shaped(
            "subscription_item",
            id=random_id("si_", 14),
            created=self.now(),
            price=copy.deepcopy(price),
            plan=plan,
            quantity=quantity,
            subscription=subscription_id,
            metadata={},
            discounts=[],
            tax_rates=[],
            billing_thresholds=None,
            current_period_start=start,
            current_period_end=add_interval(
                start, recurring["interval"], recurring["interval_count"]
            ),
        )

    def _payment_method_for(self, subscription: Obj) -> str | None:
        if subscription["default_payment_method"]:
            return str(subscription["default_payment_method"])
        customer = self.objects[subscription["customer"]]
        default = customer["invoice_settings"]["default_payment_method"]
        return str(default) if default else None

    def create_subscription(self, params: Params) -> Obj:
        with self.lock, self._clock_of(params.get("customer")):
            customer_id = params.get("customer")
            if not customer_id:
                raise missing_param("customer")
            customer = self.get(customer_id, "customer", param="customer")
            specs = params.get("items") or []
            if not specs:
                raise missing_param("items")
            now = self.now()
            trial_days = params.get("trial_period_days")
            trial_end = (
                now + 86_400 * as_int(trial_days, "trial_period_days") if trial_days else None
            )
            sub_id = random_id("sub_")
            items = [self._new_item(sub_id, spec, now, i) for i, spec in enumerate(specs)]
            if trial_end:
                for item in items:
                    item["current_period_end"] = trial_end
            pm_id = params.get("default_payment_method") or None
            if pm_id:
                self.get(pm_id, "payment_method", param="default_payment_method")
            mode = (params.get("billing_mode") or {}).get("type", "classic")
            if mode not in ("classic", "flexible"):
                raise StripeApiError("Invalid billing_mode[type].", param="billing_mode[type]")
            subscription = shaped(
                "subscription",
                id=sub_id,
                created=now,
                start_date=now,
                billing_cycle_anchor=trial_end or now,
                billing_cycle_anchor_config=None,
                billing_mode={"type": mode, "flexible": {} if mode == "flexible" else None},
                customer=customer_id,
                currency=items[0]["price"]["currency"],
                items={
                    "object": "list",
                    "data": items,
                    "has_more": False,
                    "url": f"/v1/subscription_items?subscription={sub_id}",
                },
                status="incomplete",
                cancel_at=None,
                cancel_at_period_end=False,
                canceled_at=None,
                ended_at=None,
                cancellation_details={"comment": None, "feedback": None, "reason": None},
                default_payment_method=pm_id,
                default_source=None,
                description=params.get("description"),
                discounts=[],
                latest_invoice=None,
                metadata=merge_metadata({}, params.get("metadata")),
                next_pending_invoice_item_invoice=None,
                pending_invoice_item_interval=None,
                pending_setup_intent=None,
                pending_update=None,
                pause_collection=None,
                schedule=None,
                test_clock=None,
                transfer_data=None,
                billing_thresholds=None,
                application=None,
                application_fee_percent=None,
                days_until_due=None,
                on_behalf_of=None,
                trial_start=now if trial_end else None,
                trial_end=trial_end,
            )
            invoice = self._new_subscription_invoice(customer, subscription, "subscription_create")
            subscription["latest_invoice"] = invoice["id"]
            if trial_end:
                subscription["status"] = "trialing"
            elif invoice["status"] == "paid":
                subscription["status"] = "active"
            self._store(subscription)
            self._record("customer.subscription.created", subscription)
            self._record_invoice_lifecycle(invoice)
            return subscription

    def _new_subscription_invoice(
        self, customer: Obj, subscription: Obj, reason: str, items: list[Obj] | None = None
    ) -> Obj:
        """An invoice for the current period of ``items`` (default: all the subscription's),
        charged to its payment method."""
        now = self.now()
        in_trial = subscription["trial_end"] is not None and subscription["trial_end"] > now
        items = items or subscription["items"]["data"]
        invoice_id = random_id("in_")
        lines = []
        for item in items:
            amount = 0 if in_trial else item["price"]["unit_amount"] * item["quantity"]
            line = example("invoice")["lines"]["data"][0]
            line.update(
                id=random_id("il_"),
                invoice=invoice_id,
                amount=amount,
                currency=item["price"]["currency"],
                description=None,
                discount_amounts=[],
                discounts=[],
                metadata={},
                quantity=item["quantity"],
                subtotal=amount,
                period={"start": item["current_period_start"], "end": item["current_period_end"]},
                subscription=subscription["id"],
                pretax_credit_amounts=[],
                taxes=[],
                parent={
                    "invoice_item_details": None,
                    "subscription_item_details": {
                        "invoice_item": None,
                        "proration": False,
                        "proration_details": None,
                        "subscription": subscription["id"],
                        "subscription_item": item["id"],
                    },
                    "type": "subscription_item_details",
                },
                pricing={
                    "type": "price_details",
                    "unit_amount_decimal": item["price"]["unit_amount_decimal"],
                },
            )
            lines.append(line)
        total = sum(line["amount"] for line in lines)
        pm_id = self._payment_method_for(subscription)
        paid = total == 0 or (pm_id is not None and pm_id not in self.declining_cards)
        sequence = self.invoice_counter.get(customer["id"], 0) + 1
        self.invoice_counter[customer["id"]] = sequence
        token = random_id("", 32)
        invoice = shaped(
            "invoice",
            id=invoice_id,
            created=now,
            effective_at=now,
            customer=customer["id"],
            customer_email=customer["email"],
            customer_name=customer["name"],
            customer_address=None,
            customer_phone=None,
            customer_shipping=None,
            account_name=self.business_name,
            amount_due=total,
            amount_paid=total if paid else 0,
            amount_remaining=0 if paid else total,
            amount_overpaid=0,
            attempt_count=0 if total == 0 else 1,
            attempted=total > 0 or paid,
            auto_advance=not paid,
            automatically_finalizes_at=None,
            billing_reason=reason,
            currency=subscription["currency"],
            subtotal=total,
            subtotal_excluding_tax=total,
            total=total,
            total_excluding_tax=total,
            total_discount_amounts=[],
            total_pretax_credit_amounts=[],
            total_taxes=[],
            default_payment_method=None,
            default_source=None,
            description=None,
            discounts=[],
            due_date=None,
            ending_balance=0,
            starting_balance=0,
            footer=None,
            from_invoice=None,
            last_finalization_error=None,
            latest_revision=None,
            hosted_invoice_url=f"{self.base_url}/i/{token}",
            invoice_pdf=f"{self.base_url}/i/{token}/pdf",
            lines={
                "object": "list",
                "data": lines,
                "has_more": False,
                "url": f"/v1/invoices/{invoice_id}/lines",
            },
            metadata={},
            next_payment_attempt=None if paid else now + 3 * 86_400,
            number=f"{customer['invoice_prefix']}-{sequence:04d}",
            parent={
                "quote_details": None,
                "subscription_details": {
                    "metadata": subscription["metadata"],
                    "subscription": subscription["id"],
                },
                "type": "subscription_details",
            },
            period_start=items[0]["current_period_start"],
            period_end=items[0]["current_period_start"],
            receipt_number=None,
            shipping_cost=None,
            shipping_details=None,
            statement_descriptor=None,
            status="paid" if paid else "open",
            status_transitions={
                "finalized_at": now,
                "marked_uncollectible_at": None,
                "paid_at": now if paid else None,
                "voided_at": None,
            },
            subscription=None,
            test_clock=None,
            webhooks_delivered_at=now,
        )
        return self._store(invoice)

    def _record_invoice_lifecycle(self, invoice: Obj) -> None:
        self._record("invoice.created", invoice)
        self._record("invoice.finalized", invoice)
        if invoice["status"] == "paid":
            self._record("invoice.paid", invoice)
            self._record("invoice.payment_succeeded", invoice)
        else:
            self._record("invoice.payment_failed", invoice)

    def update_subscription(self, sub_id: str, params: Params) -> Obj:
        with self.lock:
            sub = self.get(sub_id, "subscription", status=404)
            with self._clock_of(sub["customer"]):
                return self._update_subscription(sub, params)

    def _update_subscription(self, sub: Obj, params: Params) -> Obj:
        before = copy.deepcopy(sub)
        if sub["status"] in ("canceled", "incomplete_expired") and set(params) - {
            "cancellation_details",
            "metadata",
            "proration_behavior",
            "expand",
        }:
            raise StripeApiError(
                "A canceled subscription can only update its cancellation_details and metadata."
            )
        if "items" in params:
            self._update_items(sub, params["items"])
        if "cancel_at_period_end" in params:
            ending = as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
            sub["cancel_at_period_end"] = ending
            sub["cancel_at"] = (
                max(i["current_period_end"] for i in sub["items"]["data"]) if ending else None
            )
            sub["canceled_at"] = self.now() if ending else None
        if "cancel_at" in params:
            value = params["cancel_at"]
            sub["cancel_at"] = None if value == "" else as_int(value, "cancel_at")
            sub["cancel_at_period_end"] = False
            sub["canceled_at"] = self.now() if sub["cancel_at"] else None
        self._apply_cancellation_details(sub, params)
        if "metadata" in params:
            sub["metadata"] = merge_metadata(sub["metadata"], params["metadata"])
        if "default_payment_method" in params:
            pm_id = params["default_payment_method"] or None
            if pm_id:
                self.get(pm_id, "payment_method", param="default_payment_method")
            sub["default_payment_method"] = pm_id
        if sub != before:
            self._record("customer.subscription.updated", sub, diff(before, sub))
        return sub

    def _update_items(self, sub: Obj, specs: list[Params]) -> None:
        items: list[Obj] = sub["items"]["data"]
        now = self.now()
        for index, spec in enumerate(specs):
            if spec.get("id"):
                matches = [i for i in items if i["id"] == spec["id"]]
                if not matches:
                    raise missing("subscription_item", spec["id"], f"items[{index}][id]")
                item = matches[0]
                if as_bool(spec.get("deleted", False), f"items[{index}][deleted]"):
                    items.remove(item)
                    continue
                if spec.get("price") and spec["price"] != item["price"]["id"]:
                    replacement = self._new_item(
                        sub["id"], spec, item["current_period_start"], index
                    )
                    if (
                        replacement["price"]["recurring"]["interval"]
                        == item["price"]["recurring"]["interval"]
                    ):
                        replacement["current_period_end"] = item["current_period_end"]
                    else:  # an interval change restarts the billing period
                        replacement = self._new_item(sub["id"], spec, now, index)
                    replacement["id"] = item["id"]
                    replacement["quantity"] = as_int(
                        spec.get("quantity", item["quantity"]), f"items[{index}][quantity]"
                    )
                    items[items.index(item)] = replacement
                elif "quantity" in spec:
                    item["quantity"] = as_int(spec["quantity"], f"items[{index}][quantity]")
            else:
                items.append(self._new_item(sub["id"], spec, now, index))
        if not items:
            raise StripeApiError("A subscription needs at least one item.", param="items")

    @staticmethod
    def _apply_cancellation_details(sub: Obj, params: Params) -> None:
        for field in ("comment", "feedback"):
            if field in (params.get("cancellation_details") or {}):
                sub["cancellation_details"][field] = params["cancellation_details"][field] or None

    def cancel_subscription(self, sub_id: str, params: Params) -> Obj:
        with self.lock:
            sub = self.get(sub_id, "subscription", status=404)
            if sub["status"] == "canceled":
                raise StripeApiError(
                    "This subscription is already canceled.", status=400, code="resource_missing"
                )
            with self._clock_of(sub["customer"]):
                return self._cancel_subscription(sub, params)

    def _cancel_subscription(self, sub: Obj, params: Params) -> Obj:
        before = copy.deepcopy(sub)
        now = self.now()
        sub.update(status="canceled", canceled_at=now, ended_at=now)
        self._apply_cancellation_details(sub, params)
        sub["cancellation_details"]["reason"] = "cancellation_requested"
        self._record("customer.subscription.deleted", sub, diff(before, sub))
        return sub

    def list_subscriptions(self, params: Params) -> Obj:
        with self.lock:
            customer = params.get("customer")
            status = params.get("status")
            price = params.get("price")

            def keep(s: Obj) -> bool:
                if customer is not None and s["customer"] != customer:
                    return False
                if price is not None and all(i["price"]["id"] != price for i in s["items"]["data"]):
                    return False
                if status is None:  # Stripe's default: everything but canceled
                    return bool(s["status"] != "canceled")
                return bool(status == "all" or s["status"] == status)

            return self.page("subscription", params, "/v1/subscriptions", keep)

    def list_invoices(self, params: Params) -> Obj:
        with self.lock:
            customer = params.get("customer")
            subscription = params.get("subscription")
            status = params.get("status")
            return self.page(
                "invoice",
                params,
                "/v1/invoices",
                lambda i: (
                    (customer is None or i["customer"] == customer)
                    and (
                        subscription is None
                        or i["parent"]["subscription_details"]["subscription"] == subscription
                    )
                    and (status is None or i["status"] == status)
                ),
            )

    # --- billing portal ----------------------------------------------------------------------

    def _seed_default_configuration(self) -> str:
        """Like saving the portal settings once in the dashboard: the account default."""
        config = self._configuration_object(
            {
                "features": {
                    "customer_update": {"enabled": "true", "allowed_updates": ["email", "name"]},
                    "invoice_history": {"enabled": "true"},
                    "payment_method_update": {"enabled": "true"},
                    "subscription_cancel": {"enabled": "true", "mode": "at_period_end"},
                }
            },
            None,
        )
        config["is_default"] = True
        self._store(config)
        return str(config["id"])

    def _configuration_object(self, params: Params, current: Obj | None) -> Obj:
        """A validated configuration from ``params`` applied over ``current``."""
        now = self.now()
        base = current or shaped(
            "billing_portal.configuration",
            id=random_id("bpc_"),
            created=now,
            updated=now,
            application=None,
            active=True,
            is_default=False,
            livemode=False,
            metadata={},
            name=None,
            default_return_url=None,
            business_profile={
                "headline": None,
                "privacy_policy_url": None,
                "terms_of_service_url": None,
            },
            login_page={"enabled": False, "url": None},
            features={
                "customer_update": {"allowed_updates": [], "enabled": False},
                "invoice_history": {"enabled": False},
                "payment_method_update": {"enabled": False, "payment_method_configuration": None},
                "subscription_cancel": {
                    "cancellation_reason": {"enabled": False, "options": []},
                    "enabled": False,
                    "mode": "at_period_end",
                    "proration_behavior": "none",
                },
                "subscription_update": {
                    "default_allowed_updates": [],
                    "enabled": False,
                    "proration_behavior": "none",
                    "schedule_at_period_end": {"conditions": []},
                    "trial_update_behavior": "end_trial",
                    "billing_cycle_anchor": None,
                },
                # Stripe's default: one preset duration of one month.
                "subscription_pause": {
                    "enabled": False,
                    "duration": {
                        "type": "interval_options",
                        "interval_options": [{"interval": "month", "interval_count": 1}],
                    },
                },
            },
        )
        config = copy.deepcopy(base)
        products = copy.deepcopy(self.config_products.get(config["id"], []))
        if "business_profile" in params:
            profile = params["business_profile"] or {}
            for field in ("headline", "privacy_policy_url", "terms_of_service_url"):
                if field in profile:
                    config["business_profile"][field] = profile[field] or None
            headline = config["business_profile"]["headline"]
            if headline is not None and len(headline) > 60:
                raise StripeApiError(
                    "Headline must be at most 60 characters.", param="business_profile[headline]"
                )
        for field in ("default_return_url", "name"):
            if field in params:
                config[field] = params[field] or None
        if "metadata" in params:
            config["metadata"] = merge_metadata(config["metadata"], params["metadata"])
        if "active" in params:
            active = as_bool(params["active"], "active")
            if not active and config["is_default"]:
                raise StripeApiError(
                    "The default configuration cannot be deactivated.", param="active"
                )
            config["active"] = active
        if "login_page" in params:
            enabled = as_bool(
                (params["login_page"] or {}).get("enabled", False), "login_page[enabled]"
            )
            url = config["login_page"]["url"] or f"{self.base_url}/p/login/test_{random_id('', 20)}"
            config["login_page"] = {"enabled": enabled, "url": url if enabled else None}
        if current is None and "features" not in params:
            raise missing_param("features")
        features = params.get("features") or {}
        products = self._apply_features(config["features"], features, products)
        config["updated"] = now
        self.config_products[config["id"]] = products
        return config

    def _apply_features(self, current: Obj, requested: Params, products: list[Obj]) -> list[Obj]:
        """Apply requested ``features`` over ``current`` with Stripe's validation rules."""
        if (section := requested.get("customer_update")) is not None:
            self._apply_customer_update(current["customer_update"], section)
        for name in ("invoice_history", "payment_method_update"):
            if (section := requested.get(name)) is not None and "enabled" in section:
                current[name]["enabled"] = as_bool(section["enabled"], f"features[{name}][enabled]")
        if (section := requested.get("subscription_cancel")) is not None:
            self._apply_subscription_cancel(current["subscription_cancel"], section)
        if (section := requested.get("subscription_pause")) is not None:
            self._apply_subscription_pause(current["subscription_pause"], section)
        if (section := requested.get("subscription_update")) is not None:
            self._apply_subscription_update(current["subscription_update"], section)
            if "products" in section:
                products = self._portal_products(section["products"] or [])
        update = current["subscription_update"]
        if update["enabled"]:
            if not current["payment_method_update"]["enabled"]:
                raise StripeApiError(
                    "Subscription updates cannot be enabled while payment method updates "
                    "are disabled.",
                    param="features[subscription_update][enabled]",
                )
            if not products or not update["default_allowed_updates"]:
                raise StripeApiError(
                    "Enabling subscription updates requires products and default_allowed_updates.",
                    param="features[subscription_update][products]",
                )
        return products

    @staticmethod
    def _apply_customer_update(current: Obj, section: Params) -> None:
        if "enabled" in section:
            current["enabled"] = as_bool(section["enabled"], "features[customer_update][enabled]")
        if "allowed_updates" in section:
            allowed = section["allowed_updates"] or []
            if set(allowed) - CUSTOMER_UPDATE_FIELDS:
                raise StripeApiError(
                    "Invalid allowed_updates.", param="features[customer_update][allowed_updates]"
                )
            current["allowed_updates"] = list(allowed)

    @staticmethod
    def _apply_subscription_pause(pause: Obj, section: Params) -> None:
        prefix = "features[subscription_pause]"
        if "enabled" in section:
            pause["enabled"] = as_bool(section["enabled"], f"{prefix}[enabled]")
        if (duration := section.get("duration")) is not None:
            kind = duration.get("type")
            if kind not in PAUSE_DURATION_TYPES:
                raise StripeApiError("Invalid duration type.", param=f"{prefix}[duration][type]")
            options = []
            if kind == "interval_options":
                given = duration.get("interval_options") or []
                if not given:
                    raise missing_param(f"{prefix}[duration][interval_options]")
                for n, option in enumerate(given):
                    where = f"{prefix}[duration][interval_options][{n}]"
                    if option.get("interval") not in PAUSE_INTERVALS:
                        raise StripeApiError("Invalid interval.", param=f"{where}[interval]")
                    count = as_int(option.get("interval_count", 1), f"{where}[interval_count]")
                    if count < 1:
                        raise StripeApiError(
                            "interval_count must be at least 1.", param=f"{where}[interval_count]"
                        )
                    options.append({"interval": option["interval"], "interval_count": count})
            pause["duration"] = {"type": kind, "interval_options": options}

    @staticmethod
    def _apply_subscription_cancel(cancel: Obj, section: Params) -> None:
        prefix = "features[subscription_cancel]"
        if "enabled" in section:
            cancel["enabled"] = as_bool(section["enabled"], f"{prefix}[enabled]")
        for field in ("mode", "proration_behavior"):
            if field in section:
                cancel[field] = section[field]
        if cancel["mode"] not in CANCEL_MODES:
            raise StripeApiError("Invalid mode.", param=f"{prefix}[mode]")
        if cancel["proration_behavior"] not in CANCEL_PRORATIONS:
            raise StripeApiError(
                "Invalid proration_behavior.", param=f"{prefix}[proration_behavior]"
            )
        if cancel["proration_behavior"] != "none" and cancel["mode"] != "immediately":
            raise StripeApiError(
                "Prorations can only be created when canceling immediately.",
                param=f"{prefix}[proration_behavior]",
            )
        if (reason := section.get("cancellation_reason")) is not None:
            options = reason.get("options") or []
            if set(options) - CANCELLATION_REASONS:
                raise StripeApiError(
                    "Invalid cancellation reason.", param=f"{prefix}[cancellation_reason][options]"
                )
            enabled = as_bool(
                reason.get("enabled", False), f"{prefix}[cancellation_reason][enabled]"
            )
            cancel["cancellation_reason"] = {"enabled": enabled, "options": list(options)}

    @staticmethod
    def _apply_subscription_update(update: Obj, section: Params) -> None:
        prefix = "features[subscription_update]"
        if "enabled" in section:
            update["enabled"] = as_bool(section["enabled"], f"{prefix}[enabled]")
        if "default_allowed_updates" in section:
            allowed = section["default_allowed_updates"] or []
            if set(allowed) - SUBSCRIPTION_UPDATE_FIELDS:
                raise StripeApiError(
                    "Invalid default_allowed_updates.", param=f"{prefix}[default_allowed_updates]"
                )
            update["default_allowed_updates"] = list(allowed)
        if "proration_behavior" in section:
            if section["proration_behavior"] not in UPDATE_PRORATIONS:
                raise StripeApiError(
                    "Invalid proration_behavior.", param=f"{prefix}[proration_behavior]"
                )
            update["proration_behavior"] = section["proration_behavior"]

    def _portal_products(self, specs: list[Params]) -> list[Obj]:
        if len(specs) > 10:
            raise StripeApiError(
                "At most 10 products can be offered.",
                param="features[subscription_update][products]",
            )
        products = []
        for index, spec in enumerate(specs):
            param = f"features[subscription_update][products][{index}]"
            product = self.get(spec.get("product", ""), "product", param=f"{param}[product]")
            prices = spec.get("prices") or []
            for price_id in prices:
                price = self.get(price_id, "price", param=f"{param}[prices]")
                if price["product"] != product["id"] or price["recurring"] is None:
                    raise StripeApiError(
                        f"The price {price_id} is not a recurring price of {product['id']}.",
                        param=f"{param}[prices]",
                    )
            adjustable = spec.get("adjustable_quantity") or {}
            products.append(
                {
                    "product": product["id"],
                    "prices": list(prices),
                    "adjustable_quantity": {
                        "enabled": as_bool(
                            adjustable.get("enabled", False),
                            f"{param}[adjustable_quantity][enabled]",
                        ),
                        "maximum": as_int(adjustable["maximum"], "maximum")
                        if adjustable.get("maximum")
                        else None,
                        "minimum": as_int(adjustable.get("minimum", 1), "minimum"),
                    },
                }
            )
        return products

    def create_configuration(self, params: Params) -> Obj:
        with self.lock:
            config = self._store(self._configuration_object(params, None))
            self._record("billing_portal.configuration.created", config)
            return config

    def update_configuration(self, config_id: str, params: Params) -> Obj:
        with self.lock:
            current = self.get(config_id, "billing_portal.configuration", status=404)
            config = self._configuration_object(params, current)
            previous = diff(current, config)
            self.objects[config_id] = config
            self._record("billing_portal.configuration.updated", config, previous)
            return config

    def list_configurations(self, params: Params) -> Obj:
        with self.lock:
            active = params.get("active")
            is_default = params.get("is_default")
            return self.page(
                "billing_portal.configuration",
                params,
                "/v1/billing_portal/configurations",
                lambda c: (
                    (active is None or c["active"] == as_bool(active, "active"))
                    and (is_default is None or c["is_default"] == as_bool(is_default, "is_default"))
                ),
            )

    def create_portal_session(self, params: Params) -> Obj:
        with self.lock, self._clock_of(params.get("customer")):
            customer_id = params.get("customer")
            if not customer_id:
                raise missing_param("customer")
            self.get(customer_id, "customer", param="customer")
            config_id = params.get("configuration") or self.default_configuration_id
            config = self.get(config_id, "billing_portal.configuration", param="configuration")
            if not config["active"]:
                raise StripeApiError("The configuration is not active.", param="configuration")
            return_url = params.get("return_url") or config["default_return_url"]
            locale = params.get("locale")
            if locale is not None and locale not in LOCALES:
                raise StripeApiError(f"Invalid locale: {locale}", param="locale")
            expiration = params.get("after_expiration")
            if expiration is not None and expiration.get("type") not in AFTER_EXPIRATION_TYPES:
                raise StripeApiError(
                    "Invalid after_expiration[type].", param="after_expiration[type]"
                )
            flow = self._session_flow(params.get("flow_data"), customer_id, config)
            now = self.now()
            token = f"test_{random_id('', 40)}"
            session = shaped(
                "billing_portal.session",
                id=random_id("bps_"),
                created=now,
                customer=customer_id,
                customer_account=None,
                configuration=config_id,
                flow=flow,
                livemode=False,
                locale=params.get("locale"),
                on_behalf_of=params.get("on_behalf_of"),
                return_url=return_url,
                url=f"{self.base_url}/p/session/{token}",
            )
            self._store(session)
            self.sessions[token] = {
                "session": session["id"],
                "issued_at": int(self.clock()),  # the account clock: see the docstring
                "opened_at": None,
                "completed": False,
                "recoverable": expiration is not None,
            }
            self._record("billing_portal.session.created", session)
            return session

    def _session_flow(self, flow_data: Params | None, customer_id: str, config: Obj) -> Obj | None:
        if not flow_data:
            return None
        kind = flow_data.get("type")
        features = config["features"]
        flow: Obj = dict.fromkeys(example("billing_portal.session")["flow"])
        flow["type"] = kind

        def subscription_of(section: str) -> Obj:
            sub_id = (flow_data.get(section) or {}).get("subscription")
            param = f"flow_data[{section}][subscription]"
            if not sub_id:
                raise missing_param(param)
            sub = self.get(sub_id, "subscription", param=param)
            if sub["customer"] != customer_id:
                raise StripeApiError(
                    "The subscription does not belong to this customer.", param=param
                )
            if sub["status"] not in MANAGEABLE_STATUSES:
                raise StripeApiError(f"The subscription is {sub['status']}.", param=param)
            return sub

        def require(feature: str) -> None:
            if not features[feature]["enabled"]:
                raise StripeApiError(
                    f"The {feature} feature is disabled in this portal configuration.",
                    param="flow_data[type]",
                )

        if kind not in FLOW_TYPES:
            raise StripeApiError(f"Invalid flow_data[type]: {kind}", param="flow_data[type]")
        match kind:
            case "payment_method_update":
                require("payment_method_update")
            case "customer_update":
                require("customer_update")
            case "subscription_cancel":
                require("subscription_cancel")
                sub = subscription_of("subscription_cancel")
                if sub["cancel_at_period_end"] or sub["cancel_at"]:
                    raise StripeApiError(
                        "The subscription is already set to be canceled.",
                        param="flow_data[subscription_cancel][subscription]",
                    )
                retention = self._retention(flow_data["subscription_cancel"].get("retention"))
                flow["subscription_cancel"] = {"retention": retention, "subscription": sub["id"]}
            case "subscription_pause":
                require("subscription_pause")
                sub = self._pausable(subscription_of("subscription_pause"))
                flow["subscription_pause"] = {"subscription": sub["id"]}
            case "subscription_update":
                require("subscription_update")
                sub = subscription_of("subscription_update")
                flow["subscription_update"] = {"subscription": sub["id"]}
            case "subscription_update_confirm":
                require("subscription_update")
                sub = subscription_of("subscription_update_confirm")
                flow["subscription_update_confirm"] = {
                    "discounts": self._discounts(
                        flow_data["subscription_update_confirm"].get("discounts") or []
                    ),
                    "items": self._confirm_items(
                        flow_data["subscription_update_confirm"], sub, config
                    ),
                    "subscription": sub["id"],
                }
            case _:
                raise StripeApiError(f"Invalid flow_data[type]: {kind}", param="flow_data[type]")
        flow["after_completion"] = self._after_completion(flow_data.get("after_completion"))
        return flow

    @staticmethod
    def _pausable(sub: Obj) -> Obj:
        param = "flow_data[subscription_pause][subscription]"
        if (sub.get("billing_mode") or {}).get("type") != "flexible":
            raise StripeApiError(
                "Only subscriptions with billing_mode flexible can be paused.", param=param
            )
        if sub["status"] == "paused" or sub["pause_collection"]:
            raise StripeApiError("The subscription is already paused.", param=param)
        return sub

    def _retention(self, spec: Params | None) -> Obj | None:
        if spec is None:
            return None
        param = "flow_data[subscription_cancel][retention]"
        if spec.get("type") not in RETENTION_TYPES:
            raise StripeApiError("Invalid retention type.", param=f"{param}[type]")
        coupon_id = (spec.get("coupon_offer") or {}).get("coupon")
        if not coupon_id:
            raise missing_param(f"{param}[coupon_offer][coupon]")
        self.get(coupon_id, "coupon", param=f"{param}[coupon_offer][coupon]")
        return {"type": spec["type"], "coupon_offer": {"coupon": coupon_id}}

    # --- coupons ------------------------------------------------------------------------------

    def create_coupon(self, params: Params) -> Obj:
        with self.lock:
            percent = params.get("percent_off")
            amount = params.get("amount_off")
            if (percent is None) == (amount is None):
                raise StripeApiError("Give exactly one of percent_off and amount_off.")
            duration = params.get("duration", "once")
            if duration not in ("forever", "once", "repeating"):
                raise StripeApiError("Invalid duration.", param="duration")
            coupon_id = params.get("id") or random_id("", 8)
            if coupon_id in self.objects:
                raise StripeApiError("Coupon already exists.", param="id")
            coupon = shaped(
                "coupon",
                id=coupon_id,
                created=self.now(),
                livemode=False,
                name=params.get("name"),
                percent_off=float(percent) if percent is not None else None,
                amount_off=as_int(amount, "amount_off") if amount is not None else None,
                currency=params.get("currency") if amount is not None else None,
                duration=duration,
                duration_in_months=(
                    as_int(params["duration_in_months"], "duration_in_months")
                    if duration == "repeating"
                    else None
                ),
                max_redemptions=None,
                metadata=merge_metadata({}, params.get("metadata")),
                redeem_by=None,
                times_redeemed=0,
                valid=True,
            )
            self._store(coupon)
            return coupon

    def create_promotion_code(self, params: Params) -> Obj:
        with self.lock:
            promotion = params.get("promotion") or {}
            if promotion.get("type") != "coupon" or not promotion.get("coupon"):
                raise missing_param("promotion[coupon]")
            self.get(promotion["coupon"], "coupon", param="promotion[coupon]")
            code = params.get("code") or random_id("", 8).upper()
            if self._promotion_code(code) is not None:
                raise StripeApiError(
                    "An active promotion code with that code exists.", param="code"
                )
            promo = shaped(
                "promotion_code",
                id=random_id("promo_"),
                code=code,
                created=self.now(),
                active=as_bool(params.get("active", True), "active"),
                customer=None,
                expires_at=None,
                livemode=False,
                max_redemptions=None,
                metadata=merge_metadata({}, params.get("metadata")),
                promotion={"type": "coupon", "coupon": promotion["coupon"]},
                times_redeemed=0,
            )
            self._store(promo)
            return promo

    def _promotion_code(self, code: str) -> Obj | None:
        found = [
            o
            for o in self.objects.values()
            if o.get("object") == "promotion_code" and o["code"] == code and o["active"]
        ]
        return found[0] if found else None

    def list_promotion_codes(self, params: Params) -> Obj:
        with self.lock:
            code = params.get("code")
            wanted = None if "active" not in params else as_bool(params["active"], "active")

            def keep(promo: Obj) -> bool:
                return (code is None or promo["code"] == code) and (
                    wanted is None or promo["active"] == wanted
                )

            return self.page("promotion_code", params, "/v1/promotion_codes", keep)

    def _discounts(self, specs: list[Params]) -> list[Obj]:
        """``discounts`` of a confirm flow: each names an existing coupon or promotion code."""
        discounts = []
        for n, spec in enumerate(specs):
            param = f"flow_data[subscription_update_confirm][discounts][{n}]"
            if spec.get("promotion_code"):
                self.get(spec["promotion_code"], "promotion_code", param=f"{param}[promotion_code]")
            elif spec.get("coupon"):
                self.get(spec["coupon"], "coupon", param=f"{param}[coupon]")
            else:
                raise missing_param(f"{param}[coupon]")
            discounts.append(
                {"coupon": spec.get("coupon"), "promotion_code": spec.get("promotion_code")}
            )
        return discounts

    def _confirm_items(self, section: Params, sub: Obj, config: Obj) -> list[Obj]:
        param = "flow_data[subscription_update_confirm][items]"
        specs = section.get("items") or []
        if len(specs) != 1:
            raise StripeApiError("Exactly one item must be given.", param=param)
        spec = specs[0]
        item_ids = {i["id"] for i in sub["items"]["data"]}
        if spec.get("id") not in item_ids:
            raise StripeApiError(
                "The item does not belong to the subscription.", param=f"{param}[0][id]"
            )
        offered = {
            p for product in self.config_products.get(config["id"], []) for p in product["prices"]
        }
        if spec.get("price") and spec["price"] not in offered:
            raise StripeApiError(
                "The price is not offered by this portal configuration.", param=f"{param}[0][price]"
            )
        item: Obj = {"id": spec["id"], "price": spec.get("price")}
        if "quantity" in spec:
            item["quantity"] = as_int(spec["quantity"], f"{param}[0][quantity]")
            if item["quantity"] < 1:
                raise StripeApiError("Quantity must be at least 1.", param=f"{param}[0][quantity]")
        return [item]

    @staticmethod
    def _after_completion(spec: Params | None) -> Obj:
        spec = spec or {"type": "portal_homepage"}
        kind = spec.get("type")
        after: Obj = {"hosted_confirmation": None, "redirect": None, "type": kind}
        if kind == "redirect":
            url = (spec.get("redirect") or {}).get("return_url")
            if not url:
                raise missing_param("flow_data[after_completion][redirect][return_url]")
            after["redirect"] = {"return_url": url}
        elif kind == "hosted_confirmation":
            message = (spec.get("hosted_confirmation") or {}).get("custom_message")
            after["hosted_confirmation"] = {"custom_message": message}
        elif kind not in AFTER_COMPLETION_TYPES:
            raise StripeApiError(
                f"Invalid flow_data[after_completion][type]: {kind}",
                param="flow_data[after_completion][type]",
            )
        return after

    def open_portal_session(self, token: str) -> tuple[Obj, bool]:
        """The portal session behind a URL token, and whether its flow is completed.

        The first use must come within ``session_open_seconds`` of the session's
        creation; from then on the URL works for ``session_use_seconds``.
        Raises ``PortalSessionUnavailable`` (404 unknown, 410 expired).
        """
        with self.lock:
            entry = self.sessions.get(token)
            if entry is None:
                raise PortalSessionUnavailable(404, "This portal session does not exist.")
            now = int(self.clock())
            expired = PortalSessionUnavailable(
                410, "This session has expired.", recoverable=entry["recoverable"]
            )
            if entry["opened_at"] is None:
                if now > entry["issued_at"] + self.session_open_seconds:
                    raise expired
                entry["opened_at"] = now
            elif now > entry["opened_at"] + self.session_use_seconds:
                raise expired
            return copy.deepcopy(self.objects[entry["session"]]), bool(entry["completed"])

    def complete_portal_flow(self, token: str) -> bool:
        """Mark the session's flow done; True the first time (its ``after_completion`` applies)."""
        with self.lock:
            entry = self.sessions[token]
            first = not entry["completed"]
            entry["completed"] = True
            return first

    # --- the hosted portal's actions -------------------------------------------------------------

    def portal_configuration(self, session: Obj, feature: str | None = None) -> Obj:
        """The session's configuration; with ``feature``, only if that feature is enabled."""
        with self.lock:
            config = self.objects[session["configuration"]]
            if feature is not None and not config["features"][feature]["enabled"]:
                raise StripeApiError(
                    "This portal does not offer that.", status=403, param=f"features[{feature}]"
                )
            return config

    def portal_offers(self, config_id: str) -> dict[str, Obj]:
        """Price id -> the configuration's product entry offering it, in offer order."""
        with self.lock:
            return {
                price: product
                for product in self.config_products.get(config_id, [])
                for price in product["prices"]
            }

    def portal_subscription(self, session: Obj, sub_id: str) -> Obj:
        """``sub_id``, if the session's customer can manage it in the portal."""
        with self.lock:
            sub = self.objects.get(sub_id)
            if (
                sub is None
                or sub.get("object") != "subscription"
                or sub["customer"] != session["customer"]
                or sub["status"] not in MANAGEABLE_STATUSES
            ):
                raise missing("subscription", sub_id, "subscription", status=404)
            return sub

    def portal_update_payment_method(self, session: Obj, card: str) -> Obj:
        """Attach the test card ``card`` and make it the customer's default, as the portal does."""
        with self.lock, self._clock_of(session["customer"]):
            self.portal_configuration(session, "payment_method_update")
            if card not in TEST_CARDS:
                raise StripeApiError(f"Unknown test card: {card}", param="card")
            pm = self._attach(card, session["customer"])
            self.update_customer(
                session["customer"], {"invoice_settings": {"default_payment_method": pm["id"]}}
            )
            return pm

    def portal_cancel_subscription(self, session: Obj, sub_id: str, reason: str | None) -> Obj:
        """Cancel as the configuration's ``subscription_cancel`` says, with the survey answer.

        At period end, the answer follows in a second ``customer.subscription.updated``,
        as Stripe sends it; an immediate cancellation carries it in its ``deleted`` event.
        """
        with self.lock:
            cancel = self.portal_configuration(session, "subscription_cancel")["features"][
                "subscription_cancel"
            ]
            sub = self.portal_subscription(session, sub_id)
            if sub["cancel_at_period_end"] or sub["cancel_at"]:
                raise StripeApiError("The subscription is already set to be canceled.")
            survey = cancel["cancellation_reason"]
            if reason and not (survey["enabled"] and reason in survey["options"]):
                raise StripeApiError(f"Invalid cancellation reason: {reason}", param="reason")
            details: Params = {"cancellation_details": {"feedback": reason}} if reason else {}
            if cancel["mode"] == "immediately":
                return self.cancel_subscription(sub_id, details)
            self.update_subscription(sub_id, {"cancel_at_period_end": True})
            if details:
                self.update_subscription(sub_id, details)
            return sub

    def portal_pause_subscription(self, session: Obj, sub_id: str, choice: str) -> Obj:
        """Pause as Stripe's pause does (flexible billing mode only): status ``paused``
        with ``status_details``, announced by ``customer.subscription.paused``."""
        with self.lock:
            pause = self.portal_configuration(session, "subscription_pause")["features"][
                "subscription_pause"
            ]
            sub = self._pausable(self.portal_subscription(session, sub_id))
            if pause["duration"]["type"] != "indefinite":
                options = pause["duration"]["interval_options"]
                if not choice.isdigit() or int(choice) >= len(options):
                    raise StripeApiError("Choose one of the offered durations.", param="duration")
            before = copy.deepcopy(sub)
            sub["status"] = "paused"
            sub["status_details"] = {
                "paused": {
                    "type": "subscription",
                    "transitioned_at": self.customer_now(sub["customer"]),
                    "subscription": {"type": "pause_requested"},
                }
            }
            self._record("customer.subscription.paused", sub, diff(before, sub))
            return sub

    def portal_update_customer(self, session: Obj, fields: Params) -> Obj:
        """The customer's details, within the configuration's ``allowed_updates``."""
        with self.lock:
            allowed = self.portal_configuration(session, "customer_update")["features"][
                "customer_update"
            ]["allowed_updates"]
            if refused := [field for field in fields if field not in allowed]:
                raise StripeApiError(f"You cannot change {', '.join(refused)} here.")
            if "email" in fields and "@" not in fields["email"]:
                raise StripeApiError("Enter a valid email address.", param="email")
            return self.update_customer(session["customer"], fields)

    def portal_apply_coupon(self, session: Obj, sub_id: str, coupon_id: str) -> Obj:
        """Accept a retention offer: the coupon becomes a discount of the subscription."""
        with self.lock:
            sub = self.portal_subscription(session, sub_id)
            coupon = self.get(coupon_id, "coupon", param="coupon")
            before = copy.deepcopy(sub)
            sub["discounts"] = [f"di_{coupon['id']}_{sub_id[-6:]}"]
            self._record("customer.subscription.updated", sub, diff(before, sub))
            return sub

    def portal_renew_subscription(self, session: Obj, sub_id: str) -> Obj:
        """Undo a scheduled cancellation (the portal's "Renew subscription")."""
        with self.lock:
            self.portal_configuration(session, "subscription_cancel")
            sub = self.portal_subscription(session, sub_id)
            if sub["cancel_at_period_end"]:
                return self.update_subscription(sub_id, {"cancel_at_period_end": False})
            if sub["cancel_at"]:
                return self.update_subscription(sub_id, {"cancel_at": ""})
            raise StripeApiError("The subscription is not set to be canceled.")

    def portal_change_plan(
        self, session: Obj, sub_id: str, price_id: str | None, quantity: int | None
    ) -> Obj:
        """Move the subscription's item to ``price_id`` / ``quantity`` within what the
        configuration's ``subscription_update`` allows."""
        with self.lock:
            config = self.portal_configuration(session, "subscription_update")
            update = config["features"]["subscription_update"]
            sub = self.portal_subscription(session, sub_id)
            if len(sub["items"]["data"]) != 1:
                raise StripeApiError("Only single-item subscriptions can be changed here.")
            item = sub["items"]["data"][0]
            price_id = price_id or item["price"]["id"]
            quantity = item["quantity"] if quantity is None else quantity
            offer = self.portal_offers(config["id"]).get(price_id)
            allowed = update["default_allowed_updates"]
            if price_id != item["price"]["id"] and ("price" not in allowed or offer is None):
                raise StripeApiError("That plan is not offered here.", param="price")
            if quantity != item["quantity"]:
                limits = (offer or {}).get("adjustable_quantity") or {"enabled": False}
                if "quantity" not in allowed or not limits["enabled"]:
                    raise StripeApiError("The quantity cannot be changed.", param="quantity")
                low, high = limits["minimum"] or 1, limits["maximum"]
                if quantity < low or (high is not None and quantity > high):
                    raise StripeApiError(
                        f"The quantity must be between {low} and {high or 'any'}.",
                        param="quantity",
                    )
            if price_id == item["price"]["id"] and quantity == item["quantity"]:
                raise StripeApiError("That is the current plan.", param="price")
            return self.update_subscription(
                sub_id,
                {
                    "items": [{"id": item["id"], "price": price_id, "quantity": quantity}],
                    "proration_behavior": update["proration_behavior"],
                },
            )

    # --- customer clocks ---------------------------------------------------------------------

    def advance_clock(
        self, customer_id: str, *, seconds: int | None = None, to: int | None = None
    ) -> Obj:
        """Move ``customer_id``'s clock forward by ``seconds`` or ``to`` a moment, billing
        every period end on the way in time order (see the module docstring).

        Returns ``{"customer", "previous_time", "time", "period_ends", "events"}``.
        """
        with self.lock:
            self.get(customer_id, "customer", status=404)
            current = self.customer_now(customer_id)
            if (seconds is None) == (to is None):
                raise StripeApiError("Pass exactly one of seconds or to.")
            target = current + seconds if seconds is not None else int(to or 0)
            if target < current:
                raise StripeApiError(
                    "A clock can only move forward.", param="seconds" if seconds else "to"
                )
            first_change = len(self.changes)
            period_ends = 0
            while (due := self._next_period_end(customer_id, target)) is not None:
                period_ends += 1
                if period_ends > MAX_PERIOD_ENDS:
                    raise StripeApiError(
                        f"More than {MAX_PERIOD_ENDS} period ends: advance in smaller steps."
                    )
                moment, sub = due
                token = _FROZEN_AT.set(moment)
                try:
                    self._end_period(sub, moment)
                finally:
                    _FROZEN_AT.reset(token)
            self.clock_offsets[customer_id] = target - int(self.clock())
            return {
                "customer": customer_id,
                "previous_time": current,
                "time": target,
                "period_ends": period_ends,
                "events": [c["type"] for c in self.changes[first_change:]],
            }

    def _next_period_end(self, customer_id: str, until: int) -> tuple[int, Obj] | None:
        """The customer's earliest subscription period end (or ``cancel_at``) at or before
        ``until``."""
        due: list[tuple[int, int, Obj]] = []
        for sub in self._subscriptions_of(customer_id):
            if sub["status"] not in BILLED_STATUSES:
                continue
            moments = [i["current_period_end"] for i in sub["items"]["data"]]
            if sub["cancel_at"] is not None:
                moments.append(sub["cancel_at"])
            moment = min(moments)
            if moment <= until:
                due.append((moment, self.seq[sub["id"]], sub))
        if not due:
            return None
        moment, _, sub = min(due, key=lambda d: d[:2])
        return moment, sub

    def _end_period(self, sub: Obj, moment: int) -> None:
        """What happens at ``moment``, a period end or the ``cancel_at`` of ``sub``."""
        before = copy.deepcopy(sub)
        if sub["cancel_at"] is not None and sub["cancel_at"] <= moment:
            sub.update(status="canceled", ended_at=moment, canceled_at=sub["canceled_at"] or moment)
            sub["cancellation_details"]["reason"] = "cancellation_requested"
            self._record("customer.subscription.deleted", sub, diff(before, sub))
            return
        due = [i for i in sub["items"]["data"] if i["current_period_end"] <= moment]
        for item in due:
            recurring = item["price"]["recurring"]
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] = add_interval(
                item["current_period_start"], recurring["interval"], recurring["interval_count"]
            )
        if sub["status"] == "trialing":
            sub["status"] = "active"
        invoice = self._new_subscription_invoice(
            self.objects[sub["customer"]], sub, "subscription_cycle", due
        )
        sub["latest_invoice"] = invoice["id"]
        self._record("customer.subscription.updated", sub, diff(before, sub))
        self._record_invoice_lifecycle(invoice)
        status = "active" if invoice["status"] == "paid" else "past_due"
        if sub["status"] != status:
            before = copy.deepcopy(sub)
            sub["status"] = status
            self._record("customer.subscription.updated", sub, diff(before, sub))

    # --- events and webhook endpoints ------------------------------------------------------------

    def list_events(self, params: Params) -> Obj:
        with self.lock:
            if "type" in params and "types" in params:
                raise StripeApiError("You may pass either type or types, but not both.")
            patterns = [params["type"]] if "type" in params else _as_list(params.get("types"))
            created = range_filter(params.get("created"), "created")
            success = params.get("delivery_success")
            wanted = None if success is None else as_bool(success, "delivery_success")

            def keep(event: Obj) -> bool:
                delivered = not self.undelivered.get(event["id"])
                return (
                    (not patterns or any(type_matches(p, event["type"]) for p in patterns))
                    and created(event["created"])
                    and (wanted is None or delivered == wanted)
                )

            return self.page("event", params, "/v1/events", keep)

    def _endpoints_for(self, event_type: str) -> list[str]:
        """Enabled endpoints that want ``event_type``, oldest first."""
        endpoints = [self.objects[i] for i in self.webhook_secrets]  # exactly the live ones
        return [
            e["id"]
            for e in endpoints
            if e["status"] == "enabled"
            and ("*" in e["enabled_events"] or event_type in e["enabled_events"])
        ]

    def create_webhook_endpoint(self, params: Params) -> Obj:
        with self.lock:
            endpoint = shaped(
                "webhook_endpoint",
                id=random_id("we_"),
                api_version=params.get("api_version") or None,
                application=None,
                created=self.now(),
                description=params.get("description") or None,
                enabled_events=_enabled_events(params.get("enabled_events")),
                livemode=False,
                metadata=merge_metadata({}, params.get("metadata")),
                status="enabled",
                url=_webhook_url(params.get("url")),
            )
            self._store(endpoint)
            secret = self.webhook_secrets[endpoint["id"]] = random_id("whsec_", 32)
            return {**endpoint, "secret": secret}  # only here, as Stripe shows it once

    def update_webhook_endpoint(self, endpoint_id: str, params: Params) -> Obj:
        with self.lock:
            endpoint = self.get(endpoint_id, "webhook_endpoint", status=404)
            update: Obj = {}  # validated in full before anything changes
            if "url" in params:
                update["url"] = _webhook_url(params["url"])
            if "enabled_events" in params:
                update["enabled_events"] = _enabled_events(params["enabled_events"])
            if "description" in params:
                update["description"] = params["description"] or None
            if "metadata" in params:
                update["metadata"] = merge_metadata(endpoint["metadata"], params["metadata"])
            if "disabled" in params:
                disabled = as_bool(params["disabled"], "disabled")
                update["status"] = "disabled" if disabled else "enabled"
            endpoint.update(update)
            return endpoint

    def delete_webhook_endpoint(self, endpoint_id: str) -> Obj:
        with self.lock:
            self.get(endpoint_id, "webhook_endpoint", status=404)
            del self.objects[endpoint_id]
            del self.webhook_secrets[endpoint_id]
            return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}

    def list_webhook_endpoints(self, params: Params) -> Obj:
        with self.lock:
            return self.page("webhook_endpoint", params, "/v1/webhook_endpoints", lambda _: True)

    def webhook_delivery(self, event_id: str, endpoint_id: str) -> WebhookDelivery | None:
        """The request for one delivery; None once the endpoint is deleted or disabled."""
        with self.lock:
            endpoint = self.objects.get(endpoint_id)
            event = self.objects.get(event_id)
            if endpoint is None or event is None or endpoint["status"] != "enabled":
                return None
            payload = {**event, "api_version": endpoint["api_version"] or event["api_version"]}
            return WebhookDelivery(
                endpoint["url"], self.webhook_secrets[endpoint_id], json.dumps(payload, indent=2)
            )

    def mark_delivered(self, event_id: str, endpoint_id: str) -> None:
        """``endpoint_id`` answered 2xx to ``event_id``."""
        with self.lock:
            pending = self.undelivered.get(event_id)
            if pending is None or endpoint_id not in pending:
                return
            pending.discard(endpoint_id)
            self.objects[event_id]["pending_webhooks"] = len(pending)

    def redelivery_targets(self, event_id: str, endpoint_id: str | None) -> list[str]:
        """Where a resend of ``event_id`` goes: ``endpoint_id``, or every endpoint that wants it."""
        with self.lock:
            event = self.get(event_id, "event", status=404)
            if endpoint_id is None:
                return self._endpoints_for(event["type"])
            self.get(endpoint_id, "webhook_endpoint", param="endpoint", status=404)
            return [endpoint_id]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _webhook_url(value: Any) -> str:
    if not value:
        raise missing_param("url")
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StripeApiError(f"Invalid URL: {value}", param="url", code="url_invalid")
    return str(value)


def _enabled_events(value: Any) -> list[str]:
    events = _as_list(value)
    if not events:
        raise missing_param("enabled_events")
    if not all(isinstance(e, str) and e for e in events):
        raise StripeApiError("Invalid enabled_events.", param="enabled_events")
    return events
