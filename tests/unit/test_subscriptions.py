"""The rule for the subscription a user manages, and request-body validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from billing.api.identity import user_from_claims
from billing.core.domain import CurrentSubscription, SubscriptionItem
from billing.core.errors import Unauthenticated
from billing.core.subscriptions import pick_current_subscription
from billing.portal.models import PortalSessionRequest

ITEM = (SubscriptionItem(id="si", price_id="price", quantity=1),)


def sub(sub_id: str, status: str, created: int) -> CurrentSubscription:
    return CurrentSubscription(id=sub_id, status=status, created=created, items=ITEM)


def test_active_wins_over_trialing_and_past_due_and_newest_wins_within_a_status() -> None:
    subs = [
        sub("a", "past_due", 9),
        sub("b", "trialing", 8),
        sub("c", "active", 1),
        sub("d", "active", 2),
    ]
    assert pick_current_subscription(subs) == subs[3]


def test_canceled_incomplete_and_paused_subscriptions_are_not_current() -> None:
    subs = [sub("a", "canceled", 9), sub("b", "incomplete", 8), sub("c", "paused", 7)]
    assert pick_current_subscription(subs) is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["active", "trialing", "past_due", "canceled", "unpaid"]),
            st.integers(0, 5),
        ),
        max_size=6,
    )
)
def test_the_pick_does_not_depend_on_list_order(specs: list[tuple[str, int]]) -> None:
    subs = [sub(f"sub_{i}", status, created) for i, (status, created) in enumerate(specs)]
    assert pick_current_subscription(subs) == pick_current_subscription(reversed(subs))


@pytest.mark.parametrize(
    "body",
    [
        {"plan": "pro"},  # plan without the confirm flow
        {"flow": "subscription_cancel", "quantity": 2},
        {"flow": "subscription_update_confirm"},  # nothing to confirm
        {"after_completion": "redirect"},  # without a flow
        {"flow": "delete_everything"},
        {"flow": "subscription_update_confirm", "plan": "bad key!"},
        {"flow": "subscription_update_confirm", "quantity": 0},
        {"locale": "xx-YY"},
        {"customer": "cus_other"},  # client-sent ids are refused, not ignored silently
        {"subscription": "sub_other"},
    ],
)
def test_invalid_bodies_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PortalSessionRequest.model_validate(body)


def test_identity_comes_from_the_sub_claim_only() -> None:
    user = user_from_claims({"sub": "user-1", "email": "a@example.com", "customer": "cus_x"})
    assert (user.id, user.email) == ("user-1", "a@example.com")
    for claims in (None, {}, {"sub": ""}, {"sub": "  "}, {"sub": 42}, {"sub": "a\nb"}):
        with pytest.raises(Unauthenticated):
            user_from_claims(claims)
