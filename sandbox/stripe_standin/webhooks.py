"""Webhook delivery: each event POSTed, signed, to every endpoint that wants it.

``StripeState`` tells the ``Deliverer`` about each new event and the enabled
endpoints whose ``enabled_events`` match it (``enqueue``). One daemon thread
sends them as Stripe does: the event JSON as body, ``Content-Type:
application/json; charset=utf-8``, ``User-Agent: Stripe/1.0
(+https://stripe.com/docs/webhooks)`` and ``Stripe-Signature:
t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the endpoint secret>``.
A 2xx is a delivery; any other status (redirects are not followed), a
timeout or a refused connection is retried on ``retry_schedule``, then given
up. Every attempt is recorded (``attempts``). A delivery whose endpoint has
been deleted or disabled in the meantime is dropped without an attempt.

Where it departs from Stripe, on purpose:

- Stripe retries with exponential backoff for up to three days; here the
  schedule is compressed to seconds (by default 0.2, 0.5, 1, 2 and 4 s after
  the failed attempts, six attempts within about 8 s), so a test can watch a
  whole retry history. ``configure(retry_schedule=...)`` changes it.
- ``t`` in the signature is the wall clock, not the state clock: receivers
  compare it with their own clock (300 s tolerance), while ``event.created``
  follows the state clock that tests may move.
- Tests can ``hold()`` deliveries and ``release()`` them reversed, shuffled or
  duplicated, to show that a receiver copes with Stripe's unordered,
  at-least-once delivery, and ``redeliver`` an event like the dashboard's
  "Resend". ``wait_idle`` returns once nothing is queued or being sent.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import requests

from sandbox.stripe_standin.core import WebhookDelivery
from sandbox.stripe_standin.state import StripeState

DEFAULT_RETRY_SCHEDULE = (0.2, 0.5, 1.0, 2.0, 4.0)
DEFAULT_TIMEOUT_SECONDS = 5.0
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"

Order = Literal["as_is", "reverse", "shuffle"]
Trigger = Literal["event", "duplicate", "redeliver"]


def signature_header(body: str, secret: str, timestamp: int) -> str:
    """Stripe's ``Stripe-Signature`` value for ``body`` sent at ``timestamp``."""
    signed = f"{timestamp}.{body}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of ``event`` to ``endpoint``: its HTTP ``status``, or the ``error`` instead."""

    event: str
    endpoint: str
    attempt: int  # 1 for the first send of a delivery, 2 for its first retry, ...
    trigger: Trigger  # what queued the delivery
    status: int | None
    error: str | None
    at: float  # wall clock

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Delivery:
    event: str
    endpoint: str
    trigger: Trigger
    generation: int  # deliveries from before a reset are not recorded
    attempt: int = 1


