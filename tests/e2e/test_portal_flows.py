"""Through the whole local stack: a portal session, the hosted-portal simulator, the webhook,
and the snapshot showing the change. HTTP all the way; each test has its own subscriber."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urljoin

import requests

from tests.e2e.conftest import LocalStack, eventually, subscriber


def open_portal(stack: LocalStack, token: str, body: dict[str, Any]) -> requests.Response:
    """``POST /portal-sessions`` then open the returned URL, as the demo page does."""
    session = stack.post("/portal-sessions", token, {"return_url": f"{stack.api_url}/", **body})
    assert session.status_code == 200, session.text
    page = requests.get(session.json()["url"], timeout=10)
    assert page.status_code == 200, page.text
    return page


def submit(page: requests.Response, action_suffix: str, **fields: str) -> requests.Response:
    """POST the page's form whose action ends with ``action_suffix``, with its hidden fields."""
    for match in re.finditer(r'<form method="post" action="([^"]+)">(.*?)</form>', page.text, re.S):
        action = urljoin(page.url, html.unescape(match.group(1)))
        if action.endswith(action_suffix):
            hidden = dict(
                re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', match.group(2))
            )
            return requests.post(
                action, data={**hidden, **fields}, allow_redirects=False, timeout=10
            )
    raise AssertionError(f"no form ending in {action_suffix} on {page.url}")


def test_cancelling_in_the_portal_shows_the_cancellation_date(local_stack: LocalStack) -> None:
    subscriber(local_stack, "e2e-cancel")
    token = local_stack.token("e2e-cancel")
    before = eventually(local_stack, token, lambda b: b["status"] == "active")
    assert before["cancels_at"] is None

    page = open_portal(local_stack, token, {"flow": "subscription_cancel"})
    done = submit(page, "/cancel", reason="too_expensive")

    assert done.status_code == 303
    assert done.headers["Location"] == f"{local_stack.api_url}/"
    after = eventually(local_stack, token, lambda b: b["cancels_at"] is not None)
    assert after["cancels_at"] == before["renews_at"]  # at period end, as configured
    assert after["status"] == "active"
    assert after["actions"]["subscription_cancel"] is False


def test_a_new_card_in_the_portal_becomes_the_card_on_the_page(local_stack: LocalStack) -> None:
    subscriber(local_stack, "e2e-card")
    token = local_stack.token("e2e-card")
    eventually(local_stack, token, lambda b: (b["payment_method"] or {}).get("last4") == "4242")

    page = open_portal(local_stack, token, {"flow": "payment_method_update"})
    done = submit(page, "/payment-method", card="pm_card_mastercard")

    assert done.status_code == 303
    after = eventually(local_stack, token, lambda b: b["payment_method"]["last4"] == "4444")
    assert after["payment_method"]["brand"] == "mastercard"


def test_confirming_a_plan_change_shows_the_new_plan(local_stack: LocalStack) -> None:
    subscriber(local_stack, "e2e-plan")
    token = local_stack.token("e2e-plan")
    eventually(local_stack, token, lambda b: b["plan"] is not None)

    page = open_portal(
        local_stack, token, {"flow": "subscription_update_confirm", "plan": "basic_monthly"}
    )
    done = submit(page, "/confirm")

    assert done.status_code == 303
    after = eventually(local_stack, token, lambda b: b["plan"]["lookup_key"] == "basic_monthly")
    assert after["plan"]["name"] == "Basic"
    assert after["status"] == "active"
