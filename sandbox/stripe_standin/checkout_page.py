"""The hosted Checkout page behind a session's ``url`` (``/c/pay/<session id>``).

What a customer sees on Stripe's page, reduced to what tests and the demo need: the
plan, its price and trial, a choice of test cards (one that succeeds, one that is
declined at payment, one that needs 3-D Secure), a promotion code field when the session
allows them, Pay, and the way back. Paying goes
through ``complete_checkout_session``; success redirects to the session's
``success_url``, a decline shows Stripe's message and leaves the session open, a card
that needs 3-D Secure shows Stripe's test challenge (Complete or Fail, through
``authenticate_checkout_session``), and "Back" goes to ``cancel_url``. An expired or
completed session shows that it is.
"""

from __future__ import annotations

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from sandbox.stripe_standin.core import Obj, StripeApiError
from sandbox.stripe_standin.pages import escape, format_money, html_page
from sandbox.stripe_standin.state import StripeState

CARDS = (
    ("pm_card_visa", "Visa •••• 4242 (succeeds)"),
    ("pm_card_mastercard", "Mastercard •••• 4444 (succeeds)"),
    ("pm_card_visa_chargeDeclined", "Visa •••• 0002 (declined)"),
    ("pm_card_threeDSecure2Required", "Visa •••• 3220 (needs 3-D Secure)"),
)


class HostedCheckoutPage:
    """The WSGI-side handler of ``/c/pay/<session id>``."""

    def __init__(self, state: StripeState) -> None:
        self.state = state

    def __call__(self, request: Request) -> Response:
        session_id, _, step = request.path.removeprefix("/c/pay/").strip("/").partition("/")
        with self.state.lock:
            self.state.expire_due_checkout_sessions()
            session = self.state.objects.get(session_id)
            if session is None or session.get("object") != "checkout.session":
                return self._page("Not found", "<h1>This checkout link is not valid</h1>", 404)
            session = dict(session)
        if session["status"] != "open":
            word = "completed" if session["status"] == "complete" else "expired"
            return self._page("Checkout", f"<h1>This checkout session has {word}</h1>", 410)
        if request.method == "POST":
            try:
                if step == "authenticate":
                    passed = request.form.get("outcome") == "complete"
                    self.state.authenticate_checkout_session(session_id, succeeded=passed)
                else:
                    self.state.complete_checkout_session(
                        session_id,
                        request.form.get("card") or None,
                        promotion_code=request.form.get("promotion_code") or None,
                    )
            except StripeApiError as error:
                return self._form(session, error=error.message, status=error.status)
        if self.state.checkout_awaits_authentication(session_id):
            return self._challenge(session)
        if request.method == "POST":
            return redirect(str(session["success_url"]), code=303)
        return self._form(session)

    def _challenge(self, session: Obj) -> Response:
        """Stripe's test-mode 3-D Secure page: the customer completes or fails it."""
        action = f"/c/pay/{escape(session['id'])}/authenticate"
        body = (
            "<h1 data-testid='challenge'>3D Secure 2 Test Page</h1>"
            "<section><p>Your bank asks you to confirm this payment.</p>"
            f"<form method='post' action='{action}'><div class='actions'>"
            "<button type='submit' name='outcome' value='complete' "
            "data-testid='authenticate-complete'>Complete</button>"
            "<button type='submit' name='outcome' value='fail' class='secondary' "
            "data-testid='authenticate-fail'>Fail</button></div></form></section>"
        )
        return self._page("Authenticate", body, 200)

    def _form(self, session: Obj, *, error: str | None = None, status: int = 200) -> Response:
        plan = self.state.checkout_plans[session["id"]]
        rows = []
        for item in plan["line_items"]:
            price = item["price"]
            product = self.state.objects.get(price["product"]) or {}
            interval = (price.get("recurring") or {}).get("interval", "")
            rows.append(
                f"<li data-testid='checkout-line'>{escape(product.get('name', 'Plan'))} x "
                f"{item['quantity']}: {format_money(item['amount'], item['currency'])} per "
                f"{escape(interval)}</li>"
            )
        trial = plan["subscription_data"].get("trial_period_days")
        trial_note = (
            f"<p class='notice alert'>{escape(trial)} days free, then:</p>" if trial else ""
        )
        optional = trial and session["payment_method_collection"] == "if_required"
        choices = "".join(
            f"<label><input type='radio' name='card' value='{token}'"
            f"{' checked' if i == 0 and not optional else ''}> {escape(label)}</label>"
            for i, (token, label) in enumerate(CARDS)
        )
        if optional:
            choices += (
                "<label><input type='radio' name='card' value='' checked> No card now</label>"
            )
        alert = f"<p class='alert error' role='alert'>{escape(error)}</p>" if error else ""
        promotion = (
            "<label for='promotion_code'>Promotion code</label>"
            "<input type='text' id='promotion_code' name='promotion_code' autocomplete='off' "
            "data-testid='checkout-promotion-code'>"
            if session["allow_promotion_codes"]
            else ""
        )
        back = session.get("cancel_url")
        body = (
            f"<h1>Subscribe to {escape(self.state.business_name)}</h1>{alert}{trial_note}"
            f"<section><ul class='plain'>{''.join(rows)}</ul></section>"
            f"<form method='post'><fieldset><legend>Card</legend>{choices}</fieldset>{promotion}"
            "<div class='actions'><button type='submit' data-testid='checkout-pay'>"
            f"{'Start trial' if trial else 'Subscribe'}</button>"
            + (
                f"<a class='button secondary' href='{escape(back)}' data-testid='checkout-back'>"
                "Back</a>"
                if back
                else ""
            )
            + "</div></form>"
        )
        return self._page("Checkout", body, status)

    def _page(self, title: str, body: str, status: int) -> Response:
        return html_page(title, self.state.business_name, body, status=status)
