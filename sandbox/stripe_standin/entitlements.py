"""Entitlement features, the features attached to products, and customers' active
entitlements.

The rules are Stripe's (the Entitlements guide and API reference, and stripe-python's
``FeatureCreateParams``/``FeatureUpdateParams``/``ProductFeatureCreateParams``/
``ActiveEntitlementListParams`` for what each call takes and requires):

- A feature has a name and a lookup key (up to 80 characters, unique in the account);
  the key never changes. A feature is archived (``active: false``), never deleted; an
  archived feature cannot be attached to a product and is left out of the features
  list unless ``archived=true`` asks for it.
- A product feature attaches a feature to a product, once; detaching deletes it.
- A customer is entitled to the features of the products of its current
  subscriptions. The stand-in counts ``active``, ``trialing`` and ``past_due`` as
  current: Stripe keeps entitlements while a subscription is being paid or retried and
  removes them when it ends or stops (canceled, unpaid, paused, incomplete).
- When a change to a customer's subscriptions changes that set, Stripe sends
  ``entitlements.active_entitlement_summary.updated`` with the whole list.
  Attaching or detaching a feature changes existing subscribers' active entitlements
  (the list endpoint shows it) **without an event**. Whoever attaches a feature
  must bring existing subscribers up to date; the product's catalog resource and
  backfill do.
"""

from __future__ import annotations

import copy
from typing import Any

from stripe.params import ProductFeatureCreateParams
from stripe.params.entitlements import (
    ActiveEntitlementListParams,
    FeatureCreateParams,
    FeatureUpdateParams,
)

from sandbox.stripe_standin.core import (
    Obj,
    Params,
    StandinCore,
    StripeApiError,
    as_bool,
    merge_metadata,
    missing,
    missing_param,
    random_id,
)
from sandbox.stripe_standin.shapes import shaped

ENTITLED_STATUSES = frozenset({"active", "trialing", "past_due"})
MAX_LOOKUP_KEY = 80


def _check(params: Params, declared: Any) -> None:
    """Refuse a parameter stripe-python's params type does not declare, or a missing
    required one, with Stripe's wording."""
    for name in sorted(declared.__required_keys__):
        if not params.get(name):
            raise missing_param(name)
    for name in params:
        if name not in declared.__annotations__:
            raise StripeApiError(f"Received unknown parameter: {name}", param=name)


