"""The stand-in's Stripe account: one object holding every resource, each defined in its own module.

Only what the product uses is implemented, in the current API shapes (every
object is built with ``shapes.shaped``). Each state change is appended to
``changes`` as ``{"seq", "type", "created", "object", "previous_attributes"}``
with Stripe's event type names, and becomes an ``event`` object (``evt_...``,
API version ``API_VERSION``, ``data.object`` as it was at that moment,
``data.previous_attributes`` on updates, ``request`` of the API call that caused
it). Events are listed and retrieved like Stripe's (``/v1/events`` with
``type``, ``types``, ``created`` and ``delivery_success``).

Webhook endpoints are account objects too; their signing secrets are kept
apart, since Stripe shows a secret only in the create response. For each new
event, ``on_event(event_id, endpoint_ids)`` is told which enabled endpoints
want it (``webhooks.Deliverer`` sends them); ``mark_delivered`` records a 2xx,
which ``pending_webhooks`` and ``delivery_success`` reflect.

Clocks, like Stripe's test clocks, are **per customer**: ``advance_clock``
moves one customer's time forward (an offset over the account clock
``clock``, which keeps running) and bills every period end it passes, in time
order: a subscription due to cancel ends (``customer.subscription.deleted``),
any other renews (``customer.subscription.updated`` with the items' new
periods, then ``invoice.created``, ``invoice.finalized`` and ``invoice.paid`` +
``invoice.payment_succeeded``, or ``invoice.payment_failed`` and a second
``customer.subscription.updated`` to ``past_due`` when the card declines).
Everything done for that customer afterwards, through the API or the portal,
happens on its clock too (objects' timestamps and ``event.created``), so one
customer's events never go back in time and are recorded, hence delivered, in
order; across customers ``created`` is not monotonic, as with test clocks.
A renewal invoice also carries the subscription's pending prorations
(``prorations.py``). Failed renewals are not retried (no dunning). Portal session URLs expire on
the account clock, so advancing a customer does not expire its session.

Portal sessions (``create_portal_session``) are served by ``portal.py``: the
URL must be opened within ``session_open_seconds`` of its creation and then
stays usable for ``session_use_seconds`` (``open_portal_session``). The
portal's actions are the ``portal_*`` methods, which go through the same
methods as the API, so they record the same events.
"""

from __future__ import annotations

from sandbox.stripe_standin.catalog import Catalog
from sandbox.stripe_standin.checkout_sessions import CheckoutSessions
from sandbox.stripe_standin.clocks import Clocks
from sandbox.stripe_standin.coupons import Coupons
from sandbox.stripe_standin.customers import Customers
from sandbox.stripe_standin.entitlements import Entitlements
from sandbox.stripe_standin.payment_methods import PaymentMethods
from sandbox.stripe_standin.portal_configurations import PortalConfigurations
from sandbox.stripe_standin.portal_sessions import PortalSessions
from sandbox.stripe_standin.prorations import Prorations
from sandbox.stripe_standin.subscriptions import Subscriptions
from sandbox.stripe_standin.webhook_endpoints import WebhookEndpoints


class StripeState(
    Customers,
    Catalog,
    PaymentMethods,
    Subscriptions,
    PortalConfigurations,
    PortalSessions,
    CheckoutSessions,
    Coupons,
    Entitlements,
    Prorations,
    Clocks,
    WebhookEndpoints,
):
    """All objects of one stand-in account. Every public method holds the lock."""
