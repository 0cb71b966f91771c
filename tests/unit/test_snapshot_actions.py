"""The snapshot's ``actions``: which portal flows a billing page may offer now."""

from __future__ import annotations

from billing.core.domain import CurrentSubscription
from billing.read.snapshot import actions_for


def test_snapshot_actions_offer_pause_only_where_stripe_can_pause() -> None:
    """The actions follow the subscription (flexible, paused) and the configuration."""
    flows = ("customer_update", "subscription_cancel", "subscription_pause")
    flexible = CurrentSubscription(
        id="s", status="active", created=1, items=(), flexible_billing=True
    )
    classic = CurrentSubscription(id="s", status="active", created=1, items=())
    paused = CurrentSubscription(
        id="s", status="active", created=1, items=(), flexible_billing=True, paused=True
    )
    assert actions_for(flexible, flows).subscription_pause is True
    assert actions_for(flexible, flows).customer_update is True
    assert actions_for(classic, flows).subscription_pause is False
    assert actions_for(paused, flows).subscription_pause is False
    assert actions_for(flexible, flows[:2]).subscription_pause is False
    assert actions_for(None, flows).customer_update is True
