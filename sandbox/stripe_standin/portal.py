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
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from sandbox.stripe_standin.pages import escape as _e
from sandbox.stripe_standin.pages import format_date as _date
from sandbox.stripe_standin.pages import format_date_time as _date_time
from sandbox.stripe_standin.pages import format_money as _money
from sandbox.stripe_standin.pages import html_page
from sandbox.stripe_standin.state import (
    MANAGEABLE_STATUSES,
    TEST_CARDS,
    Obj,
    PortalSessionUnavailable,
    StripeApiError,
    StripeState,
    add_interval,
)

# The cards offered on the payment-method page, with what each does.
PORTAL_CARDS = {
    "pm_card_visa": "Visa •••• 4242, payments succeed",
    "pm_card_mastercard": "Mastercard •••• 4444, payments succeed",
    "pm_card_chargeCustomerFail": "Visa •••• 0341, saved, but renewals are declined",
    "pm_card_visa_chargeDeclined": "Visa •••• 0002, declined when saved",
}
REASON_LABELS = {
    "too_expensive": "It's too expensive",
    "missing_features": "Some features are missing",
    "switched_service": "I'm switching to a different service",
    "unused": "I don't use the service enough",
    "customer_service": "Customer service was less than expected",
    "too_complex": "Ease of use was less than expected",
    "low_quality": "Quality was less than expected",
    "other": "Other reason",
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


def _discount(coupon: Obj) -> str:
    """``50% off for 3 months``: what a coupon gives, in a customer's words."""
    if coupon.get("percent_off") is not None:
        off = f"{coupon['percent_off']:g}% off"
    else:
        off = f"{coupon['amount_off'] / 100:.2f} {str(coupon['currency']).upper()} off"
    if coupon["duration"] == "repeating":
        return f"{off} for {coupon['duration_in_months']} months"
    return f"{off} {'forever' if coupon['duration'] == 'forever' else 'on your next invoice'}"


def _per(price: Obj) -> str:
    recurring = price.get("recurring") or {}
    interval, count = recurring.get("interval"), recurring.get("interval_count", 1)
    amount = _money(price["unit_amount"], price["currency"])
    if interval is None:
        return amount
    return f"{amount} per {interval}" if count == 1 else f"{amount} every {count} {interval}s"


@dataclass(frozen=True)
class _Visit:
    """One request to a session's pages."""

    request: Request
    token: str
    session: Obj
    completed: bool  # the session's flow is done (or it has none)

    @property
    def base(self) -> str:
        return f"/p/session/{self.token}"

    @property
    def flow(self) -> Obj | None:
        return None if self.completed else self.session["flow"]


class PortalSimulator:
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
        visit = _Visit(request, token, session, completed or session["flow"] is None)
        handler: Callable[..., Response] = getattr(self, f"_{endpoint}")
        try:
            return handler(visit, **args)
        except StripeApiError as error:
            status = error.status if error.status in (403, 404) else 400
            return self._page(
                "Billing portal", self._header(visit) + _alert(error.message), status=status
            )

    # --- pages ---------------------------------------------------------------------------------

    def _entry(self, visit: _Visit) -> Response:
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

    def _home(self, visit: _Visit) -> Response:
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

    def _plans(self, visit: _Visit, subs: list[Obj], features: Obj) -> str:
        rows = []
        for sub in subs:
            items = sub["items"]["data"]
            lines = "".join(
                f'<p><strong data-testid="plan-name">{_e(self._product_name(i["price"]))}'
                f"</strong> · {_e(_per(i['price']))}"
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

    def _payment_methods(
        self, visit: _Visit, customer: Obj, cards: list[Obj], features: Obj
    ) -> str:
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

    def _payment_method(self, visit: _Visit, error: str | None = None) -> Response:
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
            + (_alert(error) if error else "")
            + '<h1 data-testid="payment-method-page">Update payment method</h1>'
            f'<section><form method="post" action="{visit.base}/payment-method">'
            f"<fieldset><legend>Test card</legend>{options}</fieldset>"
            '<div class="actions"><button type="submit" id="save-payment-method" '
            'data-testid="save-payment-method">Save</button>'
            f"{self._back(visit)}</div></form></section>"
        )
        return self._page("Update payment method", body, status=400 if error else 200)

    def _save_payment_method(self, visit: _Visit) -> Response:
        card = visit.request.form.get("card", "")
        try:
            self.state.portal_update_payment_method(visit.session, card)
        except StripeApiError as error:
            if error.status in (403, 404):
                raise
            return self._payment_method(visit, error.message)
        return self._done(visit, "payment_method")

    def _cancel(self, visit: _Visit, sub_id: str, error: str | None = None) -> Response:
        config = self.state.portal_configuration(visit.session, "subscription_cancel")
        cancel = config["features"]["subscription_cancel"]
        sub = self.state.render(self.state.portal_subscription(visit.session, sub_id))
        item = sub["items"]["data"][0]
        if cancel["mode"] == "immediately":
            effect = "Your plan will be canceled immediately."
        else:
            end = max(i["current_period_end"] for i in sub["items"]["data"])
            effect = (
                "Your plan will be canceled, but is still available until the end of your "
                f"billing period on {_date(end)}."
            )
        survey = cancel["cancellation_reason"]
        reasons = ""
        if survey["enabled"] and survey["options"]:
            reasons = (
                "<fieldset><legend>Tell us why you are canceling (optional)</legend>"
                + "".join(
                    f'<label for="reason-{_e(option)}"><input type="radio" name="reason" '
                    f'id="reason-{_e(option)}" value="{_e(option)}"> '
                    f"{_e(REASON_LABELS.get(option, option))}</label>"
                    for option in survey["options"]
                )
                + "</fieldset>"
            )
        retention = ((visit.flow or {}).get("subscription_cancel") or {}).get("retention")
        offer = ""
        if retention:
            coupon = self.state.render(
                self.state.get(retention["coupon_offer"]["coupon"], "coupon")
            )
            offer = (
                '<section data-testid="retention-offer"><h2>Before you go</h2>'
                f"<p>Stay and get {_e(_discount(coupon))}.</p>"
                f'<form method="post" action="{visit.base}/subscriptions/{_e(sub_id)}/retention">'
                '<button type="submit" data-testid="accept-offer">Accept offer</button>'
                "</form></section>"
            )
        body = (
            self._header(visit)
            + (_alert(error) if error else "")
            + offer
            + '<h1 data-testid="cancel-page">Cancel your plan</h1><section>'
            f"<p><strong>{_e(self._product_name(item['price']))}</strong> · "
            f"{_e(_per(item['price']))}</p>"
            f'<p data-testid="cancel-effect">{_e(effect)}</p>'
            f'<form method="post" action="{visit.base}/subscriptions/{_e(sub_id)}/cancel">'
            f'{reasons}<div class="actions"><button type="submit" class="danger" '
            'id="confirm-cancel" data-testid="confirm-cancel">Cancel plan</button>'
            f"{self._back(visit)}</div></form></section>"
        )
        return self._page("Cancel your plan", body, status=400 if error else 200)

    def _confirm_cancel(self, visit: _Visit, sub_id: str) -> Response:
        reason = visit.request.form.get("reason") or None
        try:
            sub = self.state.portal_cancel_subscription(visit.session, sub_id, reason)
        except StripeApiError as error:
            if error.status in (403, 404):
                raise
            return self._cancel(visit, sub_id, error.message)
        return self._done(visit, "canceled" if sub["status"] == "canceled" else "cancel_scheduled")

    def _accept_retention(self, visit: _Visit, sub_id: str) -> Response:
        retention = ((visit.flow or {}).get("subscription_cancel") or {}).get("retention")
        if not retention:
            raise StripeApiError("This session offers nothing.", status=404)
        self.state.portal_apply_coupon(visit.session, sub_id, retention["coupon_offer"]["coupon"])
        return self._done(visit, "offer_accepted")

    def _pause(self, visit: _Visit, sub_id: str, error: str | None = None) -> Response:
        config = self.state.portal_configuration(visit.session, "subscription_pause")
        duration = config["features"]["subscription_pause"]["duration"]
        if duration["type"] == "indefinite":
            choices = '<input type="hidden" name="duration" value="indefinite">'
            effect = "Your plan pauses until you resume it."
        else:
            choices = (
                "<fieldset><legend>For how long?</legend>"
                + "".join(
                    f'<label for="duration-{n}"><input type="radio" name="duration" '
                    f'id="duration-{n}" value="{n}"{" checked" if n == 0 else ""}> '
                    f"{option['interval_count']} {_e(option['interval'])}"
                    f"{'s' if option['interval_count'] > 1 else ''}</label>"
                    for n, option in enumerate(duration["interval_options"])
                )
                + "</fieldset>"
            )
            effect = "You are not billed while your plan is paused."
        body = (
            self._header(visit)
            + (_alert(error) if error else "")
            + '<h1 data-testid="pause-page">Pause your plan</h1><section>'
            f'<p data-testid="pause-effect">{_e(effect)}</p>'
            f'<form method="post" action="{visit.base}/subscriptions/{_e(sub_id)}/pause">'
            f'{choices}<div class="actions"><button type="submit" id="confirm-pause" '
            'data-testid="confirm-pause">Pause plan</button>'
            f"{self._back(visit)}</div></form></section>"
        )
        return self._page("Pause your plan", body, status=400 if error else 200)

    def _confirm_pause(self, visit: _Visit, sub_id: str) -> Response:
        choice = visit.request.form.get("duration", "0")
        try:
            self.state.portal_pause_subscription(visit.session, sub_id, choice)
        except StripeApiError as error:
            if error.status in (403, 404):
                raise
            return self._pause(visit, sub_id, error.message)
        return self._done(visit, "paused")

    def _customer(self, visit: _Visit, error: str | None = None) -> Response:
        config = self.state.portal_configuration(visit.session, "customer_update")
        allowed = config["features"]["customer_update"]["allowed_updates"]
        with self.state.lock:
            customer = self.state.render(self.state.get(visit.session["customer"], "customer"))
        fields = "".join(
            f'<label for="{field}">{field.title()}<input id="{field}" name="{field}" '
            f'data-testid="customer-{field}" value="{_e(customer.get(field) or "")}"></label>'
            for field in ("email", "name")
            if field in allowed
        )
        body = (
            self._header(visit)
            + (_alert(error) if error else "")
            + '<h1 data-testid="customer-page">Your details</h1><section>'
            f'<form method="post" action="{visit.base}/customer">{fields}'
            '<div class="actions"><button type="submit" data-testid="save-customer">Save'
            f"</button>{self._back(visit)}</div></form></section>"
        )
        return self._page("Your details", body, status=400 if error else 200)

    def _save_customer(self, visit: _Visit) -> Response:
        form = visit.request.form
        try:
            self.state.portal_update_customer(
                visit.session, {k: form[k] for k in ("email", "name") if k in form}
            )
        except StripeApiError as error:
            if error.status in (403, 404):
                raise
            return self._customer(visit, error.message)
        return self._done(visit, "details_saved")

    def _renew(self, visit: _Visit, sub_id: str) -> Response:
        self.state.portal_renew_subscription(visit.session, sub_id)
        return self._done(visit, "renewed")

    def _update(self, visit: _Visit, sub_id: str, error: str | None = None) -> Response:
        config = self.state.portal_configuration(visit.session, "subscription_update")
        update = config["features"]["subscription_update"]
        sub = self.state.render(self.state.portal_subscription(visit.session, sub_id))
        item = sub["items"]["data"][0]
        current = item["price"]["id"]
        offers = self.state.portal_offers(config["id"])
        if "price" in update["default_allowed_updates"]:
            options = "".join(
                f'<label for="price-{_e(price["id"])}"><input type="radio" name="price" '
                f'id="price-{_e(price["id"])}" value="{_e(price["id"])}"'
                f"{' checked' if price['id'] == current else ''}> "
                f"{_e(self._product_name(price))} · {_e(_per(price))}"
                + (" (current plan)" if price["id"] == current else "")
                + "</label>"
                for price in self._prices(offers)
            )
            choice = f"<fieldset><legend>Choose a plan</legend>{options}</fieldset>"
        else:
            choice = f'<input type="hidden" name="price" value="{_e(current)}">'
        quantity = ""
        adjustable = [
            o["adjustable_quantity"] for o in offers.values() if o["adjustable_quantity"]["enabled"]
        ]
        if "quantity" in update["default_allowed_updates"] and adjustable:
            limits = (offers.get(current) or {}).get("adjustable_quantity") or adjustable[0]
            high = f' max="{limits["maximum"]}"' if limits["maximum"] else ""
            quantity = (
                '<label for="quantity">Quantity</label>'
                f'<input type="number" id="quantity" name="quantity" inputmode="numeric" '
                f'min="{limits["minimum"] or 1}"{high} value="{item["quantity"]}">'
            )
        body = (
            self._header(visit)
            + (_alert(error) if error else "")
            + '<h1 data-testid="update-page">Update your plan</h1><section>'
            f'<form method="get" action="{visit.base}/subscriptions/{_e(sub_id)}/confirm">'
            f'{choice}{quantity}<div class="actions"><button type="submit" id="continue" '
            f'data-testid="continue">Continue</button>{self._back(visit)}</div></form></section>'
        )
        return self._page("Update your plan", body, status=400 if error else 200)

    def _confirm(
        self,
        visit: _Visit,
        sub_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        error: str | None = None,
    ) -> Response:
        self.state.portal_configuration(visit.session, "subscription_update")
        sub = self.state.render(self.state.portal_subscription(visit.session, sub_id))
        item = sub["items"]["data"][0]
        args = visit.request.args
        price_id = price_id or args.get("price") or item["price"]["id"]
        if quantity is None:
            quantity = _quantity(args.get("quantity"), item["quantity"])
        with self.state.lock:
            price = self.state.objects.get(price_id)
            if price is None or price.get("object") != "price":
                raise StripeApiError("That plan is not offered here.", param="price")
            price = self.state.render(price)
        body = (
            self._header(visit)
            + (_alert(error) if error else "")
            + '<h1 data-testid="confirm-page">Confirm your updates</h1><section>'
            '<div class="scroll"><table><tbody>'
            f"<tr><th>Current plan</th><td>{_e(self._product_name(item['price']))} · "
            f"{_e(_per(item['price']))} &times; {item['quantity']}</td></tr>"
            f'<tr><th>New plan</th><td data-testid="new-plan">{_e(self._product_name(price))} · '
            f"{_e(_per(price))} &times; {quantity}</td></tr>"
            "</tbody></table></div>"
            f'<form method="post" action="{visit.base}/subscriptions/{_e(sub_id)}/confirm">'
            f'<input type="hidden" name="price" value="{_e(price_id)}">'
            f'<input type="hidden" name="quantity" value="{quantity}">'
            '<div class="actions"><button type="submit" id="confirm-update" '
            f'data-testid="confirm-update">Confirm</button>{self._back(visit)}</div>'
            "</form></section>"
        )
        return self._page("Confirm your updates", body, status=400 if error else 200)

    def _apply_update(self, visit: _Visit, sub_id: str) -> Response:
        form = visit.request.form
        price_id = form.get("price") or None
        quantity = _quantity(form.get("quantity"), None)
        try:
            self.state.portal_change_plan(visit.session, sub_id, price_id, quantity)
        except StripeApiError as error:
            if error.status in (403, 404):
                raise
            return self._confirm(
                visit, sub_id, price_id=price_id, quantity=quantity, error=error.message
            )
        return self._done(visit, "updated")

    def _confirmation(self, visit: _Visit) -> Response:
        flow = visit.session["flow"] or {}
        after = flow.get("after_completion") or {}
        message = (after.get("hosted_confirmation") or {}).get(
            "custom_message"
        ) or "Your changes have been saved."
        body = (
            self._header(visit) + '<h1 data-testid="confirmation-page">All set</h1><section>'
            f'<p data-testid="confirmation-message">{_e(message)}</p></section>'
        )
        return self._page("All set", body)

    def _advance_clock(self, visit: _Visit) -> Response:
        months = _quantity(visit.request.form.get("months"), None) or 1
        customer_id = visit.session["customer"]
        now = self.state.customer_now(customer_id)
        self.state.advance_clock(customer_id, to=add_interval(now, "month", months))
        return redirect(f"{visit.base}?{urlencode({'notice': 'clock'})}", code=303)

    # --- shared parts ----------------------------------------------------------------------------

    def _done(self, visit: _Visit, notice: str) -> Response:
        """Where an action leads: the flow's ``after_completion`` once, else home."""
        flow = visit.flow
        if flow is not None and self.state.complete_portal_flow(visit.token):
            after = flow["after_completion"]
            if after["type"] == "redirect":
                return redirect(after["redirect"]["return_url"], code=303)
            if after["type"] == "hosted_confirmation":
                return redirect(f"{visit.base}/confirmation", code=303)
        return redirect(f"{visit.base}?{urlencode({'notice': notice})}", code=303)

    def _header(self, visit: _Visit) -> str:
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

    def _back(self, visit: _Visit) -> str:
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


def _alert(message: str) -> str:
    return f'<p class="alert error" role="alert" data-testid="error">{_e(message)}</p>'


def _quantity(raw: Any, default: int | None) -> int | None:
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise StripeApiError(f"Invalid quantity: {raw}", param="quantity") from None
