"""Flow builders: Stripe flow_data from the stored subscription, and the conflicts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from billing.core.domain import (
    AfterCompletion,
    CatalogPrice,
    CurrentSubscription,
    FlowKind,
    PlanChange,
    SubscriptionItem,
)
from billing.core.errors import (
    AlreadyCancelling,
    AlreadyOnPlan,
    NoSubscription,
    UnsupportedSubscription,
)
from billing.portal.flows import build_after_completion, build_flow_data

RETURN = "https://app.example.com/account"
SUB = CurrentSubscription(
    id="sub_1",
    status="active",
    created=1,
    items=(SubscriptionItem(id="si_1", price_id="price_basic", lookup_key="basic", quantity=1),),
)
PRO = CatalogPrice(
    price_id="price_pro", lookup_key="pro", product_id="prod_1", active=True, currency="usd"
)


def test_payment_method_update_needs_no_subscription() -> None:
    flow = build_flow_data(FlowKind.PAYMENT_METHOD_UPDATE, subscription=None, return_url=RETURN)
    assert flow == {
        "type": "payment_method_update",
        "after_completion": {"type": "redirect", "redirect": {"return_url": RETURN}},
    }


def test_cancel_targets_the_current_subscription() -> None:
    flow = build_flow_data(FlowKind.SUBSCRIPTION_CANCEL, subscription=SUB, return_url=RETURN)
    assert flow["type"] == "subscription_cancel"
    assert flow["subscription_cancel"] == {"subscription": "sub_1"}


def test_update_targets_the_current_subscription() -> None:
    flow = build_flow_data(FlowKind.SUBSCRIPTION_UPDATE, subscription=SUB, return_url=RETURN)
    assert flow["subscription_update"] == {"subscription": "sub_1"}


def test_confirm_uses_the_stored_item_id_and_the_resolved_price() -> None:
    flow = build_flow_data(
        FlowKind.SUBSCRIPTION_UPDATE_CONFIRM,
        subscription=SUB,
        return_url=RETURN,
        change=PlanChange(price=PRO),
    )
    assert flow["subscription_update_confirm"] == {
        "subscription": "sub_1",
        "items": [{"id": "si_1", "price": "price_pro"}],
    }


def test_confirm_of_a_quantity_keeps_the_price() -> None:
    flow = build_flow_data(
        FlowKind.SUBSCRIPTION_UPDATE_CONFIRM,
        subscription=SUB,
        return_url=RETURN,
        change=PlanChange(quantity=5),
    )
    assert flow["subscription_update_confirm"]["items"] == [
        {"id": "si_1", "price": "price_basic", "quantity": 5}
    ]


@pytest.mark.parametrize(
    "kind",
    [
        FlowKind.SUBSCRIPTION_CANCEL,
        FlowKind.SUBSCRIPTION_UPDATE,
        FlowKind.SUBSCRIPTION_UPDATE_CONFIRM,
    ],
)
def test_subscription_flows_without_a_subscription_conflict(kind: FlowKind) -> None:
    with pytest.raises(NoSubscription):
        build_flow_data(kind, subscription=None, return_url=RETURN, change=PlanChange(price=PRO))


@pytest.mark.parametrize(
    "subscription",
    [
        replace(SUB, cancel_at_period_end=True, cancel_at=2),
        replace(SUB, cancel_at=1_900_000_000),
    ],
)
def test_cancel_of_a_subscription_already_ending_conflicts(
    subscription: CurrentSubscription,
) -> None:
    with pytest.raises(AlreadyCancelling):
        build_flow_data(FlowKind.SUBSCRIPTION_CANCEL, subscription=subscription, return_url=RETURN)


@pytest.mark.parametrize(
    "change",
    [
        PlanChange(price=replace(PRO, price_id="price_basic")),
        PlanChange(quantity=1),
        PlanChange(price=replace(PRO, price_id="price_basic"), quantity=1),
    ],
)
def test_confirm_to_the_plan_already_held_conflicts(change: PlanChange) -> None:
    with pytest.raises(AlreadyOnPlan):
        build_flow_data(
            FlowKind.SUBSCRIPTION_UPDATE_CONFIRM, subscription=SUB, return_url=RETURN, change=change
        )


def test_confirm_on_a_multi_item_subscription_conflicts() -> None:
    two_items = replace(
        SUB, items=(*SUB.items, SubscriptionItem(id="si_2", price_id="price_addon", quantity=1))
    )
    with pytest.raises(UnsupportedSubscription):
        build_flow_data(
            FlowKind.SUBSCRIPTION_UPDATE_CONFIRM,
            subscription=two_items,
            return_url=RETURN,
            change=PlanChange(price=PRO),
        )


def test_after_completion_choices() -> None:
    assert build_after_completion(AfterCompletion.PORTAL_HOMEPAGE, return_url=RETURN) == {
        "type": "portal_homepage"
    }
    assert build_after_completion(
        AfterCompletion.HOSTED_CONFIRMATION, return_url=RETURN, confirmation_message="Thanks!"
    ) == {"type": "hosted_confirmation", "hosted_confirmation": {"custom_message": "Thanks!"}}
    assert build_after_completion(AfterCompletion.REDIRECT, return_url=RETURN) == {
        "type": "redirect",
        "redirect": {"return_url": RETURN},
    }


def test_after_completion_choice_reaches_the_flow() -> None:
    flow = build_flow_data(
        FlowKind.SUBSCRIPTION_CANCEL,
        subscription=SUB,
        return_url=RETURN,
        after_completion=AfterCompletion.HOSTED_CONFIRMATION,
    )
    assert flow["after_completion"]["type"] == "hosted_confirmation"
