"""The stand-in's hosted invoice pages: what the billing page's invoice links open."""

from __future__ import annotations

import re

import pytest
import requests

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
