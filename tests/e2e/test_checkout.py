"""A free user subscribes through the whole local stack: POST /checkout-sessions, the
stand-in's hosted Checkout page, the webhooks, and the snapshot with its access answer.
HTTP all the way; each test has its own new user."""

from __future__ import annotations

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
