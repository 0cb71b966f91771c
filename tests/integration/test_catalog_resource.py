"""Custom::StripeCatalog driven by CloudFormation events against the Stripe stand-in.

Each test invokes the function in-process with an event from ``events/catalog/`` whose
ResponseURL points at a local HTTP server, and checks the one answer CloudFormation
would receive, what the stand-in holds afterwards, and the Stripe requests made.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from sandbox.cloudformation import ResponseReceiver
from tests.conftest import TABLE
from tests.support.cloudformation import DeadlineContext, cfn_event, fresh_module, sample_event
from tests.support.portal import linked_user, snapshot
from tests.support.stripe_seed import Account
from tests.support.webhooks import StandinChanges, table_items

PHYSICAL = "stripe-catalog:billing-portal-dev"


@pytest.fixture
def function(account: Account) -> Iterator[ModuleType]:
    with fresh_module("functions.catalog.app") as module:
        yield module


def declared() -> dict[str, Any]:
    properties: dict[str, Any] = copy.deepcopy(sample_event("catalog/create")["ResourceProperties"])
    return properties


def deploy(
    function: ModuleType,
    receiver: ResponseReceiver,
    properties: dict[str, Any] | None = None,
    request: str = "create",
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if properties is not None:
        fields["ResourceProperties"] = properties
    before = len(receiver.answers)
    function.lambda_handler(cfn_event(f"catalog/{request}", receiver, **fields), DeadlineContext())
    assert len(receiver.answers) == before + 1, "exactly one answer per request"
    answer: dict[str, Any] = receiver.answers[-1].body
    return answer


def writes(account: Account) -> list[str]:
    return [
        f"{r['method']} {r['path']}"
        for r in account.requests_log()
        if r["method"] in ("POST", "DELETE")
    ]


def prices_by_key(account: Account) -> dict[str, Any]:
    prices = account.client.v1.prices.list({"limit": 100}).data
    return {p.lookup_key: p for p in prices if p.lookup_key}


def ours(account: Account) -> list[Any]:
    products = account.client.v1.products.list({"limit": 100}).data
    return [
        p
        for p in products
        if p.metadata and p.metadata.to_dict().get("catalog") == "billing-portal-dev"
    ]


def attached(account: Account, product_id: str) -> list[str]:
    listed = account.client.v1.products.features.list(product_id).data
    return sorted(a.entitlement_feature.lookup_key for a in listed)


def test_create_makes_the_declared_catalog_and_answers_its_lookup_keys(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    answer = deploy(function, receiver)

    assert answer["Status"] == "SUCCESS", answer.get("Reason")
    assert answer["PhysicalResourceId"] == PHYSICAL
    assert answer["Data"]["LookupKeys"] == "solo_monthly,team_monthly,team_yearly"
    products = {p.metadata["catalog_key"]: p for p in ours(account)}
    assert {k: (p.name, p.description, p.active) for k, p in products.items()} == {
        "solo": ("Solo", "For one person", True),
        "team": ("Team", "For a team", True),
    }
    assert products["team"].metadata["tier"] == "2"
    prices = prices_by_key(account)
    team = prices["team_monthly"]
    assert (team.product, team.unit_amount, team.currency) == (products["team"].id, 2900, "usd")
    assert team.recurring is not None
    assert team.recurring.trial_period_days == 14
    assert prices["team_yearly"].tax_behavior == "exclusive"
    assert attached(account, products["team"].id) == ["team_exports", "team_sso"]
    assert attached(account, products["solo"].id) == ["team_exports"]


def test_a_second_deploy_with_no_change_writes_nothing(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    deploy(function, receiver)
    account.clear_requests_log()

    answer = deploy(function, receiver, request="update")

    assert answer["Status"] == "SUCCESS", answer.get("Reason")
    assert writes(account) == []
    assert answer["Data"]["FeatureChanges"] == ""


def test_an_update_changes_in_place_what_stripe_allows(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    deploy(function, receiver)
    changed = declared()
    changed["Products"][1]["Name"] = "Team (2027)"
    changed["Features"][1]["Name"] = "SAML single sign-on"
    account.clear_requests_log()

    answer = deploy(function, receiver, changed, request="update")

    assert answer["Status"] == "SUCCESS", answer.get("Reason")
    assert len(writes(account)) == 2  # the product and the feature, nothing else
    assert {p.name for p in ours(account)} == {"Solo", "Team (2027)"}
    sso = account.client.v1.entitlements.features.list({"lookup_key": "team_sso"}).data
    assert [f.name for f in sso] == ["SAML single sign-on"]


def test_a_new_amount_is_a_new_price_that_takes_the_lookup_key_and_the_old_is_archived(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    deploy(function, receiver)
    old = prices_by_key(account)["solo_monthly"]
    changed = declared()
    changed["Products"][0]["Prices"][0]["UnitAmount"] = "1200"

    answer = deploy(function, receiver, changed, request="update")

    assert answer["Status"] == "SUCCESS", answer.get("Reason")
    new = prices_by_key(account)["solo_monthly"]
    assert (new.id != old.id, new.unit_amount, new.active) == (True, 1200, True)
    before = account.client.v1.prices.retrieve(old.id)
    assert (before.lookup_key, before.active, before.unit_amount) == (None, False, 900)


def test_removed_products_and_features_are_archived_and_detached_never_deleted(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    deploy(function, receiver)
    team = next(p for p in ours(account) if p.metadata["catalog_key"] == "team")
    changed = declared()
    changed["Products"] = [changed["Products"][0]]
    changed["Features"] = [changed["Features"][0]]
    account.clear_requests_log()

    answer = deploy(function, receiver, changed, request="update")

    assert answer["Status"] == "SUCCESS", answer.get("Reason")
    assert not [
        w
        for w in writes(account)
        if w.startswith("DELETE /v1/products/prod") and "/features/" not in w
    ]
    assert account.client.v1.products.retrieve(team.id).active is False
    assert {
        p.lookup_key: p.active
        for p in account.client.v1.prices.list({"product": team.id, "limit": 100}).data
    } == {"team_monthly": False, "team_yearly": False}
    archived = account.client.v1.entitlements.features.list({"archived": True}).data
    assert [f.lookup_key for f in archived] == ["team_sso"]
    assert attached(account, team.id) == ["team_exports"]
    assert answer["Data"]["LookupKeys"] == "solo_monthly"


def test_objects_made_elsewhere_are_untouched_unless_a_key_is_taken_over_explicitly(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    foreign = prices_by_key(account)["basic_monthly"]  # made by the seed, as in a Dashboard
    declared_basic = declared()
    declared_basic["Products"][0]["Prices"].append(
        {"LookupKey": "basic_monthly", "Currency": "usd", "UnitAmount": "900", "Interval": "month"}
    )
    account.clear_requests_log()

    refused = deploy(function, receiver, declared_basic)

    assert refused["Status"] == "FAILED"
    assert "basic_monthly belongs to a price not made by this stack" in refused["Reason"]
    assert "TransferLookupKey" in refused["Reason"]
    assert writes(account) == []  # refused before any write

    declared_basic["Products"][0]["Prices"][-1]["TransferLookupKey"] = "true"
    taken = deploy(function, receiver, declared_basic)

    assert taken["Status"] == "SUCCESS", taken.get("Reason")
    assert prices_by_key(account)["basic_monthly"].id != foreign.id
    left = account.client.v1.prices.retrieve(foreign.id)
    assert (left.active, left.lookup_key, left.metadata.to_dict()) == (True, None, {})
    seeded_products = {account.products["Basic"], account.products["Pro"]}
    for product_id in seeded_products:
        assert account.client.v1.products.retrieve(product_id).active is True


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p["Products"][0]["Prices"][0].update(Currency="dollars"), "Currency"),
        (
            lambda p: p["Features"].append({"LookupKey": "x", "Name": "X"}),
            "x is attached to no product",
        ),
        (
            lambda p: p["Products"][1]["Prices"][0].update(LookupKey="solo_monthly"),
            "LookupKey solo_monthly is declared more than once",
        ),
    ],
)
def test_an_invalid_declaration_fails_with_its_reason_and_no_stripe_call(
    function: ModuleType, receiver: ResponseReceiver, account: Account, change: Any, reason: str
) -> None:
    properties = declared()
    change(properties)
    account.clear_requests_log()

    answer = deploy(function, receiver, properties)

    assert answer["Status"] == "FAILED"
    assert reason in answer["Reason"]
    assert account.requests_log() == []


def test_delete_archives_what_it_made_and_a_second_delete_succeeds(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    deploy(function, receiver)

    first = deploy(function, receiver, request="delete")
    account.clear_requests_log()
    second = deploy(function, receiver, request="delete")

    assert (first["Status"], second["Status"]) == ("SUCCESS", "SUCCESS")
    assert writes(account) == []
    assert all(p.active is False for p in ours(account))
    made = [p for p in prices_by_key(account).values() if p.metadata and "catalog" in p.metadata]
    assert made
    assert not [p for p in made if p.active]
    assert account.client.v1.entitlements.features.list().data == []
    # The seed's catalog (made elsewhere) is still on sale.
    assert prices_by_key(account)["basic_monthly"].active is True


def test_the_catalog_is_in_the_table_after_the_deploy_that_made_it(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    # A first deploy makes the catalog before the webhook endpoint exists, so Stripe's
    # product and price events never reach the table: the resource stores them itself.
    answer = deploy(function, receiver)
    assert answer["Status"] == "SUCCESS", answer.get("Reason")

    catalog = {item["sk"]["S"]: item for item in table_items(TABLE) if item["pk"]["S"] == "CATALOG"}
    assert {"PRICE#solo_monthly", "PRICE#team_monthly", "PRICE#team_yearly"} <= set(catalog)
    names = sorted(i["name"]["S"] for sk, i in catalog.items() if sk.startswith("PRODUCT#"))
    assert names == ["Solo", "Team"]
    features = {
        i["lookup_key"]["S"]: i["name"]["S"]
        for sk, i in catalog.items()
        if sk.startswith("FEATURE#")
    }
    assert features == {"team_exports": "CSV exports", "team_sso": "Single sign-on"}
    ids = {
        i["lookup_key"]["S"]: sk.removeprefix("FEATURE#")
        for sk, i in catalog.items()
        if sk.startswith("FEATURE#")
    }
    team = next(p for p in ours(account) if p.metadata["catalog_key"] == "team")
    attached = catalog[f"PRODUCTFEATURES#{team.id}"]["features"]["L"]
    assert sorted(a["S"] for a in attached) == sorted(ids.values())


def test_subscribers_of_a_product_whose_features_change_get_them_without_an_event(
    function: ModuleType,
    receiver: ResponseReceiver,
    account: Account,
    webhook_deployment: dict[str, Any],
) -> None:
    deploy(function, receiver)
    stream = StandinChanges(account)
    stream.pending()  # the catalog's own events: stored by the resource already
    # The subscription is older than the next deploy (a test runs within one second).
    state = account.standin.state
    real_clock = state.clock
    state.clock = lambda: real_clock() - 5
    customer = linked_user(account, "team-user")
    card = account.client.v1.payment_methods.attach("pm_card_visa", {"customer": customer})
    account.client.v1.subscriptions.create(
        {
            "customer": customer,
            "items": [{"price": prices_by_key(account)["team_monthly"].id}],
            "default_payment_method": card.id,
        }
    )
    stream.flush()
    state.clock = real_clock
    assert [f["lookup_key"] for f in snapshot("team-user").body["features"]] == [
        "team_exports",
        "team_sso",
    ]
    changed = declared()
    changed["Features"].append({"LookupKey": "team_audit", "Name": "Audit log"})
    changed["Products"][1]["Features"].append("team_audit")

    answer = deploy(function, receiver, changed, request="update")

    assert answer["Status"] == "SUCCESS", answer.get("Reason")
    assert (answer["Data"]["EntitlementsRefreshed"], answer["Data"]["EntitlementsComplete"]) == (
        "1",
        "true",
    )
    assert [e for e in stream.pending() if "entitlement" in e["type"]] == []  # Stripe: silence
    assert snapshot("team-user").body["features"] == [
        {"lookup_key": "team_audit", "name": "Audit log"},
        {"lookup_key": "team_exports", "name": "CSV exports"},
        {"lookup_key": "team_sso", "name": "Single sign-on"},
    ]
