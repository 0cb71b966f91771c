"""Billing-portal configurations, with the rules Stripe applies to them."""

from __future__ import annotations

import copy

from sandbox.stripe_standin.core import (
    SUBSCRIPTION_UPDATE_FIELDS,
    Obj,
    Params,
    StandinCore,
    StripeApiError,
    as_bool,
    as_int,
    diff,
    merge_metadata,
    missing_param,
    random_id,
)
from sandbox.stripe_standin.enums import (
    CANCEL_MODES,
    CANCEL_PRORATIONS,
    CANCELLATION_REASONS,
    CUSTOMER_UPDATE_FIELDS,
    PAUSE_DURATION_TYPES,
    PAUSE_INTERVALS,
    UPDATE_PRORATIONS,
)
from sandbox.stripe_standin.shapes import shaped


class PortalConfigurations(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    def _seed_default_configuration(self) -> str:
        """Like saving the portal settings once in the dashboard: the account default."""
        config = self._configuration_object(
            {
                "features": {
                    "customer_update": {"enabled": "true", "allowed_updates": ["email", "name"]},
                    "invoice_history": {"enabled": "true"},
                    "payment_method_update": {"enabled": "true"},
                    "subscription_cancel": {"enabled": "true", "mode": "at_period_end"},
                }
            },
            None,
        )
        config["is_default"] = True
        self._store(config)
        return str(config["id"])

    def _configuration_object(self, params: Params, current: Obj | None) -> Obj:
        """A validated configuration from ``params`` applied over ``current``."""
        now = self.now()
        base = current or shaped(
            "billing_portal.configuration",
            id=random_id("bpc_"),
            created=now,
            updated=now,
            application=None,
            active=True,
            is_default=False,
            livemode=False,
            metadata={},
            name=None,
            default_return_url=None,
            business_profile={
                "headline": None,
                "privacy_policy_url": None,
                "terms_of_service_url": None,
            },
            login_page={"enabled": False, "url": None},
            features={
                "customer_update": {"allowed_updates": [], "enabled": False},
                "invoice_history": {"enabled": False},
                "payment_method_update": {"enabled": False, "payment_method_configuration": None},
                "subscription_cancel": {
                    "cancellation_reason": {"enabled": False, "options": []},
                    "enabled": False,
                    "mode": "at_period_end",
                    "proration_behavior": "none",
                },
                "subscription_update": {
                    "default_allowed_updates": [],
                    "enabled": False,
                    "proration_behavior": "none",
                    "schedule_at_period_end": {"conditions": []},
                    "trial_update_behavior": "end_trial",
                    "billing_cycle_anchor": None,
                },
                # Stripe's default: one preset duration of one month.
                "subscription_pause": {
                    "enabled": False,
                    "duration": {
                        "type": "interval_options",
                        "interval_options": [{"interval": "month", "interval_count": 1}],
                    },
                },
            },
        )
        config = copy.deepcopy(base)
        products = copy.deepcopy(self.config_products.get(config["id"], []))
        if "business_profile" in params:
            profile = params["business_profile"] or {}
            for field in ("headline", "privacy_policy_url", "terms_of_service_url"):
                if field in profile:
                    config["business_profile"][field] = profile[field] or None
            headline = config["business_profile"]["headline"]
            if headline is not None and len(headline) > 60:
                raise StripeApiError(
                    "Headline must be at most 60 characters.", param="business_profile[headline]"
                )
        for field in ("default_return_url", "name"):
            if field in params:
                config[field] = params[field] or None
        if "metadata" in params:
            config["metadata"] = merge_metadata(config["metadata"], params["metadata"])
        if "active" in params:
            active = as_bool(params["active"], "active")
            if not active and config["is_default"]:
                raise StripeApiError(
                    "The default configuration cannot be deactivated.", param="active"
                )
            config["active"] = active
        if "login_page" in params:
            enabled = as_bool(
                (params["login_page"] or {}).get("enabled", False), "login_page[enabled]"
            )
            url = config["login_page"]["url"] or f"{self.base_url}/p/login/test_{random_id('', 20)}"
            config["login_page"] = {"enabled": enabled, "url": url if enabled else None}
        if current is None and "features" not in params:
            raise missing_param("features")
        features = params.get("features") or {}
        products = self._apply_features(config["features"], features, products)
        config["updated"] = now
        self.config_products[config["id"]] = products
        return config

    def _apply_features(self, current: Obj, requested: Params, products: list[Obj]) -> list[Obj]:
        """Apply requested ``features`` over ``current`` with Stripe's validation rules."""
        if (section := requested.get("customer_update")) is not None:
            self._apply_customer_update(current["customer_update"], section)
        for name in ("invoice_history", "payment_method_update"):
            if (section := requested.get(name)) is not None and "enabled" in section:
                current[name]["enabled"] = as_bool(section["enabled"], f"features[{name}][enabled]")
        if (section := requested.get("subscription_cancel")) is not None:
            self._apply_subscription_cancel(current["subscription_cancel"], section)
        if (section := requested.get("subscription_pause")) is not None:
            self._apply_subscription_pause(current["subscription_pause"], section)
        if (section := requested.get("subscription_update")) is not None:
            self._apply_subscription_update(current["subscription_update"], section)
            if "products" in section:
                products = self._portal_products(section["products"] or [])
        update = current["subscription_update"]
        if update["enabled"]:
            if not current["payment_method_update"]["enabled"]:
                raise StripeApiError(
                    "Subscription updates cannot be enabled while payment method updates "
                    "are disabled.",
                    param="features[subscription_update][enabled]",
                )
            if not products or not update["default_allowed_updates"]:
                raise StripeApiError(
                    "Enabling subscription updates requires products and default_allowed_updates.",
                    param="features[subscription_update][products]",
                )
        return products

    @staticmethod
    def _apply_customer_update(current: Obj, section: Params) -> None:
        if "enabled" in section:
            current["enabled"] = as_bool(section["enabled"], "features[customer_update][enabled]")
        if "allowed_updates" in section:
            allowed = section["allowed_updates"] or []
            if set(allowed) - CUSTOMER_UPDATE_FIELDS:
                raise StripeApiError(
                    "Invalid allowed_updates.", param="features[customer_update][allowed_updates]"
                )
            current["allowed_updates"] = list(allowed)

    @staticmethod
    def _apply_subscription_pause(pause: Obj, section: Params) -> None:
        prefix = "features[subscription_pause]"
        if "enabled" in section:
            pause["enabled"] = as_bool(section["enabled"], f"{prefix}[enabled]")
        if (duration := section.get("duration")) is not None:
            kind = duration.get("type")
            if kind not in PAUSE_DURATION_TYPES:
                raise StripeApiError("Invalid duration type.", param=f"{prefix}[duration][type]")
            options = []
            if kind == "interval_options":
                given = duration.get("interval_options") or []
                if not given:
                    raise missing_param(f"{prefix}[duration][interval_options]")
                for n, option in enumerate(given):
                    where = f"{prefix}[duration][interval_options][{n}]"
                    if option.get("interval") not in PAUSE_INTERVALS:
                        raise StripeApiError("Invalid interval.", param=f"{where}[interval]")
                    count = as_int(option.get("interval_count", 1), f"{where}[interval_count]")
                    if count < 1:
                        raise StripeApiError(
                            "interval_count must be at least 1.", param=f"{where}[interval_count]"
                        )
                    options.append({"interval": option["interval"], "interval_count": count})
            pause["duration"] = {"type": kind, "interval_options": options}

    @staticmethod
    def _apply_subscription_cancel(cancel: Obj, section: Params) -> None:
        prefix = "features[subscription_cancel]"
        if "enabled" in section:
            cancel["enabled"] = as_bool(section["enabled"], f"{prefix}[enabled]")
        for field in ("mode", "proration_behavior"):
            if field in section:
                cancel[field] = section[field]
        if cancel["mode"] not in CANCEL_MODES:
            raise StripeApiError("Invalid mode.", param=f"{prefix}[mode]")
        if cancel["proration_behavior"] not in CANCEL_PRORATIONS:
            raise StripeApiError(
                "Invalid proration_behavior.", param=f"{prefix}[proration_behavior]"
            )
        if cancel["proration_behavior"] != "none" and cancel["mode"] != "immediately":
            raise StripeApiError(
                "Prorations can only be created when canceling immediately.",
                param=f"{prefix}[proration_behavior]",
            )
        if (reason := section.get("cancellation_reason")) is not None:
            options = reason.get("options") or []
            if set(options) - CANCELLATION_REASONS:
                raise StripeApiError(
                    "Invalid cancellation reason.", param=f"{prefix}[cancellation_reason][options]"
                )
            enabled = as_bool(
                reason.get("enabled", False), f"{prefix}[cancellation_reason][enabled]"
            )
            cancel["cancellation_reason"] = {"enabled": enabled, "options": list(options)}

    @staticmethod
    def _apply_subscription_update(update: Obj, section: Params) -> None:
        prefix = "features[subscription_update]"
        if "enabled" in section:
            update["enabled"] = as_bool(section["enabled"], f"{prefix}[enabled]")
        if "default_allowed_updates" in section:
            allowed = section["default_allowed_updates"] or []
            if set(allowed) - SUBSCRIPTION_UPDATE_FIELDS:
                raise StripeApiError(
                    "Invalid default_allowed_updates.", param=f"{prefix}[default_allowed_updates]"
                )
            update["default_allowed_updates"] = list(allowed)
        if "proration_behavior" in section:
            if section["proration_behavior"] not in UPDATE_PRORATIONS:
                raise StripeApiError(
                    "Invalid proration_behavior.", param=f"{prefix}[proration_behavior]"
                )
            update["proration_behavior"] = section["proration_behavior"]

    def _portal_products(self, specs: list[Params]) -> list[Obj]:
        if len(specs) > 10:
            raise StripeApiError(
                "At most 10 products can be offered.",
                param="features[subscription_update][products]",
            )
        products = []
        for index, spec in enumerate(specs):
            param = f"features[subscription_update][products][{index}]"
            product = self.get(spec.get("product", ""), "product", param=f"{param}[product]")
            prices = spec.get("prices") or []
            for price_id in prices:
                price = self.get(price_id, "price", param=f"{param}[prices]")
                if price["product"] != product["id"] or price["recurring"] is None:
                    raise StripeApiError(
                        f"The price {price_id} is not a recurring price of {product['id']}.",
                        param=f"{param}[prices]",
                    )
            adjustable = spec.get("adjustable_quantity") or {}
            products.append(
                {
                    "product": product["id"],
                    "prices": list(prices),
                    "adjustable_quantity": {
                        "enabled": as_bool(
                            adjustable.get("enabled", False),
                            f"{param}[adjustable_quantity][enabled]",
                        ),
                        "maximum": as_int(adjustable["maximum"], "maximum")
                        if adjustable.get("maximum")
                        else None,
                        "minimum": as_int(adjustable.get("minimum", 1), "minimum"),
                    },
                }
            )
        return products

    def create_configuration(self, params: Params) -> Obj:
        with self.lock:
            config = self._store(self._configuration_object(params, None))
            self._record("billing_portal.configuration.created", config)
            return config

    def update_configuration(self, config_id: str, params: Params) -> Obj:
        with self.lock:
            current = self.get(config_id, "billing_portal.configuration", status=404)
            config = self._configuration_object(params, current)
            previous = diff(current, config)
            self.objects[config_id] = config
            self._record("billing_portal.configuration.updated", config, previous)
            return config

    def list_configurations(self, params: Params) -> Obj:
        with self.lock:
            active = params.get("active")
            is_default = params.get("is_default")
            return self.page(
                "billing_portal.configuration",
                params,
                "/v1/billing_portal/configurations",
                lambda c: (
                    (active is None or c["active"] == as_bool(active, "active"))
                    and (is_default is None or c["is_default"] == as_bool(is_default, "is_default"))
                ),
            )
