"""Pure builders of Stripe ``flow_data`` for portal deep links.

Inputs are what the product already knows (the user's current subscription from
stored state, a catalog price resolved from a lookup key); nothing here calls
Stripe. A request that cannot work for this subscription raises a ``Conflict``
before any Stripe call is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from billing.core.domain import AfterCompletion, CurrentSubscription, FlowKind, PlanChange
from billing.core.errors import (
    AlreadyCancelling,
    AlreadyOnPlan,
    AlreadyPaused,
    InvalidRequest,
    NoSubscription,
    UnsupportedSubscription,
)

if TYPE_CHECKING:  # typing only: keeps this module importable without stripe
    from stripe.params.billing_portal import (
        SessionCreateParamsFlowData,
        SessionCreateParamsFlowDataAfterCompletion,
        SessionCreateParamsFlowDataSubscriptionCancel,
        SessionCreateParamsFlowDataSubscriptionUpdateConfirm,
        SessionCreateParamsFlowDataSubscriptionUpdateConfirmItem,
    )

DEFAULT_CONFIRMATION_MESSAGE = "All done. You can close this page."


def build_after_completion(
    choice: AfterCompletion, *, return_url: str, confirmation_message: str | None = None
) -> SessionCreateParamsFlowDataAfterCompletion:
    """``flow_data.after_completion`` for one of the three Stripe behaviours."""
    match choice:
        case AfterCompletion.REDIRECT:
            return {"type": "redirect", "redirect": {"return_url": return_url}}
        case AfterCompletion.HOSTED_CONFIRMATION:
            message = confirmation_message or DEFAULT_CONFIRMATION_MESSAGE
            return {
                "type": "hosted_confirmation",
                "hosted_confirmation": {"custom_message": message},
            }
        case AfterCompletion.PORTAL_HOMEPAGE:
            return {"type": "portal_homepage"}


def build_flow_data(
    kind: FlowKind,
    *,
    subscription: CurrentSubscription | None,
    return_url: str,
    change: PlanChange | None = None,
    after_completion: AfterCompletion = AfterCompletion.REDIRECT,
    retention_coupon: str | None = None,
) -> SessionCreateParamsFlowData:
    """The ``flow_data`` that opens the portal on ``kind`` for this subscription.

    ``retention_coupon``: offered in the cancel flow before the customer confirms.
    Raises ``NoSubscription`` when the flow needs one and there is none,
    ``AlreadyCancelling`` for a cancel or pause of a subscription already set to end,
    ``AlreadyPaused`` for a pause of a paused one, ``AlreadyOnPlan`` for a confirm that
    would change nothing, and ``UnsupportedSubscription`` for a confirm on a multi-item
    subscription or a pause outside flexible billing mode.
    """
    after = build_after_completion(after_completion, return_url=return_url)
    if kind is FlowKind.PAYMENT_METHOD_UPDATE:
        return {"type": "payment_method_update", "after_completion": after}
    if kind is FlowKind.CUSTOMER_UPDATE:
        return {"type": "customer_update", "after_completion": after}
    if subscription is None:
        raise NoSubscription(
            f"The {kind.value} flow needs an active subscription, and there is none."
        )
    match kind:
        case FlowKind.SUBSCRIPTION_CANCEL:
            return {
                "type": "subscription_cancel",
                "subscription_cancel": _cancel_section(subscription, retention_coupon),
                "after_completion": after,
            }
        case FlowKind.SUBSCRIPTION_PAUSE:
            _check_pausable(subscription)
            return {
                "type": "subscription_pause",
                "subscription_pause": {"subscription": subscription.id},
                "after_completion": after,
            }
        case FlowKind.SUBSCRIPTION_UPDATE:
            return {
                "type": "subscription_update",
                "subscription_update": {"subscription": subscription.id},
                "after_completion": after,
            }
        case FlowKind.SUBSCRIPTION_UPDATE_CONFIRM:
            return {
                "type": "subscription_update_confirm",
                "subscription_update_confirm": _confirm_section(subscription, change),
                "after_completion": after,
            }
    raise InvalidRequest(f"Unknown flow {kind!s}.")  # pragma: no cover - exhaustive above


def _cancel_section(
    subscription: CurrentSubscription, retention_coupon: str | None
) -> SessionCreateParamsFlowDataSubscriptionCancel:
    if subscription.is_cancelling:
        raise AlreadyCancelling("The subscription is already set to be canceled.")
    cancel: SessionCreateParamsFlowDataSubscriptionCancel = {"subscription": subscription.id}
    if retention_coupon:
        cancel["retention"] = {"type": "coupon_offer", "coupon_offer": {"coupon": retention_coupon}}
    return cancel


def _check_pausable(subscription: CurrentSubscription) -> None:
    if subscription.paused:
        raise AlreadyPaused("The subscription is already paused.")
    if subscription.is_cancelling:
        raise AlreadyCancelling("The subscription is set to be canceled.")
    if not subscription.flexible_billing:
        raise UnsupportedSubscription("Only subscriptions in flexible billing mode can be paused.")


def _confirm_section(
    subscription: CurrentSubscription, change: PlanChange | None
) -> SessionCreateParamsFlowDataSubscriptionUpdateConfirm:
    plan = change or PlanChange()
    confirm: SessionCreateParamsFlowDataSubscriptionUpdateConfirm = {
        "subscription": subscription.id,
        "items": [_confirm_item(subscription, plan)],
    }
    if plan.promotion_code_id:
        confirm["discounts"] = [{"promotion_code": plan.promotion_code_id}]
    return confirm


def _confirm_item(
    subscription: CurrentSubscription, change: PlanChange
) -> SessionCreateParamsFlowDataSubscriptionUpdateConfirmItem:
    if len(subscription.items) != 1:
        raise UnsupportedSubscription(
            "Plan changes through the portal need a subscription with exactly one item."
        )
    (item,) = subscription.items
    price_id = change.price.price_id if change.price else item.price_id
    quantity = change.quantity if change.quantity is not None else item.quantity
    if price_id == item.price_id and quantity == item.quantity:
        raise AlreadyOnPlan("The subscription is already on this plan and quantity.")
    confirm_item: SessionCreateParamsFlowDataSubscriptionUpdateConfirmItem = {
        "id": item.id,
        "price": price_id,
    }
    if change.quantity is not None:
        confirm_item["quantity"] = change.quantity
    return confirm_item
