"""Checkout Sessions in subscription mode: create, retrieve, list, expire.

The rules are Stripe's (the API reference of ``POST /v1/checkout/sessions``, and
stripe-python's ``SessionCreateParams`` for the accepted values): a subscription-mode
session needs recurring prices in ``line_items``; a hosted page (``ui_mode``
``hosted_page``, the default) needs ``success_url`` and gets a ``url``; an embedded page
(``embedded_page``) takes ``return_url`` instead and gets a ``client_secret``; a session
expires after 24 hours unless ``expires_at`` (30 minutes to 24 hours ahead) says
otherwise, and only an open session can be expired (``checkout.session.expired``).

Paying (``complete_checkout_session``, what the hosted page's Pay button does) goes
through the same methods as the API, so it records the events Stripe sends, in
Stripe's order: ``payment_method.attached``, ``customer.subscription.created``, the
first invoice's ``invoice.*`` events, then ``checkout.session.completed``. A card
that declines changes nothing and the session stays open, as on Stripe's page; a
trial that needs no card (``payment_method_collection: if_required``) completes
without one. A card that needs 3-D Secure (``pm_card_threeDSecure2Required``) puts a
challenge between the two halves, as Stripe's page does: see
``complete_checkout_session`` and ``authenticate_checkout_session``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import stripe

from sandbox.stripe_standin.core import (
    AUTHENTICATION_CARDS,
    TEST_CARDS,
    Obj,
    Params,
    StandinCore,
    StripeApiError,
    as_int,
    diff,
    missing_param,
    random_id,
)
from sandbox.stripe_standin.enums import CHECKOUT_LOCALES, CHECKOUT_UI_MODES, stripe_values
from sandbox.stripe_standin.shapes import shaped

SESSION_LIFETIME = 24 * 3600
MIN_LIFETIME = 30 * 60
BILLING_ADDRESS_COLLECTION = stripe_values(
    stripe.params.checkout.SessionCreateParams, "billing_address_collection"
)
PAYMENT_METHOD_COLLECTION = stripe_values(
    stripe.params.checkout.SessionCreateParams, "payment_method_collection"
)
# Fields of the Session object that Stripe's fixture leaves out but stripe-python's
# ``checkout.Session`` declares: set on the shaped object as Stripe returns them.
_DECLARED = frozenset(stripe.checkout.Session.__annotations__)


class CheckoutSessions(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    if TYPE_CHECKING:  # defined by another resource of the same account (state.py)

        def _attach(self, token_or_id: str, customer_id: str) -> Obj: ...

        def create_subscription(self, params: Params) -> Obj: ...

        def redeemable_promotion_code(self, code: str, currency: str) -> Obj: ...

        def _update_subscription(self, sub: Obj, params: Params) -> Obj: ...

        def _pay_invoice(
            self, invoice: Obj, params: Params, *, authenticated: bool = False
        ) -> Obj: ...

    def complete_checkout_session(
        self,
        session_id: str,
        card: str | None,
        *,
        promotion_code: str | None = None,
        authenticated: bool = False,
    ) -> Obj:
        """Pay an open session with a test card (None: no card, for a trial without one),
        and the promotion code the customer typed if the session allows them (an unknown,
        inactive or unusable code: 400 "This code is invalid.", nothing changes).

        A card that needs 3-D Secure stops half way, as on Stripe's page: with a first
        payment, the subscription is created ``incomplete`` with its invoice open
        (``invoice.payment_action_required``); the session stays open and
        ``awaiting_authentication`` is true until ``authenticate_checkout_session`` says
        how the customer's challenge went. ``authenticated``: the challenge was passed."""
        with self.lock:
            session = self._open_session(session_id)
            with self._clock_of(session["customer"]):
                plan = self.checkout_plans[session_id]
                if plan.get("authenticating"):
                    raise StripeApiError(
                        "The customer has not finished authenticating.", param="payment_method"
                    )
                if not authenticated:  # the code as the form has it now (none: removed)
                    plan["promotion_code"] = self._typed_promotion(session, promotion_code)
                data = plan["subscription_data"]
                trial_days = data.get("trial_period_days")
                card_optional = bool(trial_days) and (
                    session["payment_method_collection"] == "if_required"
                )
                if card is None and not card_optional:
                    raise StripeApiError("Choose a card.", param="payment_method")
                needs_authentication = card in AUTHENTICATION_CARDS and not authenticated
                if card is not None:
                    _, _, attachable, chargeable = TEST_CARDS.get(card, ("", "", True, True))
                    chargeable = chargeable or card in AUTHENTICATION_CARDS
                    if not attachable or (not chargeable and not trial_days):
                        raise StripeApiError(
                            "Your card was declined.",
                            status=402,
                            type_="card_error",
                            code="card_declined",
                        )
                customer_id = session["customer"]
                if not customer_id:
                    raise StripeApiError(
                        "The stand-in completes sessions of an existing customer only.",
                        param="customer",
                    )
                if trial_days and needs_authentication:
                    # Nothing to charge: the card is set up once the customer authenticates.
                    plan["authenticating"] = {"card": card}
                    return session
                method = self._attach(card, customer_id)["id"] if card is not None else None
                pending = self.objects.get(plan.get("subscription") or "")
                if pending is not None:
                    subscription = self._retry_first_payment(pending, method)
                else:
                    subscription = self.create_subscription(
                        self._subscription_params(plan, customer_id, method)
                    )
                if subscription["status"] == "incomplete":
                    plan["subscription"] = subscription["id"]
                    plan["authenticating"] = {"card": card}
                    return session
                return self._complete(session, subscription)

    def authenticate_checkout_session(self, session_id: str, *, succeeded: bool) -> Obj:
        """The customer's answer to the 3-D Secure challenge of a session being paid.

        Passed: the first invoice is paid (``invoice.paid``, the subscription ``active``)
        and the session completes. Failed: ``invoice.payment_failed``, a 402
        ``payment_intent_authentication_failure``; the session stays open for another card,
        and the incomplete subscription waits for it (it expires with the session)."""
        with self.lock:
            session = self._open_session(session_id)
            with self._clock_of(session["customer"]):
                plan = self.checkout_plans[session_id]
                attempt = plan.pop("authenticating", None)
                if attempt is None:
                    raise StripeApiError(
                        "This Checkout Session is not waiting for authentication.",
                        param="session",
                    )
                pending = self.objects.get(plan.get("subscription") or "")
                if pending is None:  # a trial: nothing was charged or created yet
                    if not succeeded:
                        raise _authentication_failure()
                    return self.complete_checkout_session(
                        session_id, attempt["card"], authenticated=True
                    )
                invoice = self.objects[pending["latest_invoice"]]
                if not succeeded:  # the same attempt as the one that asked for the challenge
                    self._record("invoice.payment_failed", invoice)
                    raise _authentication_failure()
                self._pay_invoice(invoice, {}, authenticated=True)
                return self._complete(session, pending)

    def checkout_awaits_authentication(self, session_id: str) -> bool:
        """Whether the session's page should show the 3-D Secure challenge."""
        with self.lock:
            return bool(self.checkout_plans.get(session_id, {}).get("authenticating"))

    def _typed_promotion(self, session: Obj, code: str | None) -> str | None:
        if not code:
            return None
        if not session["allow_promotion_codes"]:
            raise StripeApiError(
                "This session does not take promotion codes.", param="promotion_code"
            )
        return str(self.redeemable_promotion_code(code, session["currency"])["id"])

    def _subscription_params(self, plan: Obj, customer_id: str, method: str | None) -> Params:
        data = plan["subscription_data"]
        params: Params = {
            "customer": customer_id,
            "items": [
                {"price": item["price"]["id"], "quantity": item["quantity"]}
                for item in plan["line_items"]
            ],
            "metadata": data.get("metadata") or {},
        }
        if method is not None:
            params["default_payment_method"] = method
        if data.get("trial_period_days"):
            params["trial_period_days"] = data["trial_period_days"]
        if plan.get("promotion_code"):
            params["discounts"] = [{"promotion_code": plan["promotion_code"]}]
        return params

    def _retry_first_payment(self, subscription: Obj, method: str | None) -> Obj:
        """Another card for the incomplete subscription a failed challenge left: it becomes
        the subscription's card and pays the open first invoice (a card that needs 3-D
        Secure asks again)."""
        self._update_subscription(subscription, {"default_payment_method": method})
        invoice = self.objects[subscription["latest_invoice"]]
        if method in self.authentication_cards:
            self._record("invoice.payment_action_required", invoice)
            return subscription
        self._pay_invoice(invoice, {})
        return subscription

    def _complete(self, session: Obj, subscription: Obj) -> Obj:
        promotion = self.checkout_plans[session["id"]].get("promotion_code")
        if promotion:
            invoice = self.objects[subscription["latest_invoice"]]
            off = sum(d["amount"] for d in invoice["total_discount_amounts"])
            session["discounts"] = [{"coupon": None, "promotion_code": promotion}]
            session["total_details"] = {
                "amount_discount": off,
                "amount_shipping": 0,
                "amount_tax": 0,
            }
            session["amount_total"] = session["amount_subtotal"] - off
        session.update(
            status="complete",
            payment_status="no_payment_required" if subscription["trial_end"] else "paid",
            subscription=subscription["id"],
            invoice=subscription["latest_invoice"],
            url=None,
        )
        self._record("checkout.session.completed", session)
        return session

    def create_checkout_session(self, params: Params) -> Obj:
        with self.lock, self._clock_of(params.get("customer")):
            mode = params.get("mode")
            if not mode:
                raise missing_param("mode")
            if mode != "subscription":
                raise StripeApiError(
                    f"The stand-in plays Checkout in subscription mode only, not {mode!r}.",
                    param="mode",
                )
            customer_id = params.get("customer")
            if customer_id:
                self.get(customer_id, "customer", param="customer")
            line_items = self._line_items(params.get("line_items") or [])
            ui_mode = params.get("ui_mode") or "hosted_page"
            if ui_mode not in CHECKOUT_UI_MODES:
                raise StripeApiError(f"Invalid ui_mode: {ui_mode}", param="ui_mode")
            if ui_mode not in ("hosted_page", "embedded_page"):
                raise StripeApiError(
                    f"The stand-in plays hosted and embedded pages, not {ui_mode!r}.",
                    param="ui_mode",
                )
            self._check_urls(params, ui_mode)
            self._check_choices(params)
            now = self.now()
            expires_at = self._expires_at(params.get("expires_at"), now)
            session_id = random_id("cs_test_", 58)
            subscription_data = params.get("subscription_data") or {}
            trial_days = subscription_data.get("trial_period_days")
            if trial_days is not None and not 1 <= as_int(trial_days, "trial_period_days") <= 730:
                raise StripeApiError(
                    "trial_period_days must be between 1 and 730.",
                    param="subscription_data[trial_period_days]",
                )
            session = shaped(
                "checkout.session",
                id=session_id,
                created=now,
                expires_at=expires_at,
                mode="subscription",
                status="open",
                payment_status="unpaid",
                customer=customer_id or None,
                customer_email=params.get("customer_email"),
                client_reference_id=params.get("client_reference_id"),
                currency=line_items[0]["currency"],
                amount_subtotal=sum(i["amount"] for i in line_items),
                amount_total=sum(i["amount"] for i in line_items),
                total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
                allow_promotion_codes=_flag(params.get("allow_promotion_codes")),
                automatic_tax={
                    "enabled": _flag((params.get("automatic_tax") or {}).get("enabled")) is True,
                    "liability": None,
                    "provider": None,
                    "status": None,
                },
                billing_address_collection=params.get("billing_address_collection"),
                payment_method_collection=params.get("payment_method_collection") or "always",
                locale=params.get("locale"),
                metadata=dict(params.get("metadata") or {}),
                success_url=params.get("success_url"),
                cancel_url=params.get("cancel_url"),
                ui_mode=ui_mode,
                url=f"{self.base_url}/c/pay/{session_id}" if ui_mode == "hosted_page" else None,
                client_secret=(
                    f"{session_id}_secret_{random_id('', 24)}"
                    if ui_mode == "embedded_page"
                    else None
                ),
                subscription=None,
                invoice=None,
                payment_intent=None,
                customer_details=None,
                discounts=[],
                livemode=False,
            )
            _declare(
                session,
                return_url=params.get("return_url"),
                redirect_on_completion=params.get("redirect_on_completion")
                or ("always" if ui_mode == "embedded_page" else None),
                tax_id_collection={
                    "enabled": _flag((params.get("tax_id_collection") or {}).get("enabled"))
                    is True,
                    "required": "never",
                },
            )
            # What completing the session will create; kept off the object, as Stripe
            # keeps them off the Session (line_items is a separate, expandable list).
            self.checkout_plans[session_id] = {
                "line_items": line_items,
                "subscription_data": subscription_data,
            }
            return self._store(session)

    def list_checkout_sessions(self, params: Params) -> Obj:
        with self.lock:
            self.expire_due_checkout_sessions()
            customer = params.get("customer")
            status = params.get("status")

            def keep(session: Obj) -> bool:
                if customer is not None and session["customer"] != customer:
                    return False
                return status is None or session["status"] == status

            return self.page("checkout.session", params, "/v1/checkout/sessions", keep)

    def retrieve_checkout_session(self, session_id: str, params: Params) -> Obj:
        with self.lock:
            return self._current_session(session_id, param="id")

    def expire_checkout_session(self, session_id: str, params: Params) -> Obj:
        with self.lock:
            session = self._current_session(session_id, param="session")
            with self._clock_of(session["customer"]):
                if session["status"] != "open":
                    raise StripeApiError(
                        "Only Checkout Sessions with a status of `open` can be expired. "
                        f"This Checkout Session has a status of `{session['status']}`.",
                        param="session",
                    )
                self._expire(session)
                return session

    def expire_due_checkout_sessions(self) -> int:
        """Expire every open session past its ``expires_at``, as Stripe does; how many.

        Stripe expires them on its own schedule; the stand-in does it whenever a session
        is looked at (read, listed, expired, paid or its page opened), which no client
        can tell apart."""
        with self.lock:
            due = [
                s
                for s in self.objects.values()
                if s.get("object") == "checkout.session"
                and s["status"] == "open"
                and s["expires_at"] <= self.now()
            ]
            for session in due:
                self._expire(session)
            return len(due)

    def _open_session(self, session_id: str) -> Obj:
        session = self._current_session(session_id, param="session")
        if session["status"] != "open":
            raise StripeApiError(f"This Checkout Session is {session['status']}.", param="session")
        return session

    def _current_session(self, session_id: str, *, param: str) -> Obj:
        """The session as it is now: expired first if its time has come."""
        self.expire_due_checkout_sessions()
        return self.get(session_id, "checkout.session", param=param, status=404)

    def _expire(self, session: Obj) -> None:
        """Close the session; an incomplete subscription a failed challenge left behind
        ends with it (``incomplete_expired``, its first invoice voided), as Stripe's do."""
        plan = self.checkout_plans.get(session["id"], {})
        plan.pop("authenticating", None)
        pending = self.objects.get(plan.get("subscription") or "")
        if pending is not None and pending["status"] == "incomplete":
            now = self.now()
            invoice = self.objects[pending["latest_invoice"]]
            before = copy.deepcopy(invoice)
            invoice["status"] = "void"
            invoice["status_transitions"]["voided_at"] = now
            invoice.update(amount_remaining=0, auto_advance=False, next_payment_attempt=None)
            self._record("invoice.voided", invoice, diff(before, invoice))
            before = copy.deepcopy(pending)
            pending.update(status="incomplete_expired", ended_at=now, canceled_at=now)
            self._record("customer.subscription.updated", pending, diff(before, pending))
        session.update(status="expired", url=None)
        self._record("checkout.session.expired", session)

    def _line_items(self, specs: list[Params]) -> list[Obj]:
        if not specs:
            raise missing_param("line_items")
        items = []
        for index, spec in enumerate(specs):
            param = f"line_items[{index}][price]"
            if not spec.get("price"):
                raise missing_param(param)
            price = self.get(spec["price"], "price", param=param)
            if not price["active"]:
                raise StripeApiError("The price is not active.", param=param)
            if price.get("recurring") is None:
                raise StripeApiError(
                    "You must specify at least one recurring price in `subscription` mode "
                    "when using prices.",
                    param=param,
                )
            quantity = as_int(spec.get("quantity", 1), f"line_items[{index}][quantity]")
            if quantity < 1:
                raise StripeApiError(
                    "Quantity must be at least 1.", param=f"line_items[{index}][quantity]"
                )
            amount = (price.get("unit_amount") or 0) * quantity
            items.append(
                {
                    "price": price,
                    "quantity": quantity,
                    "currency": price["currency"],
                    "amount": amount,
                }
            )
        currencies = {item["currency"] for item in items}
        if len(currencies) > 1:
            raise StripeApiError("All prices must share one currency.", param="line_items")
        return items

    def _check_urls(self, params: Params, ui_mode: str) -> None:
        if ui_mode == "hosted_page":
            if not params.get("success_url"):
                raise missing_param("success_url")
            if params.get("return_url"):
                raise StripeApiError(
                    "return_url can only be passed when ui_mode is `embedded_page`.",
                    param="return_url",
                )
            return
        for name in ("success_url", "cancel_url"):
            if params.get(name):
                raise StripeApiError(
                    f"{name} can only be passed when ui_mode is `hosted_page`.", param=name
                )
        if not params.get("return_url") and params.get("redirect_on_completion") != "never":
            raise missing_param("return_url")

    def _check_choices(self, params: Params) -> None:
        locale = params.get("locale")
        if locale is not None and locale not in CHECKOUT_LOCALES:
            raise StripeApiError(f"Invalid locale: {locale}", param="locale")
        collection = params.get("billing_address_collection")
        if collection is not None and collection not in BILLING_ADDRESS_COLLECTION:
            raise StripeApiError(
                f"Invalid billing_address_collection: {collection}",
                param="billing_address_collection",
            )
        methods = params.get("payment_method_collection")
        if methods is not None and methods not in PAYMENT_METHOD_COLLECTION:
            raise StripeApiError(
                f"Invalid payment_method_collection: {methods}", param="payment_method_collection"
            )
        if params.get("customer") and params.get("customer_email"):
            raise StripeApiError(
                "You may only specify one of these parameters: customer, customer_email.",
                param="customer_email",
            )

    def _expires_at(self, requested: object, now: int) -> int:
        if requested is None:
            return now + SESSION_LIFETIME
        expires_at = as_int(requested, "expires_at")
        if not now + MIN_LIFETIME <= expires_at <= now + SESSION_LIFETIME:
            raise StripeApiError(
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
                "Checkout Session creation.",
                param="expires_at",
            )
        return expires_at


def _authentication_failure() -> StripeApiError:
    return StripeApiError(
        "We are unable to authenticate your payment method. Please choose a different "
        "payment method and try again.",
        status=402,
        type_="card_error",
        code="payment_intent_authentication_failure",
    )


def _flag(value: object) -> bool | None:
    if value is None:
        return None
    return value is True or value == "true"


def _declare(obj: Obj, **fields: object) -> None:
    unknown = set(fields) - _DECLARED
    if unknown:
        raise KeyError(f"checkout.session declares no field(s) {sorted(unknown)}")
    obj.update(fields)
