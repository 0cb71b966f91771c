"""The stand-in's hosted-portal simulator and customer clocks, driven over HTTP.

Sessions are created with stripe-python; the pages are fetched and their forms
submitted with ``requests``, as a browser without JavaScript would. Outcomes are
read back from the Stripe API and the stand-in's change log.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import stripe

from sandbox.stripe_standin.core import add_interval
from sandbox.stripe_standin.server import StripeStandIn
from tests.support.stripe_seed import Account, seed_account

RETURN_URL = "https://app.example.com/account"
SessionParams = stripe.params.billing_portal.SessionCreateParams
ConfigurationParams = stripe.params.billing_portal.ConfigurationCreateParams


# --- reading pages -------------------------------------------------------------------------------

VOID = {"input", "meta", "br", "img", "hr", "link"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


@dataclass
class Form:
    action: str
    method: str
    fields: list[Element] = field(default_factory=list)  # inputs and buttons

    def defaults(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for f in self.fields:
            name = f.attrs.get("name")
            if f.tag != "input" or not name:
                continue
            if f.attrs.get("type") == "radio" and "checked" not in f.attrs:
                continue
            values[name] = f.attrs.get("value", "")
        return values


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self.forms: list[Form] = []
        self._open: list[Element] = []
        self._form: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag == "form":
            self._form = Form(element.attrs.get("action", ""), element.attrs.get("method", "get"))
            self.forms.append(self._form)
        elif tag in ("input", "button") and self._form is not None:
            self._form.fields.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


class Page:
    """A fetched portal page: elements by ``data-testid``/``id`` and its forms."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.url = response.url
        parser = _Parser()
        parser.feed(response.text)
        self.elements, self.forms = parser.elements, parser.forms

    @property
    def status(self) -> int:
        return self.response.status_code

    def all(self, testid: str) -> list[Element]:
        return [e for e in self.elements if e.attrs.get("data-testid") == testid]

    def one(self, testid: str) -> Element:
        [element] = self.all(testid)
        return element

    def text(self, testid: str) -> str:
        return " ".join(self.one(testid).text.split())

    def has(self, testid: str) -> bool:
        return bool(self.all(testid))

    def by_id(self, element_id: str) -> Element:
        [element] = [e for e in self.elements if e.attrs.get("id") == element_id]
        return element

    def form_of(self, button_testid: str) -> Form:
        [form] = [
            f
            for f in self.forms
            if any(b.attrs.get("data-testid") == button_testid for b in f.fields)
        ]
        return form


class Browser:
    """A cookie-less form submitter: GET pages, POST forms, follow 303s unless told not to."""

    def __init__(self) -> None:
        self.http = requests.Session()
        self.http.trust_env = False

    def get(self, url: str) -> Page:
        return Page(self.http.get(url, timeout=5))

    def href(self, page: Page, testid: str) -> Page:
        return self.get(urljoin(page.url, page.one(testid).attrs["href"]))

    def submit(self, page: Page, button_testid: str, *, follow: bool = True, **values: str) -> Page:
        form = page.form_of(button_testid)
        data = form.defaults() | values
        url = urljoin(page.url, form.action)
        if form.method.lower() == "get":
            return Page(self.http.get(url, params=data, timeout=5, allow_redirects=follow))
        return Page(self.http.post(url, data=data, timeout=5, allow_redirects=follow))


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def seeded(stripe_account: StripeStandIn) -> Account:
    return seed_account(stripe_account)


@pytest.fixture
def browser() -> Iterator[Browser]:
    browser = Browser()
    yield browser
    browser.http.close()


@dataclass
class Customer:
    id: str
    subscription: stripe.Subscription


def subscribed(account: Account, lookup_key: str = "basic_monthly", *, card: str = "") -> Customer:
    customer = account.client.v1.customers.create(
        params={"email": "portal@example.com", "name": "Portal User"}
    )
    subscription = account.subscribe(customer.id, lookup_key)
    if card:
        pm = account.client.v1.payment_methods.attach(card, params={"customer": customer.id})
        account.client.v1.customers.update(
            customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
        )
    return Customer(customer.id, subscription)


