"""The demo billing page in a real browser (Debian's Chromium through Playwright).

Sign in on the page, open the portal with its buttons, act in the hosted-portal
simulator, come back and see the page updated by webhooks. Screenshots of each
test's last page land in ``test-artifacts/`` (kept by CI). Chromium is installed
by ``.ci/run``; Playwright cannot download browsers here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import stripe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import ROOT, LocalStack, eventually, subscriber

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "install Chromium: apt-get install -y chromium (see .ci/run)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
    context.close()


def sign_in(page: Page, stack: LocalStack, user_id: str) -> None:
    page.goto(f"{stack.api_url}/")
    page.get_by_label("User id").fill(user_id)
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_test_id("plan-name")).to_have_text("Pro")


def test_cancel_through_the_portal_and_see_the_cancellation_date(
    page: Page, local_stack: LocalStack
) -> None:
    subscriber(local_stack, "browser-cancel")
    sign_in(page, local_stack, "browser-cancel")
    expect(page.get_by_test_id("plan-date")).to_have_text(re.compile(r"^Renews on "))

    page.get_by_test_id("btn-cancel").click()
    expect(page.get_by_test_id("cancel-page")).to_be_visible()
    page.get_by_label("It's too expensive", exact=False).check()
    page.get_by_test_id("confirm-cancel").click()

    expect(page.get_by_test_id("plan-date")).to_have_text(
        re.compile(r"^Cancels on [A-Z][a-z]+ \d{1,2}, \d{4}$")
    )
    expect(page.get_by_test_id("plan-status")).to_have_text("canceling")  # Stripe's spelling
    expect(page.get_by_test_id("access")).to_have_text(
        re.compile(r"^Access: granted until [A-Z][a-z]+ \d{1,2}, \d{4}$")
    )
    expect(page.get_by_test_id("btn-cancel")).to_be_hidden()


def test_a_free_user_subscribes_from_the_plan_list(page: Page, local_stack: LocalStack) -> None:
    page.goto(f"{local_stack.api_url}/")
    page.get_by_label("User id").fill("browser-free")
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_test_id("plan-name")).to_have_text("Free")
    expect(page.get_by_test_id("access")).to_have_text("You are on the free plan.")
    offer = page.get_by_test_id("offer-pro_monthly")
    expect(offer).to_contain_text("Pro")
    expect(offer).to_contain_text("$29.00 / month")
    # What the plan includes, from GET /plans (the catalog's features).
    expect(page.get_by_test_id("includes-pro_monthly").locator("li")).to_have_text(
        ["CSV exports", "Priority support", "Unlimited projects"]
    )

    page.get_by_test_id("subscribe-pro_monthly").click()
    expect(page.get_by_test_id("checkout-line")).to_contain_text("Pro x 1: $29.00 per month")
    page.get_by_label("Visa •••• 4242", exact=False).check()
    page.get_by_test_id("checkout-pay").click()

    # Back on the page: the plan shows at once (POST /billing/refresh when the webhook
    # trails the redirect), the plan list is gone and the address is clean again.
    expect(page.get_by_test_id("plan-name")).to_have_text("Pro")
    expect(page.get_by_test_id("access")).to_have_text("Access: granted")
    expect(page.get_by_test_id("features")).to_have_text(
        "Your plan includes: CSV exports, Priority support, Unlimited projects."
    )
    expect(page.locator("#status")).to_have_text("Welcome to Pro!")
    expect(page.locator("#plans-section")).to_be_hidden()
    expect(page.get_by_test_id("card")).to_contain_text("•••• 4242")
    assert "checkout=" not in page.url


def test_a_canceled_checkout_changes_nothing(page: Page, local_stack: LocalStack) -> None:
    page.goto(f"{local_stack.api_url}/")
    page.get_by_label("User id").fill("browser-free-back")
    page.get_by_test_id("sign-in").click()

    page.get_by_test_id("subscribe-basic_monthly").click()
    page.get_by_test_id("checkout-back").click()

    expect(page.locator("#status")).to_have_text("Checkout canceled: nothing was charged.")
    expect(page.get_by_test_id("plan-name")).to_have_text("Free")
    expect(page.get_by_test_id("subscribe-basic_monthly")).to_be_enabled()


def test_cancel_then_resume_from_the_banner(page: Page, local_stack: LocalStack) -> None:
    subscriber(local_stack, "browser-resume")
    sign_in(page, local_stack, "browser-resume")
    expect(page.get_by_test_id("notice")).to_be_hidden()
    page.get_by_test_id("btn-cancel").click()
    page.get_by_test_id("confirm-cancel").click()
    notice = page.get_by_test_id("notice-text")
    expect(notice).to_have_text(
        re.compile(r"^Your plan cancels on [A-Z][a-z]+ \d{1,2}, \d{4}\. You keep it until then\.$")
    )

    page.get_by_test_id("notice-resume").click()
    page.get_by_test_id("renew-subscription").click()
    page.get_by_test_id("return-link").click()

    expect(page.get_by_test_id("plan-date")).to_have_text(re.compile(r"^Renews on "))
    expect(page.get_by_test_id("notice")).to_be_hidden()
    expect(page.get_by_test_id("plan-status")).to_have_text("active")


def test_a_failed_renewal_shows_a_banner_until_the_card_is_fixed_and_the_invoice_paid(
    page: Page, local_stack: LocalStack
) -> None:
    customer = subscriber(local_stack, "browser-past-due")
    client = stripe.StripeClient("sk_test_standin", base_addresses={"api": local_stack.stripe_url})
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", {"customer": customer})
    client.v1.customers.update(
        customer, {"invoice_settings": {"default_payment_method": failing.id}}
    )
    renewed = requests.post(  # a month later the renewal is declined
        f"{local_stack.stripe_url}/_standin/customers/{customer}/advance_clock",
        json={"seconds": 32 * 86_400},
        timeout=10,
    )
    assert renewed.status_code == 200, renewed.text
    token = local_stack.token("browser-past-due")
    assert (
        eventually(local_stack, token, lambda b: b["status"] == "past_due")["status"] == "past_due"
    )
    sign_in(page, local_stack, "browser-past-due")
    date = r"[A-Z][a-z]+ \d{1,2}, \d{4}"
    expect(page.get_by_test_id("notice-text")).to_have_text(
        re.compile(rf"^Your last payment failed — update your card by {date} to keep your plan\.$")
    )
    expect(page.get_by_test_id("access")).to_have_text(
        re.compile(rf"^Access: grace period until {date} \(past due\)$")
    )
    expect(page.get_by_test_id("notice-pay")).to_have_text("Pay $29.00 now")

    # Fix: a new card through the portal's payment-method flow...
    page.get_by_test_id("notice-fix").click()
    page.locator("#card-pm_card_mastercard").check()
    page.get_by_test_id("save-payment-method").click()
    expect(page.get_by_test_id("card")).to_contain_text("•••• 4444")
    expect(page.get_by_test_id("notice")).to_be_visible()  # the invoice is still open
    # ...then the open invoice paid on Stripe's invoice page, in the tab the link opens.
    with page.context.expect_page() as opened:
        page.get_by_test_id("notice-pay").click()
    invoice = opened.value
    invoice.get_by_test_id("invoice-pay").click()
    expect(invoice.get_by_test_id("invoice")).to_have_attribute("data-state", "paid")
    invoice.close()
    page.bring_to_front()

    expect(page.get_by_test_id("notice")).to_be_hidden()
    expect(page.get_by_test_id("plan-status")).to_have_text("active")
    expect(page.get_by_test_id("access")).to_have_text("Access: granted")


def test_change_plan_and_see_the_new_plan(page: Page, local_stack: LocalStack) -> None:
    subscriber(local_stack, "browser-plan")
    sign_in(page, local_stack, "browser-plan")

    page.get_by_test_id("btn-change-plan").click()
    expect(page.get_by_test_id("update-page")).to_be_visible()
    page.locator("label", has_text=re.compile(r"^\s*Basic .*month")).click()
    page.get_by_test_id("continue").click()
    page.get_by_test_id("confirm-update").click()

    expect(page.get_by_test_id("plan-name")).to_have_text("Basic")


def test_update_the_card_and_see_its_last_digits(page: Page, local_stack: LocalStack) -> None:
    subscriber(local_stack, "browser-card")
    sign_in(page, local_stack, "browser-card")
    expect(page.get_by_test_id("card")).to_contain_text("4242")

    page.get_by_test_id("btn-update-card").click()
    page.locator("#card-pm_card_mastercard").check()
    page.get_by_test_id("save-payment-method").click()

    expect(page.get_by_test_id("card")).to_contain_text("•••• 4444")


def test_an_empty_user_id_signs_in_as_the_demo_user(page: Page, local_stack: LocalStack) -> None:
    page.goto(f"{local_stack.api_url}/")
    user_id = page.get_by_label("User id")
    expect(user_id).to_have_attribute("placeholder", local_stack.info["demo_user"])
    expect(user_id).to_have_value("")  # nothing written into a field someone may be typing in

    page.get_by_test_id("sign-in").click()

    expect(page.get_by_text(f"Signed in as {local_stack.info['demo_user']}")).to_be_visible()
    expect(page.get_by_test_id("plan-name")).to_have_text("Pro")


@pytest.mark.parametrize("width", [390, 1280])
def test_the_page_is_tidy_and_keyboard_friendly(
    browser: Browser, local_stack: LocalStack, width: int, request: pytest.FixtureRequest
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    try:
        page.goto(f"{local_stack.api_url}/")
        # An empty status line takes no room (a grid row and its gap made a blank band).
        expect(page.locator("#status")).to_have_css("display", "none")
        page.get_by_label("User id").fill(local_stack.info["demo_user"])
        page.get_by_label("User id").press("Enter")

        expect(page.get_by_test_id("plan-name")).to_have_text("Pro")
        expect(page.get_by_test_id("access")).to_have_text("Access: granted")
        # Focus moves from the form that is gone to the billing page that replaced it.
        expect(page.locator("#plan-title")).to_be_focused()
        boxes = [s.bounding_box() for s in page.locator("#billing > section:visible").all()]
        assert len(boxes) == 3
        for upper, lower in itertools.pairwise(boxes):
            assert upper is not None
            assert lower is not None
            assert lower["y"] - (upper["y"] + upper["height"]) >= 12  # cards do not touch
        # The page names its icon, so no browser asks for a /favicon.ico that is not there.
        expect(page.locator("link[rel=icon]")).to_have_count(1)
        assert missing == []
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
        context.close()


@pytest.mark.parametrize("width", [390, 1280])
def test_the_hosted_invoice_page_shows_every_line_whole(
    browser: Browser, local_stack: LocalStack, width: int, request: pytest.FixtureRequest
) -> None:
    token = local_stack.token(local_stack.info["demo_user"])
    invoice = local_stack.get("/billing", token).json()["invoices"]["data"][0]
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        page.goto(invoice["hosted_invoice_url"])
        expect(page.get_by_test_id("invoice")).to_contain_text("Amount paid")
        # Nothing hidden behind a scroll bar or cut at the card's edge, on a phone too.
        overflow = page.evaluate(
            """() => [...document.querySelectorAll('.scroll, th, td')]
                .filter((e) => e.scrollWidth > e.clientWidth + 1)
                .map((e) => e.textContent)"""
        )
        assert overflow == []
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
        context.close()
