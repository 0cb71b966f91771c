"""The hosted portal's subscription flows: cancel (with a retention offer), pause, update
and confirm a plan change, renew."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sandbox.stripe_standin.core import Obj, StripeApiError
from sandbox.stripe_standin.pages import escape as _e
from sandbox.stripe_standin.pages import format_date as _date
from sandbox.stripe_standin.pages import format_money as _money
from sandbox.stripe_standin.state import StripeState

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


def discount_text(coupon: Obj) -> str:
    """``50% off for 3 months``: what a coupon gives, in a customer's words."""
    if coupon.get("percent_off") is not None:
        off = f"{coupon['percent_off']:g}% off"
    else:
        off = f"{coupon['amount_off'] / 100:.2f} {str(coupon['currency']).upper()} off"
    if coupon["duration"] == "repeating":
        return f"{off} for {coupon['duration_in_months']} months"
    return f"{off} {'forever' if coupon['duration'] == 'forever' else 'on your next invoice'}"


def per_interval(price: Obj) -> str:
    recurring = price.get("recurring") or {}
    interval, count = recurring.get("interval"), recurring.get("interval_count", 1)
    amount = _money(price["unit_amount"], price["currency"])
    if interval is None:
        return amount
    return f"{amount} per {interval}" if count == 1 else f"{amount} every {count} {interval}s"


@dataclass(frozen=True)
class Visit:
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


def alert(message: str) -> str:
    return f'<p class="alert error" role="alert" data-testid="error">{_e(message)}</p>'


def parse_quantity(raw: Any, default: int | None) -> int | None:
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise StripeApiError(f"Invalid quantity: {raw}", param="quantity") from None


