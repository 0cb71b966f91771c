"""The hosted-portal simulator: the pages Stripe's customer portal shows for a session URL.

Server-rendered HTML, plain forms (POST, then a 303 redirect), no JavaScript.
What a page offers follows the session's portal configuration (features,
cancellation mode and reasons, products and prices, adjustable quantity) and
its ``flow_data``. Every action goes through ``StripeState.portal_*``, which
uses the same methods as the API, so the same events are recorded and sent.

URLs (``<token>`` is the last segment of the session's ``url``):

- ``GET  /p/session/<token>``: the flow's page until the flow is completed
  (``payment_method_update``, ``subscription_cancel``, ``subscription_update``,
  or the confirmation of ``subscription_update_confirm``); otherwise home:
  plans with status and renewal/cancellation date, payment methods (default
  marked), invoice history, the enabled actions, "Return to <business>", and
  the customer's clock with an "Advance clock 1 month" button.
- ``GET|POST .../payment-method``: pick a test card (``card=pm_card_...``).
- ``GET|POST .../subscriptions/<sub>/cancel``: cancel (``reason=...`` when the
  cancellation survey is on); ``POST .../subscriptions/<sub>/renew`` undoes a
  scheduled cancellation.
- ``GET .../subscriptions/<sub>/update``: pick a plan (``price``) and
  ``quantity``; ``GET .../subscriptions/<sub>/confirm?price=&quantity=``
  shows the change, ``POST`` there applies it.
- ``GET .../confirmation``: the ``hosted_confirmation`` page.
- ``POST .../advance-clock`` (``months=1``): the customer's clock, one month on.

After an action, a flow session whose flow is not completed yet follows its
``after_completion`` (``redirect``: 303 to its ``return_url``;
``hosted_confirmation``: the confirmation page; ``portal_homepage``: home);
anything else returns home with a notice. Expired URLs answer 410, unknown
ones 404 (``StripeState.open_portal_session``).

Browser tests find things by ``data-testid`` (and inputs by ``id``:
``card-<token>``, ``reason-<reason>``, ``price-<price id>``, ``quantity``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlencode

from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from sandbox.stripe_standin.core import (
    MANAGEABLE_STATUSES,
    TEST_CARDS,
    Obj,
    PortalSessionUnavailable,
    StripeApiError,
    add_interval,
)
from sandbox.stripe_standin.pages import escape as _e
from sandbox.stripe_standin.pages import format_date as _date
from sandbox.stripe_standin.pages import format_date_time as _date_time
from sandbox.stripe_standin.pages import format_money as _money
from sandbox.stripe_standin.pages import html_page
from sandbox.stripe_standin.portal_flows import (
    SubscriptionFlows,
    Visit,
    alert,
    parse_quantity,
    per_interval,
)
from sandbox.stripe_standin.state import StripeState

# The cards offered on the payment-method page, with what each does.
PORTAL_CARDS = {
    "pm_card_visa": "Visa •••• 4242, payments succeed",
    "pm_card_mastercard": "Mastercard •••• 4444, payments succeed",
    "pm_card_chargeCustomerFail": "Visa •••• 0341, saved, but renewals are declined",
    "pm_card_visa_chargeDeclined": "Visa •••• 0002, declined when saved",
}
NOTICES = {
    "payment_method": "Your payment method was updated.",
    "canceled": "Your subscription was canceled.",
    "cancel_scheduled": "Your subscription will be canceled at the end of the billing period.",
    "renewed": "Your subscription will renew.",
    "updated": "Your plan was updated.",
    "clock": "The clock moved forward one month.",
}
STATUS_LABELS = {
    "active": "Active",
    "trialing": "Trial",
    "past_due": "Past due",
    "unpaid": "Unpaid",
    "paused": "Paused",
    "incomplete": "Incomplete",
    "canceled": "Canceled",
}

_PAGES = Map(
    [
        Rule("/p/session/<token>", methods=["GET"], endpoint="entry"),
        Rule("/p/session/<token>/payment-method", methods=["GET"], endpoint="payment_method"),
        Rule("/p/session/<token>/payment-method", methods=["POST"], endpoint="save_payment_method"),
        Rule(
            "/p/session/<token>/subscriptions/<sub_id>/cancel", methods=["GET"], endpoint="cancel"
        ),
        Rule(
            "/p/session/<token>/subscriptions/<sub_id>/cancel",
            methods=["POST"],
            endpoint="confirm_cancel",
        ),
        Rule("/p/session/<token>/subscriptions/<sub_id>/renew", methods=["POST"], endpoint="renew"),
        Rule(
            "/p/session/<token>/subscriptions/<sub_id>/update", methods=["GET"], endpoint="update"
        ),
        Rule(
            "/p/session/<token>/subscriptions/<sub_id>/confirm", methods=["GET"], endpoint="confirm"
        ),
        Rule(
            "/p/session/<token>/subscriptions/<sub_id>/confirm",
            methods=["POST"],
            endpoint="apply_update",
        ),
        Rule("/p/session/<token>/subscriptions/<sub_id>/pause", methods=["GET"], endpoint="pause"),
        Rule(
            "/p/session/<token>/subscriptions/<sub_id>/pause",
            methods=["POST"],
            endpoint="confirm_pause",
        ),
        Rule(
            "/p/session/<token>/subscriptions/<sub_id>/retention",
            methods=["POST"],
            endpoint="accept_retention",
        ),
        Rule("/p/session/<token>/customer", methods=["GET"], endpoint="customer"),
        Rule("/p/session/<token>/customer", methods=["POST"], endpoint="save_customer"),
        Rule("/p/session/<token>/confirmation", methods=["GET"], endpoint="confirmation"),
        Rule("/p/session/<token>/advance-clock", methods=["POST"], endpoint="advance_clock"),
    ]
)


class PortalSimulator(SubscriptionFlows):
    """The WSGI-side handler of ``/p/session/...`` over one ``StripeState``."""

    def __init__(self, state: StripeState) -> None:
        self.state = state

    def __call__(self, request: Request) -> Response:
        adapter = _PAGES.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except Exception:  # werkzeug raises NotFound/MethodNotAllowed
            return self._page("Not found", "<h1>Page not found</h1>", status=404)
        args = dict(args)
        token = args.pop("token")
        try:
            session, completed = self.state.open_portal_session(token)
        except PortalSessionUnavailable as gone:
            if gone.recoverable:
                return self._page(
                    "Sign in to your billing portal",
                    '<h1 data-testid="session-recovery">Your session has expired</h1>'
                    "<p>Sign in again with the email address of your account: we send you "
                    "a link that opens your billing portal.</p>",
                )
            return self._page(
                str(gone),
                f'<h1 data-testid="session-unavailable">{_e(gone)}</h1>'
                "<p>Portal links are short-lived: go back and open the portal again.</p>",
                status=gone.status,
            )
        visit = Visit(request, token, session, completed or session["flow"] is None)
        handler: Callable[..., Response] = getattr(self, f"_{endpoint}")
        try:
            return handler(visit, **args)
        except StripeApiError as error:
            status = error.status if error.status in (403, 404) else 400
            return self._page(
                "Billing portal", self._header(visit) + alert(error.message), status=status
            )

    # --- pages ---------------------------------------------------------------------------------

    def _entry(self, visit: Visit) -> Response:
        flow = visit.flow
        if flow is None:
            return self._home(visit)
        kind = flow["type"]
        section = flow.get(kind) or {}
        pages: dict[str, Callable[[], Response]] = {
            "payment_method_update": lambda: self._payment_method(visit),
            "customer_update": lambda: self._customer(visit),
            "subscription_cancel": lambda: self._cancel(visit, section["subscription"]),
            "subscription_pause": lambda: self._pause(visit, section["subscription"]),
            "subscription_update": lambda: self._update(visit, section["subscription"]),
            "subscription_update_confirm": lambda: self._confirm(
                visit,
                section["subscription"],
                price_id=section["items"][0]["price"],
                quantity=section["items"][0].get("quantity"),
            ),
        }
        return pages[kind]()

    def _home(self, visit: Visit) -> Response:
        state, customer_id = self.state, visit.session["customer"]
        config = state.portal_configuration(visit.session)
        features = config["features"]
        with state.lock:
            customer = state.render(state.get(customer_id, "customer"))
            subs = [
                s
                for s in state.list_subscriptions(
                    {"customer": customer_id, "status": "all", "limit": 100}
                )["data"]
                if s["status"] in MANAGEABLE_STATUSES
            ]
            cards = state.list_payment_methods({"limit": 100}, customer_id=customer_id)["data"]
            invoices = state.list_invoices({"customer": customer_id, "limit": 20})["data"]
            now = state.customer_now(customer_id)
        notice = NOTICES.get(visit.request.args.get("notice", ""))
        parts = [self._header(visit)]
        if notice:
            parts.append(
                f'<p class="alert notice" role="status" data-testid="notice">{_e(notice)}</p>'
            )
        parts.append('<h1 data-testid="portal-home">Billing</h1>')
        parts.append(self._plans(visit, subs, features))
        parts.append(self._payment_methods(visit, customer, cards, features))
        if features["invoice_history"]["enabled"]:
            parts.append(self._invoices(invoices))
        parts.append(
            '<section aria-labelledby="clock-title"><h2 id="clock-title">Test clock</h2>'
            f'<p>Customer time: <time data-testid="clock" datetime="{now}">'
            f"{_e(_date_time(now))}</time></p>"
            f'<form method="post" action="{visit.base}/advance-clock">'
            '<input type="hidden" name="months" value="1">'
            '<button type="submit" class="secondary" id="advance-clock" '
            'data-testid="advance-clock">Advance clock 1 month</button></form></section>'
        )
        return self._page("Billing portal", "".join(parts))

    def _plans(self, visit: Visit, subs: list[Obj], features: Obj) -> str:
        rows = []
        for sub in subs:
            items = sub["items"]["data"]
            lines = "".join(
                f'<p><strong data-testid="plan-name">{_e(self._product_name(i["price"]))}'
                f"</strong> · {_e(per_interval(i['price']))}"
                f' · <span data-testid="plan-quantity">&times; {i["quantity"]}</span></p>'
                for i in items
            )
            period_end = min(i["current_period_end"] for i in items)
            scheduled = sub["cancel_at"] is not None
            if scheduled:
                when, badge = f"Cancels on {_date(sub['cancel_at'])}", "canceling"
            elif sub["status"] == "trialing":
                when, badge = f"Trial ends on {_date(sub['trial_end'])}", "trialing"
            else:
                when, badge = f"Renews on {_date(period_end)}", sub["status"]
            label = "Canceling" if scheduled else STATUS_LABELS.get(sub["status"], sub["status"])
            actions = []
            if features["subscription_update"]["enabled"] and len(items) == 1:
                actions.append(
                    f'<a class="button" href="{visit.base}/subscriptions/{_e(sub["id"])}/update" '
                    f'id="change-plan-{_e(sub["id"])}" data-testid="change-plan">Update plan</a>'
                )
            if features["subscription_cancel"]["enabled"]:
                if scheduled:
                    actions.append(
                        f'<form method="post" action="{visit.base}/subscriptions/'
                        f'{_e(sub["id"])}/renew"><button type="submit" '
                        f'id="renew-{_e(sub["id"])}" data-testid="renew-subscription">'
                        "Renew plan</button></form>"
                    )
                else:
                    actions.append(
                        f'<a class="button secondary" href="{visit.base}/subscriptions/'
                        f'{_e(sub["id"])}/cancel" id="cancel-{_e(sub["id"])}" '
                        'data-testid="cancel-subscription">Cancel plan</a>'
                    )
            past_due = (
                '<p class="alert error" data-testid="payment-problem">Your last payment failed. '
                "Update your payment method.</p>"
                if sub["status"] in ("past_due", "unpaid")
                else ""
            )
            rows.append(
                f'<div data-testid="subscription" data-subscription-id="{_e(sub["id"])}" '
                f'data-status="{_e(sub["status"])}">{lines}'
                f'<p><span class="badge {_e(badge)}" data-testid="plan-status">{_e(label)}</span> '
                f'<span data-testid="plan-renewal">{_e(when)}</span></p>{past_due}'
                f'<div class="actions">{"".join(actions)}</div></div>'
            )
        body = "".join(rows) or '<p data-testid="no-subscriptions">No current plans.</p>'
        return (
            '<section aria-labelledby="plans-title"><h2 id="plans-title">Current plan</h2>'
            f"{body}</section>"
        )

    def _payment_methods(self, visit: Visit, customer: Obj, cards: list[Obj], features: Obj) -> str:
        default = customer["invoice_settings"]["default_payment_method"]
        rows = []
        for pm in cards:
            card = pm["card"] or {}
            is_default = pm["id"] == default
            rows.append(
                f'<li data-testid="payment-method" data-payment-method-id="{_e(pm["id"])}" '
                f'data-default="{str(is_default).lower()}">'
                f"{_e(str(card.get('brand', 'card')).title())} •••• "
                f'<span data-testid="card-last4">{_e(card.get("last4", ""))}</span>'
                f' <span class="muted">expires {card.get("exp_month")}/{card.get("exp_year")}'
                "</span>"
                + (
                    ' <span class="badge" data-testid="default-badge">Default</span>'
                    if is_default
                    else ""
                )
                + "</li>"
            )
        body = (
            f'<ul class="plain" data-testid="payment-methods">{"".join(rows)}</ul>'
            if rows
            else '<p data-testid="no-payment-methods">No payment method on file.</p>'
        )
        action = ""
        if features["payment_method_update"]["enabled"]:
            action = (
                f'<div class="actions"><a class="button secondary" href="{visit.base}/'
                'payment-method" id="update-payment-method" '
                'data-testid="update-payment-method">'
                f"{'Update' if rows else 'Add'} payment method</a></div>"
            )
        return (
            '<section aria-labelledby="pm-title"><h2 id="pm-title">Payment method</h2>'
            f"{body}{action}</section>"
        )

    @staticmethod
    def _invoices(invoices: Iterable[Obj]) -> str:
        rows = "".join(
            f'<tr data-testid="invoice" data-invoice-id="{_e(i["id"])}">'
            f"<td>{_e(_date(i['created']))}</td><td>{_e(i['number'] or '')}</td>"
            f"<td>{_e(_money(i['total'], i['currency']))}</td>"
            f'<td data-testid="invoice-status">{_e(i["status"])}</td></tr>'
            for i in invoices
        )
        if not rows:
            body = '<p data-testid="no-invoices">No invoices yet.</p>'
        else:
            body = (
                '<div class="scroll"><table data-testid="invoices"><thead><tr><th>Date</th>'
                "<th>Number</th><th>Amount</th><th>Status</th></tr></thead>"
                f"<tbody>{rows}</tbody></table></div>"
            )
        return (
            '<section aria-labelledby="invoices-title"><h2 id="invoices-title">'
            f"Invoice history</h2>{body}</section>"
        )

    def _payment_method(self, visit: Visit, error: str | None = None) -> Response:
        self.state.portal_configuration(visit.session, "payment_method_update")
        chosen = visit.request.form.get("card", "pm_card_visa")
        options = "".join(
            f'<label for="card-{token}"><input type="radio" name="card" id="card-{token}" '
            f'value="{token}"{" checked" if token == chosen else ""}> {_e(label)}</label>'
            for token, label in PORTAL_CARDS.items()
            if token in TEST_CARDS
        )
        body = (
            self._header(visit)
            + (alert(error) if error else "")
            + '<h1 data-testid="payment-method-page">Update payment method</h1>'
            f'<section><form method="post" action="{visit.base}/payment-method">'
            f"<fieldset><legend>Test card</legend>{options}</fieldset>"
            '<div class="actions"><button type="submit" id="save-payment-method" '
            'data-testid="save-payment-method">Save</button>'
            f"{self._back(visit)}</div></form></section>"
        )
        return self._page("Update payment method", body, status=400 if error else 200)

    def _save_payment_method(self, visit: Visit) -> Response:
        card = visit.request.form.get("card", "")
        try:
            self.state.portal_update_payment_method(visit.session, card)
        except StripeApiError as error:
            if error.status in (403, 404):
                raise
            return self._payment_method(visit, error.message)
        return self._done(visit, "payment_method")

    def _advance_clock(self, visit: Visit) -> Response:
        months = parse_quantity(visit.request.form.get("months"), None) or 1
        customer_id = visit.session["customer"]
        now = self.state.customer_now(customer_id)
        self.state.advance_clock(customer_id, to=add_interval(now, "month", months))
        return redirect(f"{visit.base}?{urlencode({'notice': 'clock'})}", code=303)

    # --- shared parts ----------------------------------------------------------------------------

    def _done(self, visit: Visit, notice: str) -> Response:
        """Where an action leads: the flow's ``after_completion`` once, else home."""
        flow = visit.flow
        if flow is not None and self.state.complete_portal_flow(visit.token):
            after = flow["after_completion"]
            if after["type"] == "redirect":
                return redirect(after["redirect"]["return_url"], code=303)
            if after["type"] == "hosted_confirmation":
                return redirect(f"{visit.base}/confirmation", code=303)
        return redirect(f"{visit.base}?{urlencode({'notice': notice})}", code=303)

    def _header(self, visit: Visit) -> str:
        config = self.state.portal_configuration(visit.session)
        headline = config["business_profile"]["headline"]
        return_url = visit.session["return_url"]
        link = (
            f'<a href="{_e(return_url)}" id="return-link" data-testid="return-link">'
            f"← Return to {_e(self.state.business_name)}</a>"
            if return_url
            else ""
        )
        tagline = f'<p class="muted" data-testid="headline">{_e(headline)}</p>' if headline else ""
        return f"<header><p>{link}</p>{tagline}</header>"

    def _back(self, visit: Visit) -> str:
        """The way out of a page: home, or in a flow the business's ``return_url``."""
        if visit.flow is not None and visit.session["return_url"]:
            href = visit.session["return_url"]
        elif visit.flow is None:
            href = visit.base
        else:
            return ""
        return f'<a class="button secondary" href="{_e(href)}" data-testid="go-back">Go back</a>'

    def _product_name(self, price: Obj) -> str:
        with self.state.lock:
            product = self.state.objects.get(price["product"]) or {}
            return str(product.get("name") or price.get("nickname") or price["id"])

    def _prices(self, offers: dict[str, Obj]) -> list[Obj]:
        with self.state.lock:
            return [
                self.state.render(self.state.objects[p])
                for p in offers
                if p in self.state.objects and self.state.objects[p]["active"]
            ]

    def _page(self, title: str, body: str, *, status: int = 200) -> Response:
        return html_page(title, self.state.business_name, body, status=status)
