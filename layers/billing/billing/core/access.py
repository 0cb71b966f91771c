"""May this user use the product now? One answer from the stored subscriptions: pure.

The app asks on every request, so the answer comes with the snapshot (no Stripe call)
and says when it may change by time alone (``until``), so the app knows when to ask
again without a webhook. ``state`` is ``granted``, ``grace`` (a failed renewal is
being retried: keep access, show a banner) or ``denied``; ``reason`` names the status
it comes from. What a user with no paid access may still do (a free tier) is the
app's business.

One subscription decides as this table says (the knobs are :class:`AccessPolicy`,
template parameters; the times are Stripe's, as stored):

- ``active``, renewing: granted, until null.
- ``active``, scheduled to end (``cancel_at``) later: granted until ``cancel_at``;
  once it has passed (the event trails): denied, reason ``canceled``.
- ``active`` with collection paused: the ``paused`` knob; until ``resumes_at`` or
  ``cancel_at``, the earlier.
- ``trialing``: granted until ``trial_end`` (or an earlier ``cancel_at``); after
  ``trial_end`` with no news yet, granted until null (Stripe's update follows in
  minutes).
- ``past_due``: grace until ``past_due_grace_days`` after the current period's start
  (the failed renewal), then denied.
- ``incomplete`` (first payment pending, 3-D Secure): the ``incomplete`` knob, until
  ``created`` + 23 h, when Stripe expires it; denied after.
- ``paused`` (Stripe's pause: a trial ended without a payment method): the ``paused``
  knob, until ``resumes_at``.
- ``canceled``: granted until the end of the period already paid with
  ``access_until_period_end``, else denied.
- ``unpaid``, ``incomplete_expired``: denied. No subscription: denied, reason ``none``.

A knob that grants makes the row ``granted``; otherwise ``denied``. A denial's ``until``
is null: only news from Stripe (a payment, a resumed subscription) changes it. Reasons are the
status (``active``, ``trialing``, ``past_due``, ``incomplete``, ``paused``,
``canceled``, ``unpaid``, ``incomplete_expired``), ``paused`` for paused collection,
``canceled`` once a scheduled end has passed, and ``none`` without a subscription.

With several subscriptions the best answer wins (granted, then grace, then denied; then
the later ``until``, null counting as latest); among equals the primary subscription's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

DAY = 86_400
# Stripe expires an incomplete subscription whose first payment is not made in 23 hours.
INCOMPLETE_WINDOW = 23 * 3_600


class AccessState(StrEnum):
    GRANTED = "granted"
    GRACE = "grace"
    DENIED = "denied"


_RANK = {AccessState.DENIED: 0, AccessState.GRACE: 1, AccessState.GRANTED: 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessPolicy:
    """The deployment's choices (template parameters ``Access*``)."""

    past_due_grace_days: int = 7
    incomplete_grants_access: bool = False
    paused_grants_access: bool = False
    access_until_period_end: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionFacts:
    """What the policy reads of one stored subscription (times are Unix seconds)."""

    status: str
    created: int
    cancel_at: int | None = None
    trial_end: int | None = None
    collection_paused: bool = False  # pause_collection, status stays active
    resumes_at: int | None = None
    period_start: int | None = None  # the current period's start: a renewal's moment
    period_end: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Access:
    state: AccessState
    until: int | None
    reason: str


NO_SUBSCRIPTION = Access(state=AccessState.DENIED, until=None, reason="none")


def decide_access(
    subscriptions: Sequence[SubscriptionFacts], policy: AccessPolicy, now: float
) -> Access:
    """The user's access: the best of their subscriptions' (the first one is the primary)."""
    best = NO_SUBSCRIPTION
    for facts in subscriptions:
        access = subscription_access(facts, policy, now)
        if best is NO_SUBSCRIPTION or _better(access, best):
            best = access
    return best


def subscription_access(facts: SubscriptionFacts, policy: AccessPolicy, now: float) -> Access:
    """One subscription's row of the table in this module's docstring."""
    rule = _RULES.get(facts.status)
    if rule is None:
        return _denied(facts.status)  # unpaid, incomplete_expired: nothing to grant
    return rule(facts, policy, now)


def _active(facts: SubscriptionFacts, policy: AccessPolicy, now: float) -> Access:
    if facts.cancel_at is not None and facts.cancel_at <= now:
        return _denied("canceled")
    if facts.collection_paused:
        # Granted until the pause ends (the answer becomes "active") or the subscription does.
        until = _earliest(_future(facts.resumes_at, now), facts.cancel_at)
        return _by_knob(policy.paused_grants_access, "paused", until)
    return _granted("active", facts.cancel_at)


def _trialing(facts: SubscriptionFacts, policy: AccessPolicy, now: float) -> Access:
    if facts.cancel_at is not None and facts.cancel_at <= now:
        return _denied("canceled")
    return _granted("trialing", _earliest(_future(facts.trial_end, now), facts.cancel_at))


def _past_due(facts: SubscriptionFacts, policy: AccessPolicy, now: float) -> Access:
    start = facts.period_start if facts.period_start is not None else facts.created
    grace_ends = start + policy.past_due_grace_days * DAY
    if now < grace_ends:
        return Access(state=AccessState.GRACE, until=grace_ends, reason="past_due")
    return _denied("past_due")


def _incomplete(facts: SubscriptionFacts, policy: AccessPolicy, now: float) -> Access:
    expires = facts.created + INCOMPLETE_WINDOW
    if now >= expires:
        return _denied("incomplete")
    return _by_knob(policy.incomplete_grants_access, "incomplete", expires)


def _paused(facts: SubscriptionFacts, policy: AccessPolicy, now: float) -> Access:
    return _by_knob(policy.paused_grants_access, "paused", _future(facts.resumes_at, now))


def _canceled(facts: SubscriptionFacts, policy: AccessPolicy, now: float) -> Access:
    paid_until = facts.period_end
    if policy.access_until_period_end and paid_until is not None and paid_until > now:
        return _granted("canceled", paid_until)
    return _denied("canceled")


_RULES: dict[str, Callable[[SubscriptionFacts, AccessPolicy, float], Access]] = {
    "active": _active,
    "trialing": _trialing,
    "past_due": _past_due,
    "incomplete": _incomplete,
    "paused": _paused,
    "canceled": _canceled,
}


def _better(candidate: Access, best: Access) -> bool:
    if _RANK[candidate.state] != _RANK[best.state]:
        return _RANK[candidate.state] > _RANK[best.state]
    if candidate.state is AccessState.DENIED:
        return False  # the primary's reason explains a denial best
    # Null is open-ended: the latest.
    if best.until is None:
        return False
    return candidate.until is None or candidate.until > best.until


def _granted(reason: str, until: int | None) -> Access:
    return Access(state=AccessState.GRANTED, until=until, reason=reason)


def _denied(reason: str) -> Access:
    return Access(state=AccessState.DENIED, until=None, reason=reason)


def _by_knob(grants: bool, reason: str, until: int | None) -> Access:
    return _granted(reason, until) if grants else _denied(reason)


def _earliest(*moments: int | None) -> int | None:
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None


def _future(moment: int | None, now: float) -> int | None:
    return moment if moment is not None and moment > now else None
