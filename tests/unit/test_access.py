"""The access policy: its decision table row by row, and the properties that hold for
every state, time and knob (hypothesis)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.core.access import (
    DAY,
    INCOMPLETE_WINDOW,
    Access,
    AccessPolicy,
    AccessState,
    SubscriptionFacts,
    decide_access,
    subscription_access,
)

NOW = 1_800_000_000
HOUR = 3_600
GRANTED, GRACE, DENIED = AccessState.GRANTED, AccessState.GRACE, AccessState.DENIED
DEFAULT = AccessPolicy()
GENEROUS = AccessPolicy(
    incomplete_grants_access=True, paused_grants_access=True, access_until_period_end=True
)


def facts(status: str, **fields: int | bool | None) -> SubscriptionFacts:
    return SubscriptionFacts(status=status, created=NOW - 40 * DAY, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("subscription", "policy", "expected"),
    [
        # active
        (facts("active", period_end=NOW + 9 * DAY), DEFAULT, (GRANTED, None, "active")),
        (facts("active", cancel_at=NOW + 9 * DAY), DEFAULT, (GRANTED, NOW + 9 * DAY, "active")),
        (facts("active", cancel_at=NOW - 1), DEFAULT, (DENIED, None, "canceled")),
        (facts("active", collection_paused=True), DEFAULT, (DENIED, None, "paused")),
        (
            facts("active", collection_paused=True, resumes_at=NOW + DAY),
            GENEROUS,
            (GRANTED, NOW + DAY, "paused"),
        ),
        # trialing
        (facts("trialing", trial_end=NOW + 3 * DAY), DEFAULT, (GRANTED, NOW + 3 * DAY, "trialing")),
        (
            facts("trialing", trial_end=NOW + 3 * DAY, cancel_at=NOW + DAY),
            DEFAULT,
            (GRANTED, NOW + DAY, "trialing"),
        ),
        (facts("trialing", trial_end=NOW - HOUR), DEFAULT, (GRANTED, None, "trialing")),
        (facts("trialing", cancel_at=NOW - 1), DEFAULT, (DENIED, None, "canceled")),
        # past_due: the grace counts from the period's start (the failed renewal)
        (
            facts("past_due", period_start=NOW - 2 * DAY),
            DEFAULT,
            (GRACE, NOW + 5 * DAY, "past_due"),
        ),
        (facts("past_due", period_start=NOW - 7 * DAY), DEFAULT, (DENIED, None, "past_due")),
        (
            facts("past_due", period_start=NOW - 2 * DAY),
            AccessPolicy(past_due_grace_days=0),
            (DENIED, None, "past_due"),
        ),
        # incomplete: 3-D Secure pending; Stripe expires it after 23 hours
        (facts("incomplete"), DEFAULT, (DENIED, None, "incomplete")),
        (
            SubscriptionFacts(status="incomplete", created=NOW - HOUR),
            GENEROUS,
            (GRANTED, NOW - HOUR + INCOMPLETE_WINDOW, "incomplete"),
        ),
        (
            SubscriptionFacts(status="incomplete", created=NOW - INCOMPLETE_WINDOW),
            GENEROUS,
            (DENIED, None, "incomplete"),
        ),
        # paused (Stripe's pause: a trial ended without a payment method)
        (facts("paused"), DEFAULT, (DENIED, None, "paused")),
        (facts("paused"), GENEROUS, (GRANTED, None, "paused")),
        # canceled: access to the end of a period already paid, when the knob says so
        (facts("canceled", period_end=NOW + 4 * DAY), DEFAULT, (DENIED, None, "canceled")),
        (
            facts("canceled", period_end=NOW + 4 * DAY),
            GENEROUS,
            (GRANTED, NOW + 4 * DAY, "canceled"),
        ),
        (facts("canceled", period_end=NOW - 1), GENEROUS, (DENIED, None, "canceled")),
        # nothing to grant
        (facts("unpaid"), GENEROUS, (DENIED, None, "unpaid")),
        (facts("incomplete_expired"), GENEROUS, (DENIED, None, "incomplete_expired")),
    ],
)
def test_each_row_of_the_decision_table(
    subscription: SubscriptionFacts,
    policy: AccessPolicy,
    expected: tuple[AccessState, int | None, str],
) -> None:
    access = subscription_access(subscription, policy, NOW)
    assert (access.state, access.until, access.reason) == expected


def test_no_subscription_is_denied_with_reason_none() -> None:
    assert decide_access([], GENEROUS, NOW) == Access(state=DENIED, until=None, reason="none")


def test_the_best_subscription_wins_and_a_denial_keeps_the_primary_s_reason() -> None:
    old = facts("canceled", period_end=NOW - DAY)
    failing = facts("past_due", period_start=NOW - DAY)
    assert decide_access([old, failing], DEFAULT, NOW).state is GRACE
    denied = decide_access([facts("unpaid"), old], DEFAULT, NOW)
    assert (denied.state, denied.reason) == (DENIED, "unpaid")
    # Open-ended access beats access that ends.
    ending = facts("active", cancel_at=NOW + DAY)
    assert decide_access([ending, facts("active")], DEFAULT, NOW).until is None


STATUSES = (
    "active",
    "trialing",
    "past_due",
    "incomplete",
    "incomplete_expired",
    "paused",
    "canceled",
    "unpaid",
)
moments = st.one_of(st.none(), st.integers(NOW - 60 * DAY, NOW + 60 * DAY))
subscriptions = st.builds(
    SubscriptionFacts,
    status=st.sampled_from(STATUSES),
    created=st.integers(NOW - 90 * DAY, NOW),
    cancel_at=moments,
    trial_end=moments,
    collection_paused=st.booleans(),
    resumes_at=moments,
    period_start=moments,
    period_end=moments,
)
policies = st.builds(
    AccessPolicy,
    past_due_grace_days=st.integers(0, 60),
    incomplete_grants_access=st.booleans(),
    paused_grants_access=st.booleans(),
    access_until_period_end=st.booleans(),
)
RANK = {DENIED: 0, GRACE: 1, GRANTED: 2}


@given(subscriptions, policies, st.integers(NOW - 30 * DAY, NOW + 30 * DAY))
def test_until_is_a_future_moment_at_which_the_answer_changes(
    subscription: SubscriptionFacts, policy: AccessPolicy, now: int
) -> None:
    access = subscription_access(subscription, policy, now)
    if access.state is DENIED:
        assert access.until is None  # only news from Stripe changes a denial
    if access.until is not None:
        assert access.until > now
        assert subscription_access(subscription, policy, access.until) != access


@given(subscriptions, policies, st.integers(NOW - 30 * DAY, NOW), st.integers(0, 60 * DAY))
def test_time_alone_never_improves_access(
    subscription: SubscriptionFacts, policy: AccessPolicy, now: int, later: int
) -> None:
    before = subscription_access(subscription, policy, now)
    after = subscription_access(subscription, policy, now + later)
    assert RANK[after.state] <= RANK[before.state]
    if after.state is not before.state:  # `until` warned of the change
        assert before.until is not None
        assert before.until <= now + later


@given(subscriptions, policies, st.integers(NOW - 30 * DAY, NOW + 30 * DAY), st.data())
def test_a_more_generous_knob_never_takes_access_away(
    subscription: SubscriptionFacts, policy: AccessPolicy, now: int, data: st.DataObject
) -> None:
    generous = dataclasses.replace(
        policy,
        past_due_grace_days=data.draw(st.integers(policy.past_due_grace_days, 60)),
        incomplete_grants_access=policy.incomplete_grants_access or data.draw(st.booleans()),
        paused_grants_access=policy.paused_grants_access or data.draw(st.booleans()),
        access_until_period_end=policy.access_until_period_end or data.draw(st.booleans()),
    )
    before = subscription_access(subscription, policy, now)
    after = subscription_access(subscription, generous, now)
    assert RANK[after.state] >= RANK[before.state]


@given(
    st.lists(subscriptions, max_size=4), policies, st.integers(NOW - DAY, NOW + DAY), st.randoms()
)
def test_the_order_of_the_other_subscriptions_does_not_change_state_or_until(
    listed: list[SubscriptionFacts], policy: AccessPolicy, now: int, random: object
) -> None:
    shuffled = list(listed)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    first = decide_access(listed, policy, now)
    second = decide_access(shuffled, policy, now)
    assert (first.state, first.until) == (second.state, second.until)
    assert RANK[first.state] == max(
        (RANK[subscription_access(s, policy, now).state] for s in listed), default=0
    )
