"""Checkout for a user's first subscription: one open, payable session per user.

``create_checkout_session`` checks what can fail without Stripe first (the return
URL, whether the plan is sold here), then the price (cached in DynamoDB after the
first lookup) and the customer (created on first use, as for portal sessions), then
whether the user already has a current subscription in the projection (``409
already_subscribed``: plan changes go through the portal). Steady state: one Stripe
call, the session's creation.

**A double click cannot make the user pay twice.** The open session is remembered
per user (``CHECKOUT#<user>``, until it expires). The same request again gets the
same session back (no Stripe call); a different one (another plan, quantity,
return page) expires the remembered session before creating its own, so only the
newest can be paid. Two identical requests at the same moment send Stripe the same
idempotency key (within the same hour, while the user's subscriptions are unchanged) and
get one session; two different ones race for the remembered slot with a conditional
write, and the loser expires the session it made and answers ``409
checkout_in_progress``. When a session ends (paid, failed, expired), its
``checkout.session.*`` webhook forgets it (``billing.projection.registry.Fold.END_CHECKOUT``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import stripe
from aws_lambda_powertools import Logger

from billing.api.identity import User
from billing.core.errors import AlreadySubscribed, CheckoutInProgress, PlanNotOffered
from billing.portal.models import CheckoutSessionRequest
from billing.portal.sessions import PortalService
from billing.read.snapshot import CustomerState
from billing.store.table import OpenCheckout
from billing.stripe_api.client import idempotency_key, stripe_errors

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams

logger = Logger(child=True)

# A remembered session this close to its expiry is replaced rather than handed out.
REUSE_MARGIN_SECONDS = 10 * 60


@dataclass(frozen=True, slots=True)
class CheckoutAnswer:
    url: str | None
    client_secret: str | None


@dataclass(frozen=True)
class CheckoutService:
    """Checkout sessions, over the portal service's customers, prices and settings."""

    portal: PortalService

    def create_checkout_session(
        self, user: User, request: CheckoutSessionRequest
    ) -> CheckoutAnswer:
        settings = self.portal.settings
        return_url = settings.return_url_policy.resolve(
            request.return_url, settings.default_return_url
        )
        if request.plan not in settings.plan_lookup_keys:
            raise PlanNotOffered(f"The plan {request.plan!r} is not offered here.")
        price = self.portal.price_for_lookup_key(request.plan)
        fingerprint = _fingerprint(
            price.price_id, str(request.quantity), request.ui_mode, return_url, request.locale or ""
        )

        def open_checkout(customer_id: str) -> CheckoutAnswer:
            store = self.portal.store
            state = CustomerState(store.snapshot_records(user.id), customer_id)
            if state.current() is not None:
                raise AlreadySubscribed(
                    "You already have a subscription; change it in the billing portal."
                )
            now = int(time.time())
            remembered = store.open_checkout(user.id, now=now)
            if remembered is not None:
                if (
                    remembered.fingerprint == fingerprint
                    and remembered.expires_at > now + REUSE_MARGIN_SECONDS
                ):
                    return CheckoutAnswer(remembered.url, remembered.client_secret)
                self._expire(remembered.session_id)
            params = self._params(user, customer_id, price.price_id, request, return_url)
            key = idempotency_key(
                "checkout",
                user.id,
                customer_id,
                fingerprint,
                remembered.session_id if remembered else "",
                # A new attempt once the user's subscriptions changed (the last session
                # was paid, then its subscription ended) is a new request to Stripe.
                ",".join(sorted(state.subscriptions)),
                # Stripe replays a key for at least a day, as long as a session lives:
                # the hour keeps a request that finds nothing remembered (its session
                # expired and was forgotten) from getting that expired session back.
                str(now // 3600),
            )
            with stripe_errors("checkout.sessions.create"):
                try:
                    session = self.portal.stripe.v1.checkout.sessions.create(
                        params=params, options={"idempotency_key": key}
                    )
                except stripe.IdempotencyError:
                    # The same request is still running at Stripe (a double click).
                    raise CheckoutInProgress(
                        "The same checkout is being opened by another request; retry."
                    ) from None
            opened = OpenCheckout(
                session_id=session.id,
                fingerprint=fingerprint,
                url=session.url,
                client_secret=session.client_secret,
                expires_at=session.expires_at,
            )
            previous = remembered.session_id if remembered else None
            if not store.remember_checkout(user.id, opened, replacing=previous):
                # Another request opened a different session meanwhile: keep one payable.
                if previous != session.id:
                    self._expire(session.id)
                raise CheckoutInProgress("Another checkout was started at the same moment; retry.")
            return CheckoutAnswer(session.url, session.client_secret)

        return self.portal.with_customer(user, open_checkout)

    def _params(
        self,
        user: User,
        customer_id: str,
        price_id: str,
        request: CheckoutSessionRequest,
        return_url: str,
    ) -> SessionCreateParams:
        settings = self.portal.settings
        metadata = {settings.customer_user_metadata_key: user.id}
        params: SessionCreateParams = {
            "mode": "subscription",
            "customer": customer_id,
            "client_reference_id": user.id,
            "line_items": [{"price": price_id, "quantity": request.quantity}],
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
            "billing_address_collection": settings.checkout_billing_address,
        }
        if request.ui_mode == "embedded":
            params["ui_mode"] = "embedded_page"
            params["return_url"] = with_query(return_url, checkout="success")
        else:
            params["success_url"] = with_query(return_url, checkout="success")
            params["cancel_url"] = with_query(return_url, checkout="cancel")
        if settings.checkout_trial_days:
            params["subscription_data"]["trial_period_days"] = settings.checkout_trial_days
            if not settings.checkout_trial_requires_card:
                # No card asked up front; a trial that ends without one pauses (access:
                # denied, reason paused) until the customer adds a card.
                params["payment_method_collection"] = "if_required"
                params["subscription_data"]["trial_settings"] = {
                    "end_behavior": {"missing_payment_method": "pause"}
                }
        if settings.checkout_promotion_codes:
            params["allow_promotion_codes"] = True
        if settings.checkout_automatic_tax:
            params["automatic_tax"] = {"enabled": True}
            params["customer_update"] = {"address": "auto", "name": "auto"}
        if settings.checkout_tax_id_collection:
            params["tax_id_collection"] = {"enabled": True}
        if request.locale is not None:
            params["locale"] = request.locale
        return params

    def _expire(self, session_id: str) -> None:
        """Make a session unpayable; one already completed means the user has subscribed.

        One call while the session is open (the usual case); Stripe refuses to expire
        a session that is not, and only then is it read to learn whether it was paid.
        """
        client = self.portal.stripe
        with stripe_errors("checkout.sessions.expire"):
            try:
                client.v1.checkout.sessions.expire(session_id)
                return
            except stripe.InvalidRequestError as error:
                if error.code == "resource_missing":
                    return  # nothing left to pay
            session = client.v1.checkout.sessions.retrieve(session_id)
        if session.status == "complete":
            raise AlreadySubscribed("Your subscription is being set up; it shows in a moment.")


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to (or replaced in) its query string."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