def portal_url(
    account: Account,
    customer_id: str,
    *,
    configuration: str = "",
    flow_data: dict[str, Any] | None = None,
) -> str:
    params: dict[str, Any] = {
        "customer": customer_id,
        "configuration": configuration or account.configuration,
        "return_url": RETURN_URL,
    }
    if flow_data is not None:
        params["flow_data"] = flow_data
    session = account.client.v1.billing_portal.sessions.create(params=cast(SessionParams, params))
    return session.url


def configuration(account: Account, features: dict[str, Any]) -> str:
    """A portal configuration with ``features`` (payment-method update always on)."""
    params = {"features": {"payment_method_update": {"enabled": True}, **features}}
    return account.client.v1.billing_portal.configurations.create(
        params=cast(ConfigurationParams, params)
    ).id


def long_date(timestamp: int) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return f"{moment:%B} {moment.day}, {moment.year}"


def change_types(account: Account, since: int) -> list[str]:
    return [c["type"] for c in account.changes()[since:]]


def subscription(account: Account, sub_id: str) -> stripe.Subscription:
    return account.client.v1.subscriptions.retrieve(sub_id)


# --- home ----------------------------------------------------------------------------------------


def test_home_shows_plan_payment_method_invoices_and_the_enabled_actions(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded, "pro_monthly")
    item = customer.subscription["items"].data[0]

    page = browser.get(portal_url(seeded, customer.id))

    assert page.status == 200
    assert page.response.headers["Content-Type"].startswith("text/html")
    assert page.has("portal-home")
    plan = page.one("subscription")
    assert plan.attrs["data-subscription-id"] == customer.subscription.id
    assert page.text("plan-name") == "Pro"
    assert page.text("plan-status") == "Active"
    assert page.text("plan-renewal") == f"Renews on {long_date(item.current_period_end)}"
    [card] = page.all("payment-method")
    assert card.attrs["data-default"] == "true"
    assert page.text("card-last4") == "4242"
    assert page.has("default-badge")
    [invoice] = page.all("invoice")
    assert "paid" in invoice.text
    assert {"change-plan", "cancel-subscription", "update-payment-method", "advance-clock"} <= {
        e.attrs.get("data-testid") for e in page.elements
    }
    back = page.one("return-link")
    assert back.attrs["href"] == RETURN_URL
    assert "Return to Stand-in Inc." in back.text
    assert page.text("headline") == "Manage your subscription"
    assert '<meta name="viewport"' in page.response.text


def test_home_hides_what_the_configuration_disables(seeded: Account, browser: Browser) -> None:
    customer = subscribed(seeded)
    bare = configuration(seeded, {"invoice_history": {"enabled": False}})

    page = browser.get(portal_url(seeded, customer.id, configuration=bare))

    assert page.has("subscription")
    assert not page.has("invoices")
    assert not page.has("change-plan")
    assert not page.has("cancel-subscription")
    assert page.has("update-payment-method")
    sub_id = customer.subscription.id
    assert browser.get(f"{page.url}/subscriptions/{sub_id}/cancel").status == 403


# --- payment method ------------------------------------------------------------------------------


def test_a_new_card_becomes_the_customers_default_with_stripes_events(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded)
    home = browser.get(portal_url(seeded, customer.id))
    form_page = browser.href(home, "update-payment-method")
    assert form_page.has("payment-method-page")
    radio = form_page.by_id("card-pm_card_mastercard")
    assert radio.attrs["name"] == "card"
    assert any(
        e.tag == "label" and e.attrs.get("for") == "card-pm_card_mastercard"
        for e in form_page.elements
    )
    since = len(seeded.changes())

    after = browser.submit(form_page, "save-payment-method", card="pm_card_mastercard")

    assert after.response.history[0].status_code == 303
    assert after.has("portal-home")
    assert "updated" in after.text("notice")
    assert change_types(seeded, since) == ["payment_method.attached", "customer.updated"]
    stored = seeded.client.v1.customers.retrieve(customer.id)
    assert stored.invoice_settings is not None
    default = stored.invoice_settings.default_payment_method
    card = seeded.client.v1.payment_methods.retrieve(str(default))
    assert card.card is not None
    assert (card.card.brand, card.card.last4) == ("mastercard", "4444")
    defaults = [e for e in after.all("payment-method") if e.attrs["data-default"] == "true"]
    assert [d.attrs["data-payment-method-id"] for d in defaults] == [card.id]


