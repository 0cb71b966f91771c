"""``Custom::StripeCatalog``: the declared catalog made real in Stripe on every deploy.

Create and Update do the same thing: read what Stripe holds of this catalog
(:func:`read_catalog`), plan the writes (``billing.provisioning.catalog``) and run them
in order. A deploy that changes nothing writes nothing. Delete archives everything the
catalog made (Stripe keeps archived objects; subscribers may still pay them); a second
Delete finds nothing active and succeeds.

Reads per deploy: the account's products (paged), then per product of this catalog its
prices and its attached features, the declared lookup keys (10 per call) and the
features (active and archived). Creations carry idempotency keys derived from the
CloudFormation request, so a repeated request cannot create twice.

The resource answers ``LookupKeys`` (the active declared prices, comma-separated, for
the portal and Checkout) and ``FeatureChanges`` (products whose features changed).
Stripe sends no event when a product's features change, so the function stores the
current entitlements of those products' subscribers itself (``EntitlementsRefreshed``;
``EntitlementsComplete`` is ``false`` when time ran out, and ``make backfill`` finishes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import stripe
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent

from billing.provisioning.answer import Provisioned, ResourceFailed
from billing.provisioning.catalog import (
    Attachment,
    CatalogConflict,
    CatalogInvalid,
    StripeCatalogState,
    StripeFeature,
    StripePrice,
    StripeProduct,
    Write,
    owned,
    parse_catalog,
    plan_catalog,
    plan_removal,
)
from billing.provisioning.resources import stripe_step
from billing.stripe_api.client import idempotency_key

logger = Logger(child=True)

StripeClientFactory = Callable[[], stripe.StripeClient]
_PAGE = 100
_LOOKUP_KEYS_PER_LIST = 10
PHYSICAL_PREFIX = "stripe-catalog:"


# Stores what the catalog holds in Stripe now (its products, prices, features and the
# features of each product) in the stack's table, as the backfill would, and brings the
# subscribers of the products whose features changed (ids) up to date; answers what to
# add to the resource's data.
Publisher = Callable[[stripe.StripeClient, str, Sequence[str]], Mapping[str, str]]


class StripeCatalogResource:
    """Make Stripe hold the declared catalog; archive it on Delete."""

    def __init__(
        self, stripe_client: StripeClientFactory, publish: Publisher | None = None
    ) -> None:
        self._stripe_client = stripe_client
        self._publish = publish

    def create(self, request: CloudFormationCustomResourceEvent) -> Provisioned:
        return self._apply(request)

    def update(self, request: CloudFormationCustomResourceEvent) -> Provisioned:
        return self._apply(request)

    def delete(self, request: CloudFormationCustomResourceEvent) -> None:
        physical = request.physical_resource_id
        if not physical.startswith(PHYSICAL_PREFIX):
            return  # never created: the rollback of a failed Create
        catalog = physical.removeprefix(PHYSICAL_PREFIX)
        client = self._stripe_client()
        state = read_catalog(client, catalog, lookup_keys=(), feature_keys=())
        writes = plan_removal(catalog, state)
        run_writes(client, writes, key=lambda write: "")
        if writes and self._publish is not None:
            self._publish(client, catalog, [])
        logger.info("Catalog archived", extra={"catalog": catalog, "writes": len(writes)})

    def _apply(self, request: CloudFormationCustomResourceEvent) -> Provisioned:
        try:
            spec = parse_catalog(request.resource_properties)
        except CatalogInvalid as error:
            raise ResourceFailed(str(error)) from None
        client = self._stripe_client()
        state = read_catalog(
            client,
            spec.catalog,
            lookup_keys=[p.lookup_key for product in spec.products for p in product.prices],
            feature_keys=[f.lookup_key for f in spec.features],
        )
        try:
            plan = plan_catalog(spec, state)
        except CatalogConflict as error:
            raise ResourceFailed(str(error)) from None

        def key(write: Write) -> str:
            return idempotency_key(
                "catalog",
                request.stack_id,
                request.logical_resource_id,
                request.request_id,
                write.action,
                write.subject,
            )

        created = run_writes(client, plan.writes, key=key)
        changed = sorted({created.get(p, p) for p in plan.feature_changes})
        published: Mapping[str, str] = {}
        if self._publish is not None:
            # Also when nothing changed: a new table, or events Stripe sent before the
            # webhook endpoint existed (a first deploy creates the catalog first).
            published = self._publish(client, spec.catalog, changed)
        logger.info(
            "Catalog applied",
            extra={"catalog": spec.catalog, "writes": len(plan.writes), "feature_changes": changed},
        )
        return Provisioned(
            f"{PHYSICAL_PREFIX}{spec.catalog}",
            {
                "LookupKeys": ",".join(spec.lookup_keys()),
                "FeatureChanges": ",".join(changed),
                **published,
            },
        )


def catalog_objects(
    client: stripe.StripeClient, catalog: str, *, feature_keys: Iterable[str] = ()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The catalog's products, their prices and its features (and any feature with one of
    ``feature_keys``, made elsewhere or not), as Stripe returns them."""
    api = client.v1
    wanted = set(feature_keys)
    with stripe_step("read the catalog"):
        products = [p for p in _all(api.products.list, {}) if owned(_metadata(p), catalog)]
        prices = [price for p in products for price in _all(api.prices.list, {"product": p["id"]})]
        features = [
            f
            for archived in (False, True)
            for f in _all(api.entitlements.features.list, {"archived": archived})
            if owned(_metadata(f), catalog) or f["lookup_key"] in wanted
        ]
    return products, prices, features


