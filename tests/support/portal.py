"""The portal-session function as a test drives it: sessions, links, subscribed users."""

from __future__ import annotations

import re
from typing import Any

import boto3

from billing.store.keys import user_key
from functions.billing.app import lambda_handler as billing_handler
from functions.portal_session.app import lambda_handler
from tests.conftest import TABLE
from tests.support.events import http_event
from tests.support.lambda_context import HttpResult, invoke
from tests.support.stripe_seed import Account

STRIPE_ID = re.compile(r"\b(cus|sub|si|price|prod|pm|seti|bps|bpc|in|il|evt|req)_[A-Za-z0-9]{6,}")
EVENT = "portal_session/post_portal_session"


def post(body: Any, *, user: str | None = "user-0001", **kwargs: Any) -> HttpResult:
    return invoke(lambda_handler, http_event(EVENT, body=body, user=user, **kwargs))


def snapshot(user: str) -> HttpResult:
    """``GET /billing`` for ``user``, through the billing function."""
    return invoke(billing_handler, http_event("billing/get_billing", user=user))


def link_of(user_id: str) -> str | None:
    item = boto3.client("dynamodb").get_item(
        TableName=TABLE, Key={"pk": {"S": user_key(user_id)}, "sk": {"S": "LINK"}}
    )
    customer = item.get("Item", {}).get("customer_id")  # absent: none, or retired
    return customer["S"] if customer else None


def linked_user(account: Account, user_id: str) -> str:
    """Give ``user_id`` a customer through the API itself (the plain portal session)."""
    result = post({}, user=user_id)
    assert result.status == 200, result.raw
    customer = link_of(user_id)
    assert customer is not None
    return customer


def subscribed_user(account: Account, user_id: str, lookup_key: str = "pro_monthly") -> Any:
    """A linked user with a paid subscription; returns the subscription."""
    subscription = account.subscribe(linked_user(account, user_id), lookup_key)
    account.clear_requests_log()
    return subscription
