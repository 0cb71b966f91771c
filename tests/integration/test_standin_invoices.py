"""The stand-in's hosted invoice pages: what the billing page's invoice links open."""

from __future__ import annotations

import re

import pytest
import requests
import stripe

from sandbox.stripe_standin.server import StripeStandIn
from tests.support.stripe_seed import Account, seed_account


@pytest.fixture
def seeded(stripe_account: StripeStandIn) -> Account:
    return seed_account(stripe_account)


def subscriber(account: Account, lookup_key: str, *, card: str = "pm_card_visa") -> str:
    customer = account.client.v1.customers.create(
        params={"email": "receipt@example.com", "name": "Receipt User"}
    )
    account.subscribe(customer.id, lookup_key, quantity=2)
    pm = account.client.v1.payment_methods.attach(card, params={"customer": customer.id})
    account.client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    return customer.id


def test_a_paid_invoice_opens_as_a_receipt_with_its_plan_and_total(seeded: Account) -> None:
    customer = subscriber(seeded, "pro_monthly")
    [invoice] = seeded.client.v1.invoices.list(params={"customer": customer}).data
    assert invoice.hosted_invoice_url

    page = requests.get(invoice.hosted_invoice_url, timeout=5)

    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert f"Invoice {invoice.number}" in page.text
    assert 'data-state="paid"' in page.text
    assert "Pro x 2" in page.text
    assert "$58.00" in page.text  # 2 x $29.00
    assert "receipt@example.com" in page.text
    assert "sk_test" not in page.text


def test_an_unpaid_renewal_shows_the_amount_due(seeded: Account) -> None:
    customer = subscriber(seeded, "basic_monthly", card="pm_card_chargeCustomerFail")
    seeded.standin.advance_clock(customer, seconds=31 * 86_400)
    invoices = seeded.client.v1.invoices.list(params={"customer": customer}).data
    [renewal] = [i for i in invoices if i.status == "open"]
    assert renewal.hosted_invoice_url

    page = requests.get(renewal.hosted_invoice_url, timeout=5)

    assert 'data-state="due"' in page.text
    assert re.search(r"Amount due</th><td>\$18\.00", page.text)


def test_the_pdf_is_a_one_page_pdf_naming_the_invoice(seeded: Account) -> None:
    customer = subscriber(seeded, "pro_monthly")
    [invoice] = seeded.client.v1.invoices.list(params={"customer": customer}).data
    assert invoice.invoice_pdf

    pdf = requests.get(invoice.invoice_pdf, timeout=5)

    assert pdf.headers["Content-Type"] == "application/pdf"
    body = pdf.content
    assert body.startswith(b"%PDF-1.4")
    assert body.rstrip().endswith(b"%%EOF")
    assert f"(Invoice {invoice.number})".encode() in body
    # The xref table points at each object: a reader can open it.
    offsets = [int(x) for x in re.findall(rb"(\d{10}) 00000 n", body)]
    assert [body[o : o + 7] for o in offsets] == [b"%d 0 obj" % n for n in range(1, 6)]
    startxref = int(re.findall(rb"startxref\n(\d+)", body)[0])
    assert body[startxref:].startswith(b"xref")


def test_an_unknown_invoice_token_is_not_found(seeded: Account) -> None:
    assert requests.get(f"{seeded.standin.url}/i/nope", timeout=5).status_code == 404
    assert requests.get(f"{seeded.standin.url}/i/nope/pdf", timeout=5).status_code == 404


def past_due(seeded: Account) -> tuple[str, str]:
    """A basic_monthly subscriber whose first renewal was declined: (customer, open invoice)."""
    customer = subscriber(seeded, "basic_monthly", card="pm_card_chargeCustomerFail")
    seeded.standin.advance_clock(customer, seconds=31 * 86_400)
    invoices = seeded.client.v1.invoices.list(params={"customer": customer}).data
    [renewal] = [i for i in invoices if i.status == "open"]
    return customer, renewal.id


def events_since(seeded: Account, start: int) -> list[str]:
    return [c["type"] for c in seeded.changes()[start:]]


def test_paying_an_open_invoice_makes_a_past_due_subscription_active(seeded: Account) -> None:
    customer, invoice_id = past_due(seeded)
    [subscription] = seeded.client.v1.subscriptions.list(params={"customer": customer}).data
    assert subscription.status == "past_due"
    start = len(seeded.changes())

    paid = seeded.client.v1.invoices.pay(invoice_id, params={"payment_method": "pm_card_visa"})

    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 1800, 0)
    assert paid.status_transitions.paid_at is not None
    assert seeded.client.v1.subscriptions.retrieve(subscription.id).status == "active"
    assert events_since(seeded, start) == [
        "payment_method.attached",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]
    with pytest.raises(stripe.InvalidRequestError, match="already paid"):
        seeded.client.v1.invoices.pay(invoice_id)


def test_a_declined_payment_leaves_the_invoice_open(seeded: Account) -> None:
    _, invoice_id = past_due(seeded)
    start = len(seeded.changes())

    with pytest.raises(stripe.CardError) as declined:
        seeded.client.v1.invoices.pay(invoice_id)  # the card on file still declines

    assert declined.value.code == "card_declined"
    invoice = seeded.client.v1.invoices.retrieve(invoice_id)
    assert (invoice.status, invoice.attempt_count) == ("open", 2)
    assert events_since(seeded, start) == ["invoice.payment_failed"]


def test_the_hosted_page_pays_an_open_invoice_with_a_card(seeded: Account) -> None:
    _, invoice_id = past_due(seeded)
    url = str(seeded.client.v1.invoices.retrieve(invoice_id).hosted_invoice_url)
    assert "Pay $18.00" in requests.get(url, timeout=5).text

    declined = requests.post(url, data={"card": "pm_card_visa_chargeDeclined"}, timeout=5)
    assert declined.status_code == 402
    assert "Your card was declined." in declined.text

    paid = requests.post(url, data={"card": "pm_card_visa"}, timeout=5)  # follows the 303

    assert paid.status_code == 200
    assert 'data-state="paid"' in paid.text
    assert "Pay $" not in paid.text
