"""The time a snapshot's answers are decided by (access, a card about to expire).

In AWS it is the system clock, always. The offline sandbox lets a developer move
Stripe's time for one customer (time travel, as Stripe's test clocks do), and points
this clock at the same moment for that customer's user through :func:`follow`, so what
the app would answer in Stripe's future (a grace period running out, a trial ending)
can be seen there. Nothing in a deployment calls :func:`follow`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from billing.store.writes import UserItems

# The time for a customer (None: a user with no customer yet).
CustomerClock = Callable[[str | None], float]


def _system_time(customer_id: str | None) -> float:
    return time.time()


_source: CustomerClock = _system_time


def decision_time(items: UserItems) -> float:
    """Now, for the user whose items these are."""
    customer_id = items.link.get("customer_id") if items.link else None
    return _source(customer_id)


def follow(source: CustomerClock | None) -> None:
    """Decide by ``source`` from now on (None: the system clock again). Sandbox only."""
    global _source  # noqa: PLW0603 - one process-wide clock, switched once at start-up
    _source = source or _system_time
