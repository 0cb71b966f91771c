"""The billing page's view of a user, composed from stored items: pure, no I/O, no Stripe.

Rules (also in the README):

- **Primary subscription**: the one the portal flows act on
  (``billing.core.subscriptions``: active, then trialing, then past_due, newest
  first); if none is current, the newest one that has not ended (incomplete,
  unpaid, paused). No such subscription: ``status`` is ``"none"`` and ``plan``
  is null (a free user). Every subscription of the customer is listed in
  ``subscriptions``, newest first.
- **Plan** is the subscription's first item (Stripe keeps item order);
  ``renews_at`` is the earliest ``current_period_end`` of its items (when the
  next invoice comes), shown only while it will renew (not while paused);
  ``cancels_at`` is set when the subscription is scheduled to end.
- **Paused**: status ``paused`` (Stripe's pause, or a trial that ended without a
  payment method), or collection paused (``pause_collection``, status stays
  ``active``); ``resumes_at`` when Stripe knows it.
- **Payment method**: the customer's default, else the primary subscription's
  own default, of any type: ``last4`` for cards and bank debits, ``bank_name``
  and ``email`` (Link, PayPal) where the type has them; ``expiring_soon`` only for
  a card that expires within ``CARD_EXPIRY_WARNING_DAYS`` (or has expired).
- **Invoices**: the linked customer's, newest first, drafts and deleted drafts
  left out; a page of ``INVOICE_PAGE_SIZE`` and an opaque ``next_cursor``.
- **actions**: the portal flows that can be opened now (each key is the
  ``flow`` value of ``POST /portal-sessions``; ``portal`` is the home page).
  A paused subscription can be cancelled but changes plan only once it resumes;
  ``subscription_pause`` needs flexible billing mode (Stripe pauses no other).
- **access**: may the user use the product now (``billing.core.access``: the
  decision table, its knobs and ``until``).
- **features**: the customer's active entitlements as Stripe's summary last listed
  them (lookup key, the name when known), by lookup key; empty for a user with none.
  What a plan includes; whether the user may use it *now* is ``access``'s answer.
- ``as_of``: the ``created`` time of the newest event reflected.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from billing.core.access import AccessPolicy, SubscriptionFacts, decide_access
from billing.core.domain import CURRENT_STATUSES, CurrentSubscription, FlowKind, SubscriptionItem
from billing.core.errors import InvalidCursor
from billing.core.subscriptions import pick_current_subscription
from billing.projection.records import (
    CustomerRecord,
    EntitlementsRecord,
    InvoiceRecord,
    Kind,
    PaymentMethodRecord,
    SubscriptionRecord,
)
from billing.read.settings import SnapshotSettings
from billing.store.keys import INVOICE_PREFIX
from billing.store.writes import UserItems

_NOT_ENDED = ("incomplete", "unpaid", "paused")
_CURSOR = re.compile(r"^\d{10}#[0-9a-f]{16}$")


# The views are dataclasses, not pydantic models: the snapshot function loads no pydantic
# (its cold start, ``make bench``). The resolvers' OpenAPI generation reads them alike.
@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    name: str | None
    lookup_key: str | None
    amount: int | None
    currency: str
    interval: str | None
    interval_count: int | None
    quantity: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentMethodView:
    type: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    expiring_soon: bool
    bank_name: str | None
    email: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceView:
    number: str | None
    date: datetime
    amount_due: int
    amount_paid: int
    currency: str
    status: str | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoicePage:
    data: list[InvoiceView]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionView:
    primary: bool
    status: str
    plan: Plan | None
    renews_at: datetime | None
    cancels_at: datetime | None
    trial_ends_at: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    paused: bool
    resumes_at: datetime | None
    created: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Actions:
    """Which ``POST /portal-sessions`` flows apply now."""

    portal: bool
    payment_method_update: bool
    subscription_cancel: bool
    subscription_update: bool
    subscription_update_confirm: bool
    customer_update: bool
    subscription_pause: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessView:
    """May the user use the product now; ``until``: when the answer may change by time alone."""

    state: str
    until: datetime | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureView:
    """A feature the user's plan includes (an active entitlement)."""

    lookup_key: str
    name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingSnapshot:
    """What a billing page shows for the signed-in user."""

    status: str
    access: AccessView
    features: list[FeatureView]
    plan: Plan | None
    renews_at: datetime | None
    cancels_at: datetime | None
    trial_ends_at: datetime | None
    paused: bool
    resumes_at: datetime | None
    payment_method: PaymentMethodView | None
    invoices: InvoicePage
    actions: Actions
    subscriptions: list[SubscriptionView]
    email: str | None
    as_of: datetime | None