def run_writes(
    client: stripe.StripeClient, writes: Iterable[Write], *, key: Callable[[Write], str]
) -> dict[str, str]:
    """Run ``writes`` in order; the ids of what was created, by their ``@key``."""
    api = client.v1
    created: dict[str, str] = {}

    def resolve(value: str) -> str:
        return created.get(value, value)

    for write in writes:
        target = resolve(write.target)
        params = {k: resolve(v) if isinstance(v, str) else v for k, v in write.params.items()}
        options: Any = {"idempotency_key": key(write)} if key(write) else {}
        with stripe_step(f"{write.action.replace('_', ' ')} {write.subject}"):
            match write.action:
                case "create_feature":
                    created[write.target] = api.entitlements.features.create(
                        params,  # type: ignore[arg-type]
                        options=options,
                    ).id
                case "update_feature":
                    api.entitlements.features.update(target, params)  # type: ignore[arg-type]
                case "create_product":
                    created[write.target] = api.products.create(
                        params,  # type: ignore[arg-type]
                        options=options,
                    ).id
                case "update_product":
                    api.products.update(target, params)  # type: ignore[arg-type]
                case "create_price":
                    price: Any = {**params, "product": target}
                    api.prices.create(price, options=options)
                case "update_price":
                    api.prices.update(target, params)  # type: ignore[arg-type]
                case "attach_feature":
                    api.products.features.create(
                        target,
                        params,  # type: ignore[arg-type]
                        options=options,
                    )
                case "detach_feature":
                    api.products.features.delete(target, str(params["attachment"]))
    return created


def read_catalog(
    client: stripe.StripeClient,
    catalog: str,
    *,
    lookup_keys: Iterable[str],
    feature_keys: Iterable[str],
) -> StripeCatalogState:
    """What Stripe holds of ``catalog``, and whoever holds its declared keys."""
    raw_products, raw_prices, raw_features = catalog_objects(
        client, catalog, feature_keys=feature_keys
    )
    products = [_product(p) for p in raw_products]
    prices = {price["id"]: _price(price) for price in raw_prices}
    attachments: list[Attachment] = []
    api = client.v1
    with stripe_step("read the catalog"):
        for product in products:
            listed = api.products.features.list(product.id, {"limit": _PAGE})
            for attached in listed.auto_paging_iter():
                feature = attached.entitlement_feature
                attachments.append(Attachment(attached.id, product.id, feature.id))
        keys = list(dict.fromkeys(lookup_keys))
        for start in range(0, len(keys), _LOOKUP_KEYS_PER_LIST):
            chunk = keys[start : start + _LOOKUP_KEYS_PER_LIST]
            for price in _all(api.prices.list, {"lookup_keys": chunk}):
                prices[price["id"]] = _price(price)
    features = [_feature(f) for f in raw_features]
    return StripeCatalogState(products, list(prices.values()), features, attachments)


def _all(list_call: Any, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    page = list_call(params={**params, "limit": _PAGE})
    for item in page.auto_paging_iter():
        yield item.to_dict()


def _metadata(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (obj.get("metadata") or {}).items()}


def _product(obj: Mapping[str, Any]) -> StripeProduct:
    return StripeProduct(
        obj["id"],
        obj.get("name") or "",
        obj.get("description") or "",
        _metadata(obj),
        obj.get("active") is True,
    )


def _price(obj: Mapping[str, Any]) -> StripePrice:
    recurring = obj.get("recurring") or {}
    product = obj.get("product")
    return StripePrice(
        id=obj["id"],
        product=product if isinstance(product, str) else (product or {}).get("id", ""),
        lookup_key=obj.get("lookup_key"),
        currency=obj.get("currency") or "",
        unit_amount=obj.get("unit_amount"),
        interval=recurring.get("interval"),
        interval_count=recurring.get("interval_count"),
        trial_days=recurring.get("trial_period_days"),
        tax_behavior=obj.get("tax_behavior"),
        nickname=obj.get("nickname") or "",
        metadata=_metadata(obj),
        active=obj.get("active") is True,
    )


def _feature(obj: Mapping[str, Any]) -> StripeFeature:
    return StripeFeature(
        obj["id"],
        obj["lookup_key"],
        obj.get("name") or "",
        _metadata(obj),
        obj.get("active") is True,
    )