class SubscriptionFlows:
    """The subscription pages of ``portal.PortalSimulator``, which provides the rest."""

    state: StripeState

    if TYPE_CHECKING:  # defined by portal.PortalSimulator

        def _back(self, visit: Visit) -> str: ...

        def _done(self, visit: Visit, notice: str) -> Response: ...

        def _header(self, visit: Visit) -> str: ...

        def _page(self, title: str, body: str, *, status: int = 200) -> Response: ...

        def _prices(self, offers: dict[str, Obj]) -> list[Obj]: ...

        def _product_name(self, price: Obj) -> str: ...

    def _cancel(self, visit: Visit, sub_id: str, error: str | None = None) -> Response:
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
                f"<p>Stay and get {_e(discount_text(coupon))}.</p>"
                f'<form method="post" action="{visit.base}/subscriptions/{_e(sub_id)}/retention">'
                '<button type="submit" data-testid="accept-offer">Accept offer</button>'
                "</form></section>"
            )
        body = (
            self._header(visit)
            + (alert(error) if error else "")
            + offer
            + '<h1 data-testid="cancel-page">Cancel your plan</h1><section>'
            f"<p><strong>{_e(self._product_name(item['price']))}</strong> · "
            f"{_e(per_interval(item['price']))}</p>"
            f'<p data-testid="cancel-effect">{_e(effect)}</p>'
            f'<form method="post" action="{visit.base}/subscriptions/{_e(sub_id)}/cancel">'
            f'{reasons}<div class="actions"><button type="submit" class="danger" '
            'id="confirm-cancel" data-testid="confirm-cancel">Cancel plan</button>'
            f"{self._back(visit)}</div></form></section>"
        )
        return self._page("Cancel your plan", body, status=400 if error else 200)

    def _confirm_cancel(self, visit: Visit, sub_id: str) -> Response:
        reason = visit.request.form.get("reason") or None
        try:
            sub = self.state.portal_cancel_subscription(visit.session, sub_id, reason)
        except StripeApiError as error:
            if error.status in (403, 404):
                raise
            return self._cancel(visit, sub_id, error.message)
        return self._done(visit, "canceled" if sub["status"] == "canceled" else "cancel_scheduled")

    def _accept_retention(self, visit: Visit, sub_id: str) -> Response:
        retention = ((visit.flow or {}).get("subscription_cancel") or {}).get("retention")
        if not retention:
            raise StripeApiError("This session offers nothing.", status=404)
        self.state.portal_apply_coupon(visit.session, sub_id, retention["coupon_offer"]["coupon"])
        return self._done(visit, "offer_accepted")

    def _pause(self, visit: Visit, sub_id: str, error: str | None = None) -> Response:
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
            + (alert(error) if error else "")
            + '<h1 data-testid="pause-page">Pause your plan</h1><section>'
            f'<p data-testid="pause-effect">{_e(effect)}</p>'
            f'<form method="post" action="{visit.base}/subscriptions/{_e(sub_id)}/pause">'
            f'{choices}<div class="actions"><button type="submit" id="confirm-pause" '
            'data-testid="confirm-pause">Pause plan</button>'
            f"{self._back(visit)}</div></form></section>"
        )
        return self._page("Pause your plan", body, status=400 if error else 200)

    def _confirm_pause(self, visit: Visit, sub_id: str) -> Response:
        choice = visit.request.form.get("duration", "0")
        try:
            self.state.portal_pause_subscription(visit.session, sub_id, choice)
        except StripeApiError as error:
            if error.status in (403, 404):
                raise
            return self._pause(visit, sub_id, error.message)
        return self._done(visit, "paused")

    def _customer(self, visit: Visit, error: str | None = None) -> Response:
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
            + (alert(error) if error else "")
            + '<h1 data-testid="customer-page">Your details</h1><section>'
            f'<form method="post" action="{visit.base}/customer">{fields}'
            '<div class="actions"><button type="submit" data-testid="save-customer">Save'
            f"</button>{self._back(visit)}</div></form></section>"
        )
        return self._page("Your details", body, status=400 if error else 200)

    def _save_customer(self, visit: Visit) -> Response:
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

    def _renew(self, visit: Visit, sub_id: str) -> Response:
        self.state.portal_renew_subscription(visit.session, sub_id)
        return self._done(visit, "renewed")

    def _update(self, visit: Visit, sub_id: str, error: str | None = None) -> Response:
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
                f"{_e(self._product_name(price))} · {_e(per_interval(price))}"
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
            + (alert(error) if error else "")
            + '<h1 data-testid="update-page">Update your plan</h1><section>'
            f'<form method="get" action="{visit.base}/subscriptions/{_e(sub_id)}/confirm">'
            f'{choice}{quantity}<div class="actions"><button type="submit" id="continue" '
            f'data-testid="continue">Continue</button>{self._back(visit)}</div></form></section>'
        )
        return self._page("Update your plan", body, status=400 if error else 200)

    def _confirm(
        self,
        visit: Visit,
        sub_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        error: str | None = None,
    ) -> Response:
        config = self.state.portal_configuration(visit.session, "subscription_update")
        raw = self.state.portal_subscription(visit.session, sub_id)
        sub = self.state.render(raw)
        item = sub["items"]["data"][0]
        args = visit.request.args
        price_id = price_id or args.get("price") or item["price"]["id"]
        if quantity is None:
            quantity = parse_quantity(args.get("quantity"), item["quantity"])
        with self.state.lock:
            price = self.state.objects.get(price_id)
            if price is None or price.get("object") != "price":
                raise StripeApiError("That plan is not offered here.", param="price")
            price = self.state.render(price)
        behavior = config["features"]["subscription_update"]["proration_behavior"]
        bill = self.state.preview_change(raw, price_id, quantity or 1, behavior)
        currency = price["currency"]
        prorations = "".join(
            f"<tr><th>{_e(line['description'])}</th>"
            f"<td data-testid='proration'>{_money(line['amount'], currency)}</td></tr>"
            for line in bill.lines
        )
        body = (
            self._header(visit)
            + (alert(error) if error else "")
            + '<h1 data-testid="confirm-page">Confirm your updates</h1><section>'
            '<div class="scroll"><table><tbody>'
            f"<tr><th>Current plan</th><td>{_e(self._product_name(item['price']))} · "
            f"{_e(per_interval(item['price']))} &times; {item['quantity']}</td></tr>"
            f'<tr><th>New plan</th><td data-testid="new-plan">{_e(self._product_name(price))} · '
            f"{_e(per_interval(price))} &times; {quantity}</td></tr>"
            f"{prorations}"
            f'<tr><th>Due today</th><td data-testid="due-today">'
            f"{_money(bill.due_today, currency)}</td></tr>"
            f"<tr><th>Next invoice on {_date(bill.next_date)}</th>"
            f'<td data-testid="next-invoice">{_money(bill.next_amount, currency)}</td></tr>'
            "</tbody></table></div>"
            f'<form method="post" action="{visit.base}/subscriptions/{_e(sub_id)}/confirm">'
            f'<input type="hidden" name="price" value="{_e(price_id)}">'
            f'<input type="hidden" name="quantity" value="{quantity}">'
            '<div class="actions"><button type="submit" id="confirm-update" '
            f'data-testid="confirm-update">Confirm</button>{self._back(visit)}</div>'
            "</form></section>"
        )
        return self._page("Confirm your updates", body, status=400 if error else 200)

    def _apply_update(self, visit: Visit, sub_id: str) -> Response:
        form = visit.request.form
        price_id = form.get("price") or None
        quantity = parse_quantity(form.get("quantity"), None)
        try:
            self.state.portal_change_plan(visit.session, sub_id, price_id, quantity)
        except StripeApiError as error:
            if error.status in (403, 404):
                raise
            return self._confirm(
                visit, sub_id, price_id=price_id, quantity=quantity, error=error.message
            )
        return self._done(visit, "updated")

    def _confirmation(self, visit: Visit) -> Response:
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