def test_a_card_declined_when_saved_shows_an_error_and_changes_nothing(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded)
    form_page = browser.get(f"{portal_url(seeded, customer.id)}/payment-method")
    since = len(seeded.changes())

    after = browser.submit(form_page, "save-payment-method", card="pm_card_visa_chargeDeclined")

    assert after.status == 400
    assert "declined" in after.text("error")
    assert change_types(seeded, since) == []


# --- cancel --------------------------------------------------------------------------------------


def test_cancel_at_period_end_records_the_reason_in_a_second_update(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded)
    config = configuration(
        seeded,
        {
            "subscription_cancel": {
                "enabled": True,
                "mode": "at_period_end",
                "cancellation_reason": {
                    "enabled": True,
                    "options": ["too_expensive", "unused", "other"],
                },
            }
        },
    )
    home = browser.get(portal_url(seeded, customer.id, configuration=config))
    cancel_page = browser.href(home, "cancel-subscription")
    reasons = [e.attrs["value"] for e in cancel_page.elements if e.attrs.get("name") == "reason"]
    assert reasons == ["too_expensive", "unused", "other"]
    assert "until the end of your billing period" in cancel_page.text("cancel-effect")
    since = len(seeded.changes())

    after = browser.submit(cancel_page, "confirm-cancel", reason="too_expensive")

    changes = seeded.changes()[since:]
    assert [c["type"] for c in changes] == ["customer.subscription.updated"] * 2
    assert changes[0]["object"]["cancel_at_period_end"] is True
    assert changes[0]["object"]["cancellation_details"]["feedback"] is None
    assert changes[1]["previous_attributes"] == {
        "cancellation_details": {"comment": None, "feedback": None, "reason": None}
    }
    sub = subscription(seeded, customer.subscription.id)
    period_end = sub["items"].data[0].current_period_end
    assert (sub.status, sub.cancel_at_period_end, sub.cancel_at) == ("active", True, period_end)
    assert sub.cancellation_details is not None
    assert sub.cancellation_details.feedback == "too_expensive"
    assert after.text("plan-status") == "Canceling"
    assert after.text("plan-renewal") == f"Cancels on {long_date(period_end)}"
    assert not after.has("cancel-subscription")

    renewed = browser.submit(after, "renew-subscription")

    assert renewed.text("plan-renewal").startswith("Renews on ")
    assert subscription(seeded, customer.subscription.id).cancel_at is None


def test_cancel_immediately_ends_the_subscription(seeded: Account, browser: Browser) -> None:
    customer = subscribed(seeded)
    config = configuration(
        seeded, {"subscription_cancel": {"enabled": True, "mode": "immediately"}}
    )
    cancel_page = browser.get(
        f"{portal_url(seeded, customer.id, configuration=config)}"
        f"/subscriptions/{customer.subscription.id}/cancel"
    )
    assert "immediately" in cancel_page.text("cancel-effect")
    assert not [e for e in cancel_page.elements if e.attrs.get("name") == "reason"]
    since = len(seeded.changes())

    after = browser.submit(cancel_page, "confirm-cancel")

    assert change_types(seeded, since) == ["customer.subscription.deleted"]
    assert subscription(seeded, customer.subscription.id).status == "canceled"
    assert after.has("no-subscriptions")
    assert "canceled" in after.text("notice")


# --- change plan ---------------------------------------------------------------------------------


