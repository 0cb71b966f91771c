"""A free user subscribes through the whole local stack: POST /checkout-sessions, the
stand-in's hosted Checkout page, the webhooks, and the snapshot with its access answer.
HTTP all the way; each test has its own new user."""

from __future__ import annotations

from typing import Any

import requests

from tests.e2e.conftest import LocalStack, eventually


def open_checkout(stack: LocalStack, token: str, plan: str) -> str:
    """``POST /checkout-sessions``; the hosted page's URL, checked to answer."""
    answer = stack.post(
        "/checkout-sessions", token, {"plan": plan, "return_url": f"{stack.api_url}/"}
    )
    assert answer.status_code == 200, answer.text
    url = str(answer.json()["url"])
    page = requests.get(url, timeout=10)
    assert page.status_code == 200, page.text
    assert "Subscribe" in page.text
    return url


def test_a_new_user_subscribes_and_the_snapshot_grants_access(local_stack: LocalStack) -> None:
    token = local_stack.token("checkout-new")
    free = local_stack.get("/billing", token).json()
    assert (free["status"], free["access"]["state"], free["access"]["reason"]) == (
        "none",
        "denied",
        "none",
    )
    url = open_checkout(local_stack, token, "pro_monthly")

    paid = requests.post(url, data={"card": "pm_card_visa"}, allow_redirects=False, timeout=10)

    assert paid.status_code == 303
    assert paid.headers["location"] == f"{local_stack.api_url}/?checkout=success"
    billing = eventually(local_stack, token, lambda b: b["plan"])
    assert billing["plan"]["name"] == "Pro"
    assert billing["status"] == "active"
    assert billing["access"] == {"state": "granted", "until": None, "reason": "active"}
    assert billing["payment_method"]["last4"] == "4242"
    # Subscribed now: a second checkout is refused, plan changes go through the portal.
    again = local_stack.post("/checkout-sessions", token, {"plan": "basic_monthly"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_subscribed"


def test_a_declined_card_leaves_the_user_free_and_the_page_open(local_stack: LocalStack) -> None:
    token = local_stack.token("checkout-declined")
    url = open_checkout(local_stack, token, "basic_monthly")

    declined = requests.post(url, data={"card": "pm_card_visa_chargeDeclined"}, timeout=10)

    assert declined.status_code == 402
    assert "Your card was declined." in declined.text
    assert requests.get(url, timeout=10).status_code == 200  # still payable with another card
    billing = local_stack.get("/billing", token).json()
    assert (billing["status"], billing["plan"], billing["access"]["state"]) == (
        "none",
        None,
        "denied",
    )


def test_a_card_needing_3d_secure_is_incomplete_until_the_customer_authenticates(
    local_stack: LocalStack,
) -> None:
    token = local_stack.token("checkout-3ds")
    url = open_checkout(local_stack, token, "pro_monthly")

    challenge = requests.post(url, data={"card": "pm_card_threeDSecure2Required"}, timeout=10)

    assert challenge.status_code == 200
    assert "3D Secure" in challenge.text
    waiting = eventually(local_stack, token, lambda b: b["status"] == "incomplete")
    # The first payment is pending: no access by default (IncompleteGrantsAccess=false);
    # only news from Stripe changes a denial, so until is null.
    assert waiting["status"] == "incomplete"
    assert waiting["access"] == {"state": "denied", "until": None, "reason": "incomplete"}
    # Back on the page with the same request: the same session, still waiting for the bank.
    again = local_stack.post(
        "/checkout-sessions",
        token,
        {"plan": "pro_monthly", "return_url": f"{local_stack.api_url}/"},
    )
    assert again.json()["url"] == url

    passed = requests.post(
        f"{url}/authenticate", data={"outcome": "complete"}, allow_redirects=False, timeout=10
    )

    assert passed.status_code == 303
    billing = eventually(local_stack, token, lambda b: b["status"] == "active")
    assert billing["access"] == {"state": "granted", "until": None, "reason": "active"}
    assert billing["payment_method"]["last4"] == "3220"


def test_a_failed_challenge_then_expiry_leaves_the_user_free(local_stack: LocalStack) -> None:
    token = local_stack.token("checkout-3ds-failed")
    url = open_checkout(local_stack, token, "basic_monthly")
    requests.post(url, data={"card": "pm_card_threeDSecure2Required"}, timeout=10)

    failed = requests.post(f"{url}/authenticate", data={"outcome": "fail"}, timeout=10)
    assert failed.status_code == 402
    # Another plan instead: the product expires the old session, and Stripe ends the
    # incomplete subscription with it, so nothing of the abandoned attempt stays payable.
    other = local_stack.post(
        "/checkout-sessions",
        token,
        {"plan": "pro_monthly", "return_url": f"{local_stack.api_url}/"},
    )
    assert other.status_code == 200
    assert other.json()["url"] != url

    def expired(billing: dict[str, Any]) -> bool:
        return [s["status"] for s in billing["subscriptions"]] == ["incomplete_expired"]

    billing = eventually(local_stack, token, expired)
    assert expired(billing)
    assert (billing["status"], billing["plan"]) == ("none", None)
    # The access table: an expired first payment grants nothing, and says so.
    assert billing["access"] == {"state": "denied", "until": None, "reason": "incomplete_expired"}
    assert requests.get(url, timeout=10).status_code == 410