class Entitlements(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    # --- features ----------------------------------------------------------------------------

    def create_feature(self, params: Params) -> Obj:
        with self.lock:
            _check(params, FeatureCreateParams)
            lookup_key = str(params["lookup_key"])
            if len(lookup_key) > MAX_LOOKUP_KEY:
                raise StripeApiError(
                    f"lookup_key must be at most {MAX_LOOKUP_KEY} characters.", param="lookup_key"
                )
            if any(f["lookup_key"] == lookup_key for f in self._features()):
                raise StripeApiError(
                    f"A feature with lookup_key {lookup_key} already exists.",
                    param="lookup_key",
                    code="resource_already_exists",
                )
            feature = shaped(
                "entitlements.feature",
                id=random_id("feat_test_", 32),
                active=True,
                livemode=False,
                lookup_key=lookup_key,
                metadata=merge_metadata({}, params.get("metadata")),
                name=str(params["name"]),
            )
            return self._store(feature)

    def update_feature(self, feature_id: str, params: Params) -> Obj:
        with self.lock:
            _check(params, FeatureUpdateParams)
            feature = self.get(feature_id, "entitlements.feature", status=404)
            if "name" in params:
                if not params["name"]:
                    raise missing_param("name")
                feature["name"] = str(params["name"])
            if "active" in params:
                feature["active"] = as_bool(params["active"], "active")
            if "metadata" in params:
                feature["metadata"] = merge_metadata(feature["metadata"], params["metadata"])
            return feature

    def list_features(self, params: Params) -> Obj:
        with self.lock:
            lookup_key = params.get("lookup_key")
            archived = as_bool(params.get("archived", False), "archived")

            def keep(feature: Obj) -> bool:
                if lookup_key is not None and feature["lookup_key"] != lookup_key:
                    return False
                return feature["active"] is not archived

            return self.page("entitlements.feature", params, "/v1/entitlements/features", keep)

    def _features(self) -> list[Obj]:
        return [o for o in self.objects.values() if o.get("object") == "entitlements.feature"]

    # --- product features --------------------------------------------------------------------

    def attach_product_feature(self, product_id: str, params: Params) -> Obj:
        with self.lock:
            _check(params, ProductFeatureCreateParams)
            self.get(product_id, "product", status=404)
            feature = self.get(
                str(params["entitlement_feature"]),
                "entitlements.feature",
                param="entitlement_feature",
            )
            if not feature["active"]:
                raise StripeApiError(
                    "An archived feature cannot be attached to a product.",
                    param="entitlement_feature",
                )
            attached_ids = {a["entitlement_feature"]["id"] for a in self._attached(product_id)}
            if feature["id"] in attached_ids:
                raise StripeApiError(
                    "This feature is already attached to the product.",
                    param="entitlement_feature",
                    code="resource_already_exists",
                )
            attached = shaped(
                "product_feature",
                id=random_id("prodft_", 24),
                entitlement_feature=copy.deepcopy(feature),
                livemode=False,
            )
            self.product_of_feature[attached["id"]] = product_id
            return self._store(attached)

    def list_product_features(self, product_id: str, params: Params) -> Obj:
        with self.lock:
            self.get(product_id, "product", status=404)
            return self.page(
                "product_feature",
                params,
                f"/v1/products/{product_id}/features",
                lambda a: self.product_of_feature.get(a["id"]) == product_id,
            )

    def retrieve_product_feature(self, product_id: str, attachment_id: str) -> Obj:
        with self.lock:
            attached = self.objects.get(attachment_id)
            if attached is None or self.product_of_feature.get(attachment_id) != product_id:
                raise missing("product_feature", attachment_id, "id", status=404)
            return self._current_attachment(attached)

    def detach_product_feature(self, product_id: str, attachment_id: str) -> Obj:
        with self.lock:
            self.retrieve_product_feature(product_id, attachment_id)
            del self.objects[attachment_id]
            del self.product_of_feature[attachment_id]
            return shaped("deleted_product_feature", id=attachment_id, deleted=True)

    def _attached(self, product_id: str) -> list[Obj]:
        return [
            self._current_attachment(self.objects[attachment_id])
            for attachment_id, owner in self.product_of_feature.items()
            if owner == product_id
        ]

    def _current_attachment(self, attached: Obj) -> Obj:
        """The attachment with its feature as it is now (renamed or archived since)."""
        feature = self.objects[attached["entitlement_feature"]["id"]]
        attached["entitlement_feature"] = copy.deepcopy(feature)
        return attached

    # --- active entitlements -----------------------------------------------------------------

    def list_active_entitlements(self, params: Params) -> Obj:
        with self.lock:
            _check(params, ActiveEntitlementListParams)
            customer_id = str(params["customer"])
            self.get(customer_id, "customer", param="customer")
            expand = [
                path.removeprefix("data.")
                for path in params.get("expand", [])
                if path.startswith("data.")
            ]
            data = [self.render(e, expand) for e in self._active_entitlements(customer_id)]
            return {
                "object": "list",
                "data": data,
                "has_more": False,
                "url": "/v1/entitlements/active_entitlements",
            }

    def _active_entitlements(self, customer_id: str) -> list[Obj]:
        """The customer's entitlements now: one per feature of its current subscriptions'
        products, with an id that stays the same while it lasts."""
        products = {
            item["price"]["product"]
            for sub in self.objects.values()
            if sub.get("object") == "subscription"
            and sub["customer"] == customer_id
            and sub["status"] in ENTITLED_STATUSES
            for item in sub["items"]["data"]
        }
        features: dict[str, Obj] = {}
        for product_id in sorted(products):
            for attached in self._attached(product_id):
                feature = attached["entitlement_feature"]
                features.setdefault(feature["id"], feature)
        entitlements = []
        for feature in sorted(features.values(), key=lambda f: str(f["lookup_key"])):
            key = (customer_id, feature["id"])
            entitlement_id = self.entitlement_ids.setdefault(key, random_id("ent_test_", 32))
            entitlements.append(
                shaped(
                    "entitlements.active_entitlement",
                    id=entitlement_id,
                    feature=feature["id"],
                    livemode=False,
                    lookup_key=feature["lookup_key"],
                )
            )
        return entitlements

    def _after_record(self, event_type: str, obj: Obj) -> None:
        """A change to a customer's subscriptions that changes its entitlements sends the
        summary, as Stripe does."""
        if not event_type.startswith("customer.subscription.") or event_type.endswith(
            ".trial_will_end"
        ):
            return
        customer_id = str(obj["customer"])
        now = self._active_entitlements(customer_id)
        before = self.entitlement_summaries.get(customer_id, [])
        if [e["id"] for e in now] == [e["id"] for e in before]:
            return
        self.entitlement_summaries[customer_id] = now
        summary = shaped(
            "entitlements.active_entitlement_summary",
            customer=customer_id,
            entitlements={
                "object": "list",
                "data": copy.deepcopy(now),
                "has_more": False,
                "url": f"/v1/customers/{customer_id}/entitlements",
            },
            livemode=False,
        )
        self._record(
            "entitlements.active_entitlement_summary.updated",
            summary,
            {"entitlements": {"data": copy.deepcopy(before)}},
        )