def to_json(body: BillingSnapshot | InvoicePage) -> str:
    """The response body, byte for byte what pydantic's ``dump_json`` wrote before (the
    ETag is its hash): compact UTF-8 JSON, times as ISO 8601 in UTC (``...Z``)."""
    return json.dumps(asdict(body), separators=(",", ":"), ensure_ascii=False, default=_iso_time)


def _iso_time(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# --- cursors -------------------------------------------------------------------------------


def encode_cursor(sort_key: str) -> str:
    raw = sort_key.removeprefix(INVOICE_PREFIX).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The invoice sort key a cursor stands for; ``InvalidCursor`` if it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor("The cursor is not valid.") from None
    if not _CURSOR.match(raw):
        raise InvalidCursor("The cursor is not valid.")
    return INVOICE_PREFIX + raw


# --- composition ---------------------------------------------------------------------------


class CustomerState:
    """The linked customer's records, read out of the SNAPSHOT item."""

    def __init__(self, snapshot: Mapping[str, Any] | None, customer_id: str | None) -> None:
        self.customer_id = customer_id
        self.customer: CustomerRecord | None = None
        self.subscriptions: dict[str, SubscriptionRecord] = {}
        self.payment_methods: dict[str, PaymentMethodRecord] = {}
        self.entitlements: EntitlementsRecord | None = None
        self.versions: list[int] = []
        if snapshot is None or customer_id is None:
            return
        for name, slot in snapshot.items():
            kind, _, object_id = name.partition("#")
            if not object_id or not isinstance(slot, Mapping):
                continue
            record = slot["r"]
            if kind == Kind.CUSTOMER and object_id == customer_id:
                self.customer = CustomerRecord.from_stored(record)
            elif kind == Kind.SUBSCRIPTION and record.get("customer") == customer_id:
                self.subscriptions[object_id] = SubscriptionRecord.from_stored(record)
            elif kind == Kind.PAYMENT_METHOD and record.get("customer") == customer_id:
                self.payment_methods[object_id] = PaymentMethodRecord.from_stored(record)
            elif kind == Kind.ENTITLEMENTS and object_id == customer_id:
                self.entitlements = EntitlementsRecord.from_stored(record)
            else:
                continue
            self.versions.append(int(slot["v"]))

    def current(self) -> CurrentSubscription | None:
        """The subscription the portal flows act on."""
        return pick_current_subscription(
            current_subscription(sid, s) for sid, s in self.subscriptions.items()
        )

    def primary(self, current: CurrentSubscription | None) -> tuple[str, SubscriptionRecord] | None:
        """``current`` if there is one, else the newest subscription that has not ended."""
        if current is not None:
            return current.id, self.subscriptions[current.id]
        open_ones = [
            (s.created, sid) for sid, s in self.subscriptions.items() if s.status in _NOT_ENDED
        ]
        if not open_ones:
            return None
        _, sid = max(open_ones)
        return sid, self.subscriptions[sid]


def current_subscription(subscription_id: str, record: SubscriptionRecord) -> CurrentSubscription:
    return CurrentSubscription(
        id=subscription_id,
        status=record.status,
        created=record.created,
        items=tuple(
            SubscriptionItem(
                id=item.id, price_id=item.price, lookup_key=item.lookup_key, quantity=item.quantity
            )
            for item in record.items
        ),
        cancel_at_period_end=record.cancel_at_period_end,
        cancel_at=record.cancel_at,
        paused=record.paused,
        flexible_billing=record.billing_mode == "flexible",
    )


def compose(
    items: UserItems,
    *,
    portal_flows: Sequence[str],
    page_size: int,
    expiry_warning_days: int,
    now: float,
    access_policy: AccessPolicy = AccessPolicy(),  # noqa: B008 - frozen, shared safely
) -> BillingSnapshot:
    """The snapshot of one user from the items of one read."""
    customer_id = items.link.get("customer_id") if items.link else None
    state = CustomerState(items.snapshot, customer_id)
    current = state.current()
    primary = state.primary(current)
    primary_view = _subscription_view(primary[1], primary=True) if primary else None
    primary_id = primary[0] if primary else None
    # Only the linked customer's: none while the user has no customer (never had one, or
    # it was deleted in Stripe and its records are being purged).
    invoices, invoice_versions = invoice_page(
        items, page_size, keep=lambda invoice: invoice.customer == customer_id
    )
    versions = state.versions + invoice_versions
    customer = state.customer
    by_primary_first = sorted(state.subscriptions.items(), key=lambda e: e[0] != primary_id)
    access = decide_access(
        [access_facts(record) for _, record in by_primary_first], access_policy, now
    )
    return BillingSnapshot(
        status=primary_view.status if primary_view else "none",
        access=AccessView(
            state=access.state.value,
            until=_time(access.until) if access.until is not None else None,
            reason=access.reason,
        ),
        features=[
            FeatureView(lookup_key=grant.lookup_key, name=grant.name)
            for grant in (state.entitlements.grants if state.entitlements else ())
        ],
        plan=primary_view.plan if primary_view else None,
        renews_at=primary_view.renews_at if primary_view else None,
        cancels_at=primary_view.cancels_at if primary_view else None,
        trial_ends_at=primary_view.trial_ends_at if primary_view else None,
        paused=primary_view.paused if primary_view else False,
        resumes_at=primary_view.resumes_at if primary_view else None,
        payment_method=_payment_method(state, primary, expiry_warning_days, now),
        invoices=invoices,
        actions=actions_for(current, portal_flows),
        subscriptions=[
            _subscription_view(s, primary=sid == primary_id)
            for sid, s in sorted(
                state.subscriptions.items(),
                # Newest first; within one creation second the primary, then by id, so
                # the order never depends on the order the items were written in.
                key=lambda entry: (entry[1].created, entry[0] == primary_id, entry[0]),
                reverse=True,
            )
        ],
        email=customer.email if customer and not customer.deleted else None,
        as_of=_time(max(versions)) if versions else None,
    )


def compose_for(items: UserItems, settings: SnapshotSettings, *, now: float) -> BillingSnapshot:
    """The snapshot as the deployment serves it: ``compose`` with its settings. Both
    ``GET /billing`` and ``POST /billing/refresh`` answer with it."""
    return compose(
        items,
        portal_flows=settings.portal_flows,
        page_size=settings.invoice_page_size,
        expiry_warning_days=settings.card_expiry_warning_days,
        now=now,
        access_policy=settings.access_policy,
    )


def access_facts(record: SubscriptionRecord) -> SubscriptionFacts:
    """What the access policy reads of a stored subscription."""
    starts = [i.current_period_start for i in record.items if i.current_period_start]
    ends = [i.current_period_end for i in record.items if i.current_period_end]
    return SubscriptionFacts(
        status=record.status,
        created=record.created,
        cancel_at=record.cancel_at,
        trial_end=record.trial_end,
        collection_paused=record.paused and record.status != "paused",
        resumes_at=record.resumes_at,
        period_start=max(starts) if starts else None,
        period_end=min(ends) if ends else None,
    )


def invoice_page(
    items: UserItems, page_size: int, *, keep: Callable[[InvoiceRecord], bool] | None = None
) -> tuple[InvoicePage, list[int]]:
    """One page of visible invoices and the cursor after it; also their versions.

    Drafts, deleted drafts and invoices ``keep`` refuses are left out.
    """
    shown: list[tuple[str, InvoiceRecord, int]] = []
    for item in items.invoices:
        record = InvoiceRecord.from_stored(item["r"])
        if record.deleted or record.status in (None, "draft"):
            continue
        if keep is not None and not keep(record):
            continue
        if len(shown) == page_size:
            more_from: str | None = shown[-1][0]
            break
        shown.append((item["sk"], record, int(item["v"])))
    else:
        # The read stopped at its limit (drafts took room): continue after it.
        more_from = items.last_key if _is_invoice_key(items.last_key) else None
    page = InvoicePage(
        data=[_invoice_view(record) for _, record, _ in shown],
        next_cursor=encode_cursor(more_from) if more_from else None,
    )
    return page, [version for _, _, version in shown]


def _is_invoice_key(key: str | None) -> bool:
    return key is not None and key.startswith(INVOICE_PREFIX)


def _invoice_view(record: InvoiceRecord) -> InvoiceView:
    return InvoiceView(
        number=record.number,
        date=_time(record.created),
        amount_due=record.amount_due,
        amount_paid=record.amount_paid,
        currency=record.currency,
        status=record.status,
        hosted_invoice_url=record.hosted_invoice_url,
        invoice_pdf=record.invoice_pdf,
    )


def _subscription_view(record: SubscriptionRecord, *, primary: bool) -> SubscriptionView:
    first = record.items[0] if record.items else None
    plan = (
        Plan(
            name=first.product_name or first.nickname,
            lookup_key=first.lookup_key,
            amount=first.unit_amount,
            currency=first.currency,
            interval=first.interval,
            interval_count=first.interval_count,
            quantity=first.quantity,
        )
        if first
        else None
    )
    period_ends = [i.current_period_end for i in record.items if i.current_period_end]
    scheduled_end = record.cancel_at
    renews = (
        record.status in CURRENT_STATUSES
        and scheduled_end is None
        and not record.paused
        and period_ends
    )
    return SubscriptionView(
        primary=primary,
        status=record.status,
        plan=plan,
        renews_at=_time(min(period_ends)) if renews else None,
        cancels_at=_time(scheduled_end) if scheduled_end and not record.ended_at else None,
        trial_ends_at=_time(record.trial_end)
        if record.trial_end and record.status == "trialing"
        else None,
        canceled_at=_time(record.canceled_at) if record.canceled_at else None,
        ended_at=_time(record.ended_at) if record.ended_at else None,
        paused=record.paused,
        resumes_at=_time(record.resumes_at) if record.paused and record.resumes_at else None,
        created=_time(record.created),
    )


def _payment_method(
    state: CustomerState,
    primary: tuple[str, SubscriptionRecord] | None,
    warning_days: int,
    now: float,
) -> PaymentMethodView | None:
    candidates = [
        state.customer.default_payment_method if state.customer else None,
        primary[1].default_payment_method if primary else None,
    ]
    for method_id in candidates:
        method = state.payment_methods.get(method_id or "")
        if method is not None:
            return PaymentMethodView(
                type=method.type,
                brand=method.brand,
                last4=method.last4,
                exp_month=method.exp_month,
                exp_year=method.exp_year,
                expiring_soon=method.type == "card" and _expires_within(method, warning_days, now),
                bank_name=method.bank_name,
                email=method.email,
            )
    return None


def _expires_within(method: PaymentMethodRecord, days: int, now: float) -> bool:
    if method.exp_month is None or method.exp_year is None:
        return False
    last_day = calendar.monthrange(method.exp_year, method.exp_month)[1]
    end = datetime(method.exp_year, method.exp_month, last_day, 23, 59, 59, tzinfo=UTC)
    return end.timestamp() < now + days * 86400


def actions_for(current: CurrentSubscription | None, portal_flows: Iterable[str]) -> Actions:
    """The ``POST /portal-sessions`` flows that apply to ``current`` under the offered ones."""
    offered = set(portal_flows)
    cancellable = current is not None and not current.is_cancelling
    single_item = current is not None and len(current.items) == 1
    paused = current is not None and current.paused
    change = single_item and not paused and FlowKind.SUBSCRIPTION_UPDATE in offered
    pausable = (
        cancellable
        and not paused
        and current is not None
        and current.flexible_billing
        and FlowKind.SUBSCRIPTION_PAUSE in offered
    )
    return Actions(
        portal=True,
        payment_method_update=FlowKind.PAYMENT_METHOD_UPDATE in offered,
        subscription_cancel=cancellable and FlowKind.SUBSCRIPTION_CANCEL in offered,
        subscription_update=change,
        subscription_update_confirm=change,
        customer_update=FlowKind.CUSTOMER_UPDATE in offered,
        subscription_pause=pausable,
    )


def _time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