def test_change_plan_offers_the_configured_prices_and_applies_the_choice(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded)
    home = browser.get(portal_url(seeded, customer.id))
    choose = browser.href(home, "change-plan")
    offered = {e.attrs["value"] for e in choose.elements if e.attrs.get("name") == "price"}
    assert offered == {seeded.prices[k] for k in ("basic_monthly", "pro_monthly", "pro_yearly")}
    assert choose.by_id(f"price-{seeded.prices['basic_monthly']}").attrs.get("checked") == ""
    assert not [e for e in choose.elements if e.attrs.get("id") == "quantity"]  # not adjustable

    confirm = browser.submit(choose, "continue", price=seeded.prices["pro_monthly"])
    assert confirm.has("confirm-page")
    assert confirm.text("new-plan").startswith("Pro")
    since = len(seeded.changes())
    after = browser.submit(confirm, "confirm-update")

    assert change_types(seeded, since) == ["customer.subscription.updated"]
    item = subscription(seeded, customer.subscription.id)["items"].data[0]
    assert item.price.id == seeded.prices["pro_monthly"]
    assert after.text("plan-name") == "Pro"
    assert "updated" in after.text("notice")


def test_quantity_is_offered_within_the_products_bounds(seeded: Account, browser: Browser) -> None:
    customer = subscribed(seeded)
    basic = seeded.products["Basic"]
    config = configuration(
        seeded,
        {
            "subscription_update": {
                "enabled": True,
                "default_allowed_updates": ["price", "quantity"],
                "products": [
                    {
                        "product": basic,
                        "prices": [seeded.prices["basic_monthly"]],
                        "adjustable_quantity": {"enabled": True, "minimum": 1, "maximum": 5},
                    }
                ],
            }
        },
    )
    url = portal_url(seeded, customer.id, configuration=config)
    choose = browser.get(f"{url}/subscriptions/{customer.subscription.id}/update")
    quantity = choose.by_id("quantity")
    assert (quantity.attrs["min"], quantity.attrs["max"]) == ("1", "5")
    assert any(e.tag == "label" and e.attrs.get("for") == "quantity" for e in choose.elements)

    too_many = browser.submit(browser.submit(choose, "continue", quantity="9"), "confirm-update")
    assert too_many.status == 400
    assert "between 1 and 5" in too_many.text("error")

    browser.submit(browser.submit(choose, "continue", quantity="3"), "confirm-update")
    assert subscription(seeded, customer.subscription.id)["items"].data[0].quantity == 3


def dollars(text: str) -> int:
    """``$12.34`` or ``-$5.00`` in cents."""
    sign = -1 if text.startswith("-") else 1
    return sign * round(float(text.lstrip("-").lstrip("$").replace(",", "")) * 100)


def prorating(account: Account, behavior: str) -> str:
    basic, pro = account.products["Basic"], account.products["Pro"]
    return configuration(
        account,
        {
            "subscription_update": {
                "enabled": True,
                "default_allowed_updates": ["price"],
                "proration_behavior": behavior,
                "products": [
                    {"product": basic, "prices": [account.prices["basic_monthly"]]},
                    {"product": pro, "prices": [account.prices["pro_monthly"]]},
                ],
            }
        },
    )


def test_the_confirm_page_shows_the_prorations_the_next_invoice_then_carries(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded)
    seeded.standin.state.advance_clock(customer.id, seconds=10 * 86_400)  # mid-period
    url = portal_url(seeded, customer.id, configuration=prorating(seeded, "create_prorations"))
    choose = browser.get(f"{url}/subscriptions/{customer.subscription.id}/update")

    confirm = browser.submit(choose, "continue", price=seeded.prices["pro_monthly"])

    credit, charge = sorted(dollars(e.text.strip()) for e in confirm.all("proration"))
    assert credit < 0 < charge
    assert dollars(confirm.text("due-today")) == 0
    next_invoice = dollars(confirm.text("next-invoice"))
    assert next_invoice == 2900 + charge + credit  # Pro's month and the difference
    since = len(seeded.changes())
    browser.submit(confirm, "confirm-update")
    assert change_types(seeded, since).count("invoiceitem.created") == 2

    end = subscription(seeded, customer.subscription.id)["items"].data[0].current_period_end
    seeded.standin.state.advance_clock(customer.id, to=end + 60)
    renewed = subscription(seeded, customer.subscription.id)
    assert seeded.client.v1.invoices.retrieve(str(renewed.latest_invoice)).amount_paid == (
        next_invoice
    )


