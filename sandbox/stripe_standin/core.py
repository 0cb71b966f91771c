"""What every resource of the stand-in's account shares: ids, clocks, the lock, objects,
the change log and its events, Stripe-shaped errors and parameter parsing.

``state.StripeState`` combines this core with one class per Stripe resource (one
module each); the account's behaviour as a whole is described there.
"""

from __future__ import annotations

import calendar
import copy
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
from typing import TYPE_CHECKING, Any

from stripe.params import billing_portal as portal_params

from sandbox.stripe_standin.enums import (
    stripe_values,
)
from sandbox.stripe_standin.shapes import shaped

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
    # Stripe's 4000 0000 0000 3220: every payment needs 3-D Secure. On a page the
    # customer authenticates; off session (a renewal) nobody can, so the charge fails.
    "pm_card_threeDSecure2Required": ("visa", "3220", True, False),
}
AUTHENTICATION_CARDS = frozenset({"pm_card_threeDSecure2Required"})
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


class StandinCore:
    """What every resource shares: the objects, the lock, ids, clocks and the change log."""

    if TYPE_CHECKING:  # defined by another resource of the same account (state.py)

        def _endpoints_for(self, event_type: str) -> list[str]: ...

        def _seed_default_configuration(self) -> str: ...

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
            # Payment methods whose payments need 3-D Secure (a subset of declining_cards).
            self.authentication_cards: set[str] = set()
            self.spent_discounts: set[str] = set()  # ``once`` discounts an invoice has used
            self.product_of_feature: dict[str, str] = {}  # product feature id -> product id
            # (customer, feature) -> active entitlement id; customer -> last summary sent
            self.entitlement_ids: dict[tuple[str, str], str] = {}
            self.entitlement_summaries: dict[str, list[Obj]] = {}
            self.config_products: dict[str, list[Obj]] = {}
            # Checkout session id -> what completing it creates (line items, subscription_data).
            self.checkout_plans: dict[str, Obj] = {}
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
        self._after_record(event_type, obj)

    def _after_record(self, event_type: str, obj: Obj) -> None:
        """What follows from a recorded change (a resource may send more events)."""

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