class Deliverer:
    """The delivery queue of one stand-in and the thread that empties it."""

    def __init__(
        self,
        state: StripeState,
        *,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.state = state
        self._defaults = (tuple(retry_schedule), timeout_seconds)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._in_flight = 0
        self._generation = 0
        self._tiebreak = itertools.count()  # FIFO among deliveries due at the same moment
        self.reset()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name="standin-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_seconds + 1)
            self._thread = None

    def reset(self) -> None:
        """Forget queued, held and recorded deliveries, stop holding, default settings."""
        with self._cond:
            self._generation += 1
            self.retry_schedule, self.timeout_seconds = self._defaults
            self._queue: list[tuple[float, int, _Delivery]] = []  # heap by due time
            self._held: list[_Delivery] = []
            self._attempts: list[DeliveryAttempt] = []
            self.holding = False
            self._cond.notify_all()

    def configure(
        self, *, retry_schedule: Sequence[float] | None = None, timeout_seconds: float | None = None
    ) -> None:
        """Seconds between retries (one entry per retry), and the per-request timeout."""
        with self._cond:
            if retry_schedule is not None:
                if any(float(s) < 0 for s in retry_schedule):
                    raise ValueError("retry_schedule must hold non-negative seconds")
                self.retry_schedule = tuple(float(s) for s in retry_schedule)
            if timeout_seconds is not None:
                if float(timeout_seconds) <= 0:
                    raise ValueError("timeout_seconds must be positive")
                self.timeout_seconds = float(timeout_seconds)

    # --- queueing ----------------------------------------------------------------------------

    def enqueue(
        self, event_id: str, endpoint_ids: Iterable[str], trigger: Trigger = "event"
    ) -> None:
        """Deliver ``event_id`` to each endpoint (held instead while holding)."""
        with self._cond:
            for endpoint_id in endpoint_ids:
                delivery = _Delivery(event_id, endpoint_id, trigger, self._generation)
                self._admit(delivery, time.monotonic())
            self._cond.notify_all()

    def redeliver(self, event_id: str, endpoint_id: str | None = None) -> int:
        """Send ``event_id`` again, to ``endpoint_id`` or to every endpoint that wants it now."""
        targets = self.state.redelivery_targets(event_id, endpoint_id)
        self.enqueue(event_id, targets, trigger="redeliver")
        return len(targets)

    def hold(self) -> None:
        """From now on, park new deliveries and retries instead of sending them."""
        with self._cond:
            self.holding = True

    def release(
        self,
        order: Order = "as_is",
        *,
        seed: int | None = None,
        duplicate: int = 0,
        delay_seconds: float = 0.0,
    ) -> int:
        """Stop holding and send what was held in ``order``; returns how many sends were queued.

        Each held delivery is followed by ``duplicate`` copies before ordering,
        so ``reverse`` sends ``[b, b', a, a']`` for held ``[a, b]``; ``shuffle``
        is repeatable with ``seed``. Sends start ``delay_seconds`` apart.
        """
        if order not in get_args(Order):
            raise ValueError(f"order must be one of {get_args(Order)}")
        if duplicate < 0 or delay_seconds < 0:
            raise ValueError("duplicate and delay_seconds must not be negative")
        with self._cond:
            batch = [
                each
                for held in self._held
                for each in (held, *[_duplicate(held) for _ in range(duplicate)])
            ]
            self._held, self.holding = [], False
            if order == "reverse":
                batch.reverse()
            elif order == "shuffle":
                random.Random(seed).shuffle(batch)
            start = time.monotonic()
            for index, delivery in enumerate(batch):
                self._push(delivery, start + index * delay_seconds)
            self._cond.notify_all()
        return len(batch)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until nothing is queued or being sent; held deliveries do not count.

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"webhook deliveries still busy after {timeout} s: "
                        f"{len(self._queue)} queued, {self._in_flight} in flight"
                    )
                self._cond.wait(remaining)

    def attempts(self) -> list[DeliveryAttempt]:
        with self._cond:
            return list(self._attempts)

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "holding": self.holding,
                "held": len(self._held),
                "queued": len(self._queue),
                "in_flight": self._in_flight,
                "retry_schedule": list(self.retry_schedule),
                "timeout_seconds": self.timeout_seconds,
            }

    def _admit(self, delivery: _Delivery, due: float) -> None:
        if self.holding:
            self._held.append(delivery)
        else:
            self._push(delivery, due)

    def _push(self, delivery: _Delivery, due: float) -> None:
        heapq.heappush(self._queue, (due, next(self._tiebreak), delivery))

    # --- the worker --------------------------------------------------------------------------

    def _run(self) -> None:
        while (delivery := self._next_due()) is not None:
            try:
                self._attempt(delivery)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _next_due(self) -> _Delivery | None:
        with self._cond:
            while not self._stopping:
                wait = self._queue[0][0] - time.monotonic() if self._queue else None
                if wait is not None and wait <= 0:
                    # Counted in flight in the same step, so wait_idle never sees a gap.
                    self._in_flight += 1
                    return heapq.heappop(self._queue)[2]
                self._cond.wait(wait)
            return None

    def _attempt(self, delivery: _Delivery) -> None:
        request = self.state.webhook_delivery(delivery.event, delivery.endpoint)
        if request is None:
            return
        status, error = self._post(request)
        attempt = DeliveryAttempt(
            delivery.event,
            delivery.endpoint,
            delivery.attempt,
            delivery.trigger,
            status,
            error,
            time.time(),
        )
        if attempt.succeeded:
            self.state.mark_delivered(delivery.event, delivery.endpoint)
        with self._cond:
            if delivery.generation != self._generation:
                return
            self._attempts.append(attempt)
            if not attempt.succeeded:
                self._retry(delivery)

    def _retry(self, delivery: _Delivery) -> None:
        if delivery.attempt > len(self.retry_schedule):
            return  # given up, as Stripe does after three days
        delay = self.retry_schedule[delivery.attempt - 1]
        delivery.attempt += 1
        self._admit(delivery, time.monotonic() + delay)

    def _post(self, request: WebhookDelivery) -> tuple[int | None, str | None]:
        timestamp = int(time.time())  # wall clock: see the module docstring
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature_header(request.body, request.secret, timestamp),
            "User-Agent": USER_AGENT,
        }
        with requests.Session() as session:
            session.trust_env = False  # a developer's receiver: never through a proxy
            try:
                response = session.post(
                    request.url,
                    data=request.body.encode(),
                    headers=headers,
                    timeout=self.timeout_seconds,
                    allow_redirects=False,
                )
            except requests.RequestException as error:
                return None, f"{type(error).__name__}: {error}"
        return response.status_code, None


def _duplicate(delivery: _Delivery) -> _Delivery:
    return replace(delivery, trigger="duplicate", attempt=1)