def test_with_always_invoice_the_confirm_page_shows_what_is_charged_today(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded)
    seeded.standin.state.advance_clock(customer.id, seconds=10 * 86_400)
    url = portal_url(seeded, customer.id, configuration=prorating(seeded, "always_invoice"))
    choose = browser.get(f"{url}/subscriptions/{customer.subscription.id}/update")
    confirm = browser.submit(choose, "continue", price=seeded.prices["pro_monthly"])
    due_today = dollars(confirm.text("due-today"))
    assert due_today > 0
    assert dollars(confirm.text("next-invoice")) == 2900

    browser.submit(confirm, "confirm-update")

    changed = subscription(seeded, customer.subscription.id)
    invoice = seeded.client.v1.invoices.retrieve(str(changed.latest_invoice))
    assert (invoice.billing_reason, invoice.amount_paid) == ("subscription_update", due_today)


# --- flows and after_completion ------------------------------------------------------------------


def test_payment_method_flow_opens_its_page_and_redirects_after_completion(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded)
    done = "https://app.example.com/account?updated=card"
    url = portal_url(
        seeded,
        customer.id,
        flow_data={
            "type": "payment_method_update",
            "after_completion": {"type": "redirect", "redirect": {"return_url": done}},
        },
    )
    page = browser.get(url)
    assert page.has("payment-method-page")
    assert page.one("go-back").attrs["href"] == RETURN_URL

    after = browser.submit(page, "save-payment-method", follow=False, card="pm_card_mastercard")

    assert after.status == 303
    assert after.response.headers["Location"] == done
    assert browser.get(url).has("portal-home")  # the flow is done: the URL now opens home


def test_cancel_flow_ends_on_the_hosted_confirmation(seeded: Account, browser: Browser) -> None:
    customer = subscribed(seeded)
    url = portal_url(
        seeded,
        customer.id,
        flow_data={
            "type": "subscription_cancel",
            "subscription_cancel": {"subscription": customer.subscription.id},
            "after_completion": {
                "type": "hosted_confirmation",
                "hosted_confirmation": {"custom_message": "Sorry to see you go."},
            },
        },
    )
    page = browser.get(url)
    assert page.has("cancel-page")

    after = browser.submit(page, "confirm-cancel")

    assert urlsplit(after.url).path.endswith("/confirmation")
    assert after.text("confirmation-message") == "Sorry to see you go."
    assert after.one("return-link").attrs["href"] == RETURN_URL
    assert subscription(seeded, customer.subscription.id).cancel_at_period_end is True


def test_update_flow_returns_to_the_portal_home_by_default(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded)
    url = portal_url(
        seeded,
        customer.id,
        flow_data={
            "type": "subscription_update",
            "subscription_update": {"subscription": customer.subscription.id},
        },
    )
    page = browser.get(url)
    assert page.has("update-page")

    confirm = browser.submit(page, "continue", price=seeded.prices["pro_yearly"])
    after = browser.submit(confirm, "confirm-update")

    assert after.has("portal-home")
    item = subscription(seeded, customer.subscription.id)["items"].data[0]
    assert item.price.id == seeded.prices["pro_yearly"]


def test_update_confirm_flow_applies_the_preselected_price(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded)
    item = customer.subscription["items"].data[0]
    url = portal_url(
        seeded,
        customer.id,
        flow_data={
            "type": "subscription_update_confirm",
            "subscription_update_confirm": {
                "subscription": customer.subscription.id,
                "items": [{"id": item.id, "price": seeded.prices["pro_monthly"]}],
            },
            "after_completion": {"type": "redirect", "redirect": {"return_url": RETURN_URL}},
        },
    )
    page = browser.get(url)
    assert page.has("confirm-page")
    assert page.text("new-plan").startswith("Pro")
    since = len(seeded.changes())

    after = browser.submit(page, "confirm-update", follow=False)

    assert (after.status, after.response.headers["Location"]) == (303, RETURN_URL)
    assert change_types(seeded, since) == ["customer.subscription.updated"]
    updated = subscription(seeded, customer.subscription.id)["items"].data[0]
    assert (updated.id, updated.price.id) == (item.id, seeded.prices["pro_monthly"])


