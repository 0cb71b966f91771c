"""Portal sessions and SetupIntents for a signed-in user: the session function's domain.

Order of work in ``create_portal_session`` is chosen so that a request that
will fail changes nothing: the return URL and the plan are checked first, a
flow that needs a subscription never creates a customer, and the Stripe
customer is created (idempotently) only when the session can be opened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from billing.api.identity import User
from billing.aws.settings import Settings
from billing.core.domain import AfterCompletion, CatalogPrice, CurrentSubscription, PlanChange
from billing.core.errors import (
    BillingError,
    Conflict,
    CustomerMissing,
    CustomerRetired,
    NoSubscription,
    UnknownPlan,
    UnknownPromotionCode,
)
from billing.core.subscriptions import pick_current_subscription, subscription_from_stripe
from billing.portal.flows import build_flow_data
from billing.portal.models import PortalSessionRequest
from billing.projection.fold import price_record
from billing.read.snapshot import CustomerState
from billing.store.keys import MISSING_IN_STRIPE
from billing.store.table import BillingStore
from billing.stripe_api.client import idempotency_key, stripe_errors

if TYPE_CHECKING:
    import stripe
    from stripe.params.billing_portal import SessionCreateParams

logger = Logger(child=True)

_CREATE_ATTEMPTS = 3

# A price fetched from Stripe on a cache miss is trusted this long; price.*
# webhooks keep cached prices current in between.
CATALOG_MISS_TTL_SECONDS = 24 * 3600

# (user id, customer id) -> the subscription the portal flows act on.
SubscriptionLookup = Callable[[str, str], CurrentSubscription | None]


@dataclass(frozen=True)
class PortalService:
    """Everything the session function does, over explicit dependencies."""

    settings: Settings
    store: BillingStore
    stripe: stripe.StripeClient
    current_subscription: SubscriptionLookup

    def create_portal_session(self, user: User, request: PortalSessionRequest) -> str:
        """Open a billing-portal session for ``user``; returns its short-lived URL."""
        return_url = self.settings.return_url_policy.resolve(
            request.return_url, self.settings.default_return_url
        )
        change = None
        if request.plan is not None or request.quantity is not None:
            price = self.price_for_lookup_key(request.plan) if request.plan else None
            promotion = (
                self.promotion_code_id(request.promotion_code) if request.promotion_code else None
            )
            change = PlanChange(price=price, quantity=request.quantity, promotion_code_id=promotion)
        needs_subscription = request.flow is not None and request.flow.needs_subscription

        def open_session(customer_id: str) -> str:
            params: SessionCreateParams = {"return_url": return_url, "customer": customer_id}
            if request.flow is not None:
                subscription = (
                    self.current_subscription(user.id, customer_id) if needs_subscription else None
                )
                params["flow_data"] = build_flow_data(
                    request.flow,
                    subscription=subscription,
                    return_url=return_url,
                    change=change,
                    after_completion=request.after_completion or AfterCompletion.REDIRECT,
                    retention_coupon=self.settings.cancel_retention_coupon,
                )
            if self.settings.portal_session_recovery:
                params["after_expiration"] = {"type": "customer_login"}
            if self.settings.portal_configuration_id:
                params["configuration"] = self.settings.portal_configuration_id
            if request.locale is not None:
                params["locale"] = request.locale
            with stripe_errors("billing_portal.sessions.create"):
                session = self.stripe.v1.billing_portal.sessions.create(params=params)
            return session.url

        if needs_subscription and request.flow is not None:
            flow = request.flow
            return self.with_customer(
                user,
                open_session,
                missing=lambda: NoSubscription(f"The {flow} flow needs a subscription."),
            )
        return self.with_customer(user, open_session)

    def create_setup_intent(self, user: User) -> str:
        """A SetupIntent for saving a new card with Stripe Elements; returns its client secret.

        ``metadata.purpose`` marks it so the webhook projection makes the
        confirmed payment method the customer's default.
        """

        def create(customer_id: str) -> str:
            params: stripe.params.SetupIntentCreateParams = {
                "customer": customer_id,
                "usage": "off_session",
                "automatic_payment_methods": {"enabled": True},
                "metadata": {
                    self.settings.customer_user_metadata_key: user.id,
                    "purpose": "default_payment_method",
                },
            }
            with stripe_errors("setup_intents.create"):
                intent = self.stripe.v1.setup_intents.create(params=params)
            if not intent.client_secret:  # pragma: no cover - Stripe always returns one on create
                raise RuntimeError("SetupIntent without client_secret")
            return intent.client_secret

        return self.with_customer(user, create)

    def with_customer[T](
        self,
        user: User,
        call: Callable[[str], T],
        *,
        missing: Callable[[], BillingError] | None = None,
    ) -> T:
        """``call`` with the user's customer, healing a customer Stripe no longer has.

        Without ``missing`` the customer is created on first use; with it, a user
        without a customer gets that error instead (nothing is created). When Stripe
        answers "No such customer" (deleted before its ``customer.deleted`` event
        arrived, or a key of another account), the link is retired and ``call`` runs
        once more, with a fresh customer or the ``missing`` error.
        """
        for attempt in range(2):
            if missing is None:
                customer_id = self.ensure_customer(user)
            elif (linked := self.store.customer_for_user(user.id)) is not None:
                customer_id = linked
            else:
                raise missing()
            try:
                return call(customer_id)
            except CustomerMissing:
                if attempt:
                    raise
                logger.warning("The linked customer is gone from Stripe; the link is retired")
                self.store.retire_link(user.id, customer_id, reason=MISSING_IN_STRIPE)
        raise AssertionError("unreachable")  # pragma: no cover

    def ensure_customer(self, user: User) -> str:
        """The user's Stripe customer, created and linked on first use.

        Creation carries an idempotency key derived from the user, the email and
        the link generation (how many of the user's customers were retired), so
        concurrent first requests get the same customer from Stripe, and a user
        whose customer was deleted gets a new one, not Stripe's replay of the old
        one; the conditional link write then makes exactly one of them stick.
        """
        for _ in range(_CREATE_ATTEMPTS):
            state = self.store.link_state(user.id)
            if state.customer_id is not None:
                return state.customer_id
            metadata_key = self.settings.customer_user_metadata_key
            params: stripe.params.CustomerCreateParams = {"metadata": {metadata_key: user.id}}
            if user.email:
                params["email"] = user.email
            parts = [user.id, user.email or ""]
            if state.generation:
                parts.append(str(state.generation))
            with stripe_errors("customers.create"):
                customer = self.stripe.v1.customers.create(
                    params=params,
                    options={"idempotency_key": idempotency_key("customer", *parts)},
                )
            try:
                return self.store.link_customer(user.id, customer.id)
            except CustomerRetired:
                # The key was used before a deletion, and Stripe replayed that creation:
                # move the generation on so the next attempt makes a new customer.
                self.store.skip_generation(user.id, state.generation)
        raise Conflict("The billing account is being set up by another request; retry.")

    def promotion_code_id(self, code: str) -> str:
        """Stripe's id of the active promotion code a customer typed (one Stripe call)."""
        with stripe_errors("promotion_codes.list"):
            found = self.stripe.v1.promotion_codes.list(
                params={"code": code, "active": True, "limit": 1}
            ).data
        if not found:
            raise UnknownPromotionCode("That promotion code is not valid.")
        return found[0].id

    def price_for_lookup_key(self, lookup_key: str) -> CatalogPrice:
        """The active recurring price named ``lookup_key``, from the cache or Stripe once."""
        price = self.store.catalog_price(lookup_key)
        if price is None:
            with stripe_errors("prices.list"):
                found = self.stripe.v1.prices.list(
                    params={"lookup_keys": [lookup_key], "active": True, "limit": 1}
                ).data
            if not found or found[0].recurring is None:
                raise UnknownPlan(f"There is no plan named {lookup_key!r}.")
            price = catalog_price_from_stripe(found[0])
            expires = int(time.time()) + CATALOG_MISS_TTL_SECONDS
            self.store.save_catalog_price(price, expires_at=expires)
        if not price.active:
            raise UnknownPlan(f"The plan {lookup_key!r} is no longer offered.")
        return price


def catalog_price_from_stripe(price: stripe.Price) -> CatalogPrice:
    return price_record(price.to_dict()).catalog_price(price.id)


def stripe_subscription_lookup(client: stripe.StripeClient) -> SubscriptionLookup:
    """Current subscription read live from Stripe (one list call)."""

    def lookup(_user_id: str, customer_id: str) -> CurrentSubscription | None:
        with stripe_errors("subscriptions.list"):
            page = client.v1.subscriptions.list(params={"customer": customer_id, "limit": 100})
        return pick_current_subscription(subscription_from_stripe(s.to_dict()) for s in page.data)

    return lookup


def projected_subscription_lookup(
    store: BillingStore, fallback: SubscriptionLookup
) -> SubscriptionLookup:
    """Current subscription from the webhook projection (one DynamoDB read, no Stripe call).

    When the projection shows no current subscription, ``fallback`` (Stripe)
    is asked before answering 409: the webhook of a subscription created
    seconds ago may still be on its way.
    """

    def lookup(user_id: str, customer_id: str) -> CurrentSubscription | None:
        state = CustomerState(store.snapshot_records(user_id), customer_id)
        return state.current() or fallback(user_id, customer_id)

    return lookup
