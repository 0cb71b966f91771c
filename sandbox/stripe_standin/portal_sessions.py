"""Billing-portal sessions (flow_data checked against the configuration) and portal actions."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from sandbox.stripe_standin.core import (
    MANAGEABLE_STATUSES,
    TEST_CARDS,
    Obj,
    Params,
    PortalSessionUnavailable,
    StandinCore,
    StripeApiError,
    as_int,
    diff,
    missing,
    missing_param,
    random_id,
)
from sandbox.stripe_standin.enums import (
    AFTER_COMPLETION_TYPES,
    AFTER_EXPIRATION_TYPES,
    FLOW_TYPES,
    LOCALES,
    RETENTION_TYPES,
)
from sandbox.stripe_standin.shapes import example, shaped


class PortalSessions(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    if TYPE_CHECKING:  # defined by another resource of the same account (state.py)

        def _discounts(self, specs: list[Params]) -> list[Obj]: ...

        def update_customer(self, customer_id: str, params: Params) -> Obj: ...

        def _attach(self, token_or_id: str, customer_id: str) -> Obj: ...

        def cancel_subscription(self, sub_id: str, params: Params) -> Obj: ...

        def update_subscription(self, sub_id: str, params: Params) -> Obj: ...

    def create_portal_session(self, params: Params) -> Obj:
        with self.lock, self._clock_of(params.get("customer")):
            customer_id = params.get("customer")
            if not customer_id:
                raise missing_param("customer")
            self.get(customer_id, "customer", param="customer")
            config_id = params.get("configuration") or self.default_configuration_id
            config = self.get(config_id, "billing_portal.configuration", param="configuration")
            if not config["active"]:
                raise StripeApiError("The configuration is not active.", param="configuration")
            return_url = params.get("return_url") or config["default_return_url"]
            locale = params.get("locale")
            if locale is not None and locale not in LOCALES:
                raise StripeApiError(f"Invalid locale: {locale}", param="locale")
            expiration = params.get("after_expiration")
            if expiration is not None and expiration.get("type") not in AFTER_EXPIRATION_TYPES:
                raise StripeApiError(
                    "Invalid after_expiration[type].", param="after_expiration[type]"
                )
            flow = self._session_flow(params.get("flow_data"), customer_id, config)
            now = self.now()
            token = f"test_{random_id('', 40)}"
            session = shaped(
                "billing_portal.session",
                id=random_id("bps_"),
                created=now,
                customer=customer_id,
                customer_account=None,
                configuration=config_id,
                flow=flow,
                livemode=False,
                locale=params.get("locale"),
                on_behalf_of=params.get("on_behalf_of"),
                return_url=return_url,
                url=f"{self.base_url}/p/session/{token}",
            )
            self._store(session)
            self.sessions[token] = {
                "session": session["id"],
                "issued_at": int(self.clock()),  # the account clock: see the docstring
                "opened_at": None,
                "completed": False,
                "recoverable": expiration is not None,
            }
            self._record("billing_portal.session.created", session)
            return session

    def _session_flow(self, flow_data: Params | None, customer_id: str, config: Obj) -> Obj | None:
        if not flow_data:
            return None
        kind = flow_data.get("type")
        features = config["features"]
        flow: Obj = dict.fromkeys(example("billing_portal.session")["flow"])
        flow["type"] = kind

        def subscription_of(section: str) -> Obj:
            sub_id = (flow_data.get(section) or {}).get("subscription")
            param = f"flow_data[{section}][subscription]"
            if not sub_id:
                raise missing_param(param)
            sub = self.get(sub_id, "subscription", param=param)
            if sub["customer"] != customer_id:
                raise StripeApiError(
                    "The subscription does not belong to this customer.", param=param
                )
            if sub["status"] not in MANAGEABLE_STATUSES:
                raise StripeApiError(f"The subscription is {sub['status']}.", param=param)
            return sub

        def require(feature: str) -> None:
            if not features[feature]["enabled"]:
                raise StripeApiError(
                    f"The {feature} feature is disabled in this portal configuration.",
                    param="flow_data[type]",
                )

        if kind not in FLOW_TYPES:
            raise StripeApiError(f"Invalid flow_data[type]: {kind}", param="flow_data[type]")
        match kind:
            case "payment_method_update":
                require("payment_method_update")
            case "customer_update":
                require("customer_update")
            case "subscription_cancel":
                require("subscription_cancel")
                sub = subscription_of("subscription_cancel")
                if sub["cancel_at_period_end"] or sub["cancel_at"]:
                    raise StripeApiError(
                        "The subscription is already set to be canceled.",
                        param="flow_data[subscription_cancel][subscription]",
                    )
                retention = self._retention(flow_data["subscription_cancel"].get("retention"))
                flow["subscription_cancel"] = {"retention": retention, "subscription": sub["id"]}
            case "subscription_pause":
                require("subscription_pause")
                sub = self._pausable(subscription_of("subscription_pause"))
                flow["subscription_pause"] = {"subscription": sub["id"]}
            case "subscription_update":
                require("subscription_update")
                sub = subscription_of("subscription_update")
                flow["subscription_update"] = {"subscription": sub["id"]}
            case "subscription_update_confirm":
                require("subscription_update")
                sub = subscription_of("subscription_update_confirm")
                flow["subscription_update_confirm"] = {
                    "discounts": self._discounts(
                        flow_data["subscription_update_confirm"].get("discounts") or []
                    ),
                    "items": self._confirm_items(
                        flow_data["subscription_update_confirm"], sub, config
                    ),
                    "subscription": sub["id"],
                }
            case _:
                raise StripeApiError(f"Invalid flow_data[type]: {kind}", param="flow_data[type]")
        flow["after_completion"] = self._after_completion(flow_data.get("after_completion"))
        return flow

    @staticmethod
    def _pausable(sub: Obj) -> Obj:
        param = "flow_data[subscription_pause][subscription]"
        if (sub.get("billing_mode") or {}).get("type") != "flexible":
            raise StripeApiError(
                "Only subscriptions with billing_mode flexible can be paused.", param=param
            )
        if sub["status"] == "paused" or sub["pause_collection"]:
            raise StripeApiError("The subscription is already paused.", param=param)
        return sub

    def _retention(self, spec: Params | None) -> Obj | None:
        if spec is None:
            return None
        param = "flow_data[subscription_cancel][retention]"
        if spec.get("type") not in RETENTION_TYPES:
            raise StripeApiError("Invalid retention type.", param=f"{param}[type]")
        coupon_id = (spec.get("coupon_offer") or {}).get("coupon")
        if not coupon_id:
            raise missing_param(f"{param}[coupon_offer][coupon]")
        self.get(coupon_id, "coupon", param=f"{param}[coupon_offer][coupon]")
        return {"type": spec["type"], "coupon_offer": {"coupon": coupon_id}}

    def _confirm_items(self, section: Params, sub: Obj, config: Obj) -> list[Obj]:
        param = "flow_data[subscription_update_confirm][items]"
        specs = section.get("items") or []
        if len(specs) != 1:
            raise StripeApiError("Exactly one item must be given.", param=param)
        spec = specs[0]
        item_ids = {i["id"] for i in sub["items"]["data"]}
        if spec.get("id") not in item_ids:
            raise StripeApiError(
                "The item does not belong to the subscription.", param=f"{param}[0][id]"
            )
        offered = {
            p for product in self.config_products.get(config["id"], []) for p in product["prices"]
        }
        if spec.get("price") and spec["price"] not in offered:
            raise StripeApiError(
                "The price is not offered by this portal configuration.", param=f"{param}[0][price]"
            )
        item: Obj = {"id": spec["id"], "price": spec.get("price")}
        if "quantity" in spec:
            item["quantity"] = as_int(spec["quantity"], f"{param}[0][quantity]")
            if item["quantity"] < 1:
                raise StripeApiError("Quantity must be at least 1.", param=f"{param}[0][quantity]")
        return [item]

    @staticmethod
    def _after_completion(spec: Params | None) -> Obj:
        spec = spec or {"type": "portal_homepage"}
        kind = spec.get("type")
        after: Obj = {"hosted_confirmation": None, "redirect": None, "type": kind}
        if kind == "redirect":
            url = (spec.get("redirect") or {}).get("return_url")
            if not url:
                raise missing_param("flow_data[after_completion][redirect][return_url]")
            after["redirect"] = {"return_url": url}
        elif kind == "hosted_confirmation":
            message = (spec.get("hosted_confirmation") or {}).get("custom_message")
            after["hosted_confirmation"] = {"custom_message": message}
        elif kind not in AFTER_COMPLETION_TYPES:
            raise StripeApiError(
                f"Invalid flow_data[after_completion][type]: {kind}",
                param="flow_data[after_completion][type]",
            )
        return after

    def open_portal_session(self, token: str) -> tuple[Obj, bool]:
        """The portal session behind a URL token, and whether its flow is completed.

        The first use must come within ``session_open_seconds`` of the session's
        creation; from then on the URL works for ``session_use_seconds``.
        Raises ``PortalSessionUnavailable`` (404 unknown, 410 expired).
        """
        with self.lock:
            entry = self.sessions.get(token)
            if entry is None:
                raise PortalSessionUnavailable(404, "This portal session does not exist.")
            now = int(self.clock())
            expired = PortalSessionUnavailable(
                410, "This session has expired.", recoverable=entry["recoverable"]
            )
            if entry["opened_at"] is None:
                if now > entry["issued_at"] + self.session_open_seconds:
                    raise expired
                entry["opened_at"] = now
            elif now > entry["opened_at"] + self.session_use_seconds:
                raise expired
            return copy.deepcopy(self.objects[entry["session"]]), bool(entry["completed"])

    def complete_portal_flow(self, token: str) -> bool:
        """Mark the session's flow done; True the first time (its ``after_completion`` applies)."""
        with self.lock:
            entry = self.sessions[token]
            first = not entry["completed"]
            entry["completed"] = True
            return first

    def portal_configuration(self, session: Obj, feature: str | None = None) -> Obj:
        """The session's configuration; with ``feature``, only if that feature is enabled."""
        with self.lock:
            config = self.objects[session["configuration"]]
            if feature is not None and not config["features"][feature]["enabled"]:
                raise StripeApiError(
                    "This portal does not offer that.", status=403, param=f"features[{feature}]"
                )
            return config

    def portal_offers(self, config_id: str) -> dict[str, Obj]:
        """Price id -> the configuration's product entry offering it, in offer order."""
        with self.lock:
            return {
                price: product
                for product in self.config_products.get(config_id, [])
                for price in product["prices"]
            }

    def portal_subscription(self, session: Obj, sub_id: str) -> Obj:
        """``sub_id``, if the session's customer can manage it in the portal."""
        with self.lock:
            sub = self.objects.get(sub_id)
            if (
                sub is None
                or sub.get("object") != "subscription"
                or sub["customer"] != session["customer"]
                or sub["status"] not in MANAGEABLE_STATUSES
            ):
                raise missing("subscription", sub_id, "subscription", status=404)
            return sub

    def portal_update_payment_method(self, session: Obj, card: str) -> Obj:
        """Attach the test card ``card`` and make it the customer's default, as the portal does."""
        with self.lock, self._clock_of(session["customer"]):
            self.portal_configuration(session, "payment_method_update")
            if card not in TEST_CARDS:
                raise StripeApiError(f"Unknown test card: {card}", param="card")
            pm = self._attach(card, session["customer"])
            self.update_customer(
                session["customer"], {"invoice_settings": {"default_payment_method": pm["id"]}}
            )
            return pm

    def portal_cancel_subscription(self, session: Obj, sub_id: str, reason: str | None) -> Obj:
        """Cancel as the configuration's ``subscription_cancel`` says, with the survey answer.

        At period end, the answer follows in a second ``customer.subscription.updated``,
        as Stripe sends it; an immediate cancellation carries it in its ``deleted`` event.
        """
        with self.lock:
            cancel = self.portal_configuration(session, "subscription_cancel")["features"][
                "subscription_cancel"
            ]
            sub = self.portal_subscription(session, sub_id)
            if sub["cancel_at_period_end"] or sub["cancel_at"]:
                raise StripeApiError("The subscription is already set to be canceled.")
            survey = cancel["cancellation_reason"]
            if reason and not (survey["enabled"] and reason in survey["options"]):
                raise StripeApiError(f"Invalid cancellation reason: {reason}", param="reason")
            details: Params = {"cancellation_details": {"feedback": reason}} if reason else {}
            if cancel["mode"] == "immediately":
                return self.cancel_subscription(sub_id, details)
            self.update_subscription(sub_id, {"cancel_at_period_end": True})
            if details:
                self.update_subscription(sub_id, details)
            return sub

    def portal_pause_subscription(self, session: Obj, sub_id: str, choice: str) -> Obj:
        """Pause as Stripe's pause does (flexible billing mode only): status ``paused``
        with ``status_details``, announced by ``customer.subscription.paused``."""
        with self.lock:
            pause = self.portal_configuration(session, "subscription_pause")["features"][
                "subscription_pause"
            ]
            sub = self._pausable(self.portal_subscription(session, sub_id))
            if pause["duration"]["type"] != "indefinite":
                options = pause["duration"]["interval_options"]
                if not choice.isdigit() or int(choice) >= len(options):
                    raise StripeApiError("Choose one of the offered durations.", param="duration")
            before = copy.deepcopy(sub)
            sub["status"] = "paused"
            sub["status_details"] = {
                "paused": {
                    "type": "subscription",
                    "transitioned_at": self.customer_now(sub["customer"]),
                    "subscription": {"type": "pause_requested"},
                }
            }
            self._record("customer.subscription.paused", sub, diff(before, sub))
            return sub

    def portal_update_customer(self, session: Obj, fields: Params) -> Obj:
        """The customer's details, within the configuration's ``allowed_updates``."""
        with self.lock:
            allowed = self.portal_configuration(session, "customer_update")["features"][
                "customer_update"
            ]["allowed_updates"]
            if refused := [field for field in fields if field not in allowed]:
                raise StripeApiError(f"You cannot change {', '.join(refused)} here.")
            if "email" in fields and "@" not in fields["email"]:
                raise StripeApiError("Enter a valid email address.", param="email")
            return self.update_customer(session["customer"], fields)

    def portal_apply_coupon(self, session: Obj, sub_id: str, coupon_id: str) -> Obj:
        """Accept a retention offer: the coupon becomes a discount of the subscription."""
        with self.lock:
            sub = self.portal_subscription(session, sub_id)
            coupon = self.get(coupon_id, "coupon", param="coupon")
            before = copy.deepcopy(sub)
            sub["discounts"] = [f"di_{coupon['id']}_{sub_id[-6:]}"]
            self._record("customer.subscription.updated", sub, diff(before, sub))
            return sub

    def portal_renew_subscription(self, session: Obj, sub_id: str) -> Obj:
        """Undo a scheduled cancellation (the portal's "Renew subscription")."""
        with self.lock:
            self.portal_configuration(session, "subscription_cancel")
            sub = self.portal_subscription(session, sub_id)
            if sub["cancel_at_period_end"]:
                return self.update_subscription(sub_id, {"cancel_at_period_end": False})
            if sub["cancel_at"]:
                return self.update_subscription(sub_id, {"cancel_at": ""})
            raise StripeApiError("The subscription is not set to be canceled.")

    def portal_change_plan(
        self, session: Obj, sub_id: str, price_id: str | None, quantity: int | None
    ) -> Obj:
        """Move the subscription's item to ``price_id`` / ``quantity`` within what the
        configuration's ``subscription_update`` allows."""
        with self.lock:
            config = self.portal_configuration(session, "subscription_update")
            update = config["features"]["subscription_update"]
            sub = self.portal_subscription(session, sub_id)
            if len(sub["items"]["data"]) != 1:
                raise StripeApiError("Only single-item subscriptions can be changed here.")
            item = sub["items"]["data"][0]
            price_id = price_id or item["price"]["id"]
            quantity = item["quantity"] if quantity is None else quantity
            offer = self.portal_offers(config["id"]).get(price_id)
            allowed = update["default_allowed_updates"]
            if price_id != item["price"]["id"] and ("price" not in allowed or offer is None):
                raise StripeApiError("That plan is not offered here.", param="price")
            if quantity != item["quantity"]:
                limits = (offer or {}).get("adjustable_quantity") or {"enabled": False}
                if "quantity" not in allowed or not limits["enabled"]:
                    raise StripeApiError("The quantity cannot be changed.", param="quantity")
                low, high = limits["minimum"] or 1, limits["maximum"]
                if quantity < low or (high is not None and quantity > high):
                    raise StripeApiError(
                        f"The quantity must be between {low} and {high or 'any'}.",
                        param="quantity",
                    )
            if price_id == item["price"]["id"] and quantity == item["quantity"]:
                raise StripeApiError("That is the current plan.", param="price")
            return self.update_subscription(
                sub_id,
                {
                    "items": [{"id": item["id"], "price": price_id, "quantity": quantity}],
                    "proration_behavior": update["proration_behavior"],
                },
            )