# --- session URLs --------------------------------------------------------------------------------


def test_a_session_url_must_be_opened_within_five_minutes(
    seeded: Account, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = subscribed(seeded)
    url = portal_url(seeded, customer.id)
    state = seeded.standin.state
    created = state.clock()
    monkeypatch.setattr(state, "clock", lambda: created + 301)

    page = browser.get(url)

    assert page.status == 410
    assert page.text("session-unavailable") == "This session has expired."


def test_an_opened_session_stays_usable_for_an_hour(
    seeded: Account, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = subscribed(seeded)
    url = portal_url(seeded, customer.id)
    state = seeded.standin.state
    start = state.clock()
    monkeypatch.setattr(state, "clock", lambda: start + 240)
    assert browser.get(url).status == 200
    monkeypatch.setattr(state, "clock", lambda: start + 240 + 3599)
    assert browser.get(f"{url}/payment-method").status == 200
    monkeypatch.setattr(state, "clock", lambda: start + 240 + 3601)

    assert browser.get(url).status == 410


def test_an_unknown_session_token_is_not_found(seeded: Account, browser: Browser) -> None:
    page = browser.get(f"{seeded.standin.url}/p/session/test_nope")

    assert page.status == 404


# --- customer clocks -----------------------------------------------------------------------------


def test_advancing_past_the_period_end_renews_with_a_paid_invoice(seeded: Account) -> None:
    customer = subscribed(seeded)
    item = customer.subscription["items"].data[0]
    since = len(seeded.changes())

    response = requests.post(
        f"{seeded.standin.url}/_standin/customers/{customer.id}/advance_clock",
        json={"seconds": 31 * 86_400},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.json()["period_ends"] == 1
    changes = seeded.changes()[since:]
    assert [c["type"] for c in changes] == [
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    assert {c["created"] for c in changes} == {item.current_period_end}
    renewed = subscription(seeded, customer.subscription.id)
    new_item = renewed["items"].data[0]
    assert new_item.current_period_start == item.current_period_end
    assert new_item.current_period_end == add_interval(item.current_period_end, "month", 1)
    assert renewed.status == "active"
    invoice = seeded.client.v1.invoices.retrieve(str(renewed.latest_invoice))
    assert (invoice.status, invoice.billing_reason, invoice.amount_paid) == (
        "paid",
        "subscription_cycle",
        900,
    )
    events = seeded.client.v1.events.list(params={"type": "invoice.paid"}).data
    assert events[0].created == item.current_period_end


def test_a_declining_card_fails_the_renewal_and_the_subscription_goes_past_due(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded, card="pm_card_chargeCustomerFail")
    since = len(seeded.changes())

    seeded.standin.advance_clock(customer.id, seconds=31 * 86_400)

    assert change_types(seeded, since) == [
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    sub = subscription(seeded, customer.subscription.id)
    assert sub.status == "past_due"
    invoice = seeded.client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (invoice.status, invoice.amount_remaining) == ("open", 900)
    home = browser.get(portal_url(seeded, customer.id))
    assert home.text("plan-status") == "Past due"
    assert home.has("payment-problem")


def test_a_subscription_set_to_cancel_ends_at_its_period_end(seeded: Account) -> None:
    customer = subscribed(seeded)
    seeded.client.v1.subscriptions.update(
        customer.subscription.id, params={"cancel_at_period_end": True}
    )
    end = customer.subscription["items"].data[0].current_period_end
    since = len(seeded.changes())

    result = seeded.standin.advance_clock(customer.id, seconds=62 * 86_400)

    assert result["events"] == ["customer.subscription.deleted"]
    [change] = seeded.changes()[since:]
    assert change["created"] == end
    sub = subscription(seeded, customer.subscription.id)
    assert (sub.status, sub.ended_at) == ("canceled", end)


def test_several_periods_renew_in_time_order(seeded: Account) -> None:
    customer = subscribed(seeded)
    since = len(seeded.changes())

    result = seeded.standin.advance_clock(customer.id, seconds=95 * 86_400)

    assert result["period_ends"] == 3
    invoices = [c for c in seeded.changes()[since:] if c["type"] == "invoice.paid"]
    moments = [c["created"] for c in invoices]
    assert len(moments) == 3
    assert moments == sorted(moments)
    assert len(set(moments)) == 3


def test_the_clock_is_per_customer_and_later_actions_happen_on_it(seeded: Account) -> None:
    ahead, other = subscribed(seeded), subscribed(seeded)
    state = seeded.standin.state
    before = state.customer_now(other.id)

    result = seeded.standin.advance_clock(ahead.id, seconds=40 * 86_400)

    assert state.customer_now(other.id) - before < 60
    assert state.customer_now(ahead.id) >= result["time"]
    since = len(seeded.changes())
    seeded.client.v1.subscriptions.update(
        ahead.subscription.id, params={"cancel_at_period_end": True}
    )
    [update] = seeded.changes()[since:]
    assert update["created"] >= result["time"]  # never older than the renewal events
    assert subscription(seeded, other.subscription.id)["items"].data[0].current_period_start == (
        other.subscription["items"].data[0].current_period_start
    )
    clock = requests.get(
        f"{seeded.standin.url}/_standin/customers/{ahead.id}/advance_clock", timeout=5
    ).json()
    assert clock["time"] >= result["time"]


def test_renewal_events_are_delivered_to_webhooks_in_the_order_they_happened(
    seeded: Account,
) -> None:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        customer = subscribed(seeded, card="pm_card_chargeCustomerFail")
        seeded.client.v1.webhook_endpoints.create(
            params={
                "url": f"http://127.0.0.1:{server.server_port}/webhooks/stripe",
                "enabled_events": [
                    "customer.subscription.updated",
                    "invoice.created",
                    "invoice.finalized",
                    "invoice.payment_failed",
                ],
            }
        )
        result = seeded.standin.advance_clock(customer.id, seconds=62 * 86_400)
        seeded.standin.wait_idle()
    finally:
        server.shutdown()
        server.server_close()

    assert [e["type"] for e in received] == result["events"]
    assert result["period_ends"] == 2
    created = [e["created"] for e in received]
    assert created == sorted(created)
    updates = [e for e in received if e["type"] == "customer.subscription.updated"]
    assert updates[-1]["data"]["object"]["status"] == "past_due"
    assert received[-1]["type"] == "invoice.payment_failed"  # still past due: no new update


def test_the_clock_only_moves_forward(seeded: Account) -> None:
    customer = subscribed(seeded)
    url = f"{seeded.standin.url}/_standin/customers/{customer.id}/advance_clock"

    backwards = requests.post(url, json={"to": 1}, timeout=5)
    neither = requests.post(url, json={}, timeout=5)
    unknown = requests.post(
        f"{seeded.standin.url}/_standin/customers/cus_nope/advance_clock",
        json={"seconds": 1},
        timeout=5,
    )

    assert (backwards.status_code, neither.status_code, unknown.status_code) == (400, 400, 404)


def test_the_portal_button_advances_the_clock_one_month_and_the_session_stays_open(
    seeded: Account, browser: Browser
) -> None:
    customer = subscribed(seeded)
    home = browser.get(portal_url(seeded, customer.id))
    before = int(home.one("clock").attrs["datetime"])

    after = browser.submit(home, "advance-clock")

    assert after.status == 200
    assert "one month" in after.text("notice")
    assert int(after.one("clock").attrs["datetime"]) >= add_interval(before, "month", 1)
    assert len(after.all("invoice")) == 2
    assert "Renews on" in after.text("plan-renewal")
