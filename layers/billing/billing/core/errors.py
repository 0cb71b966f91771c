"""Domain errors, each carrying the HTTP status and stable error code it maps to.

Handlers turn any ``BillingError`` into ``{"error": {"code", "message"}}`` with
``status``; messages are written for the API's caller and never contain Stripe
object ids, keys or card data.
"""

from __future__ import annotations

from typing import ClassVar


class BillingError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(BillingError):
    status = 401
    code = "unauthenticated"


class InvalidRequest(BillingError):
    status = 422
    code = "invalid_request"


class MalformedBody(BillingError):
    status = 400
    code = "malformed_body"


class ReturnUrlNotAllowed(InvalidRequest):
    code = "return_url_not_allowed"


class UnknownPlan(InvalidRequest):
    code = "unknown_plan"


class PlanNotOffered(InvalidRequest):
    """A plan that exists but is not among the deployment's ``PlanLookupKeys``."""

    code = "plan_not_offered"


class UnknownPromotionCode(InvalidRequest):
    code = "unknown_promotion_code"


class FlowRejected(InvalidRequest):
    """Stripe refused the flow for this portal configuration (e.g. a plan it does not offer)."""

    code = "flow_not_available"


class Conflict(BillingError):
    status = 409
    code = "conflict"


class NoSubscription(Conflict):
    code = "no_subscription"


class AlreadySubscribed(Conflict):
    """A first subscription for a user who has one: plan changes go through the portal."""

    code = "already_subscribed"


class CheckoutInProgress(Conflict):
    """Another request opened a different checkout for the same user at the same moment."""

    code = "checkout_in_progress"


class AlreadyOnPlan(Conflict):
    code = "already_on_plan"


class AlreadyCancelling(Conflict):
    code = "already_cancelling"


class AlreadyPaused(Conflict):
    code = "already_paused"


class UnsupportedSubscription(Conflict):
    code = "unsupported_subscription"


class RateLimited(BillingError):
    """Too many requests of one user; ``retry_after_seconds`` says when to try again."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class StripeUnavailable(BillingError):
    """Stripe could not be reached or asked us to slow down: safe to retry."""

    status = 503
    code = "stripe_unavailable"
    retry_after_seconds: ClassVar[int] = 5


class StripeFailed(BillingError):
    """Stripe answered with an error we cannot fix by retrying at once."""

    status = 502
    code = "stripe_error"
    retry_after_seconds: ClassVar[int] = 30


class InvalidSignature(BillingError):
    """A webhook whose ``Stripe-Signature`` is missing, wrong or too old."""

    status = 400
    code = "invalid_signature"


class InvalidCursor(BillingError):
    status = 400
    code = "invalid_cursor"


class SecretsUnavailable(BillingError):
    """Secrets Manager could not be read (down, throttling, or the secret is missing)."""

    status = 503
    code = "secrets_unavailable"
    retry_after_seconds: ClassVar[int] = 5


class StorageBusy(BillingError):
    """DynamoDB kept refusing a write (contention or throttling): safe to retry."""

    status = 503
    code = "storage_unavailable"
    retry_after_seconds: ClassVar[int] = 2


class CustomerRetired(Conflict):
    """The customer was deleted in Stripe and can never be linked again."""

    code = "customer_retired"


class CustomerMissing(StripeFailed):
    """Stripe answered "No such customer" for a linked customer: deleted in Stripe, or
    the key belongs to another account. The link is retired and the request retried."""

    code = "customer_missing"
