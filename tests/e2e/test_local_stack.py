"""``make dev`` end to end over HTTP: the local gateway, the functions, the stand-in, webhooks."""

from __future__ import annotations

import os
import re
import subprocess

import requests

from tests.e2e.conftest import (
    ROOT,
    LocalStack,
    dev_command,
    dev_environment,
    start_local_stack,
    stop_local_stack,
)
from tests.support.local_stack import free_port


def test_the_demo_user_sees_plan_card_and_invoices(local_stack: LocalStack) -> None:
    token = local_stack.token(local_stack.info["demo_user"])

    response = local_stack.get("/billing", token)

    assert response.status_code == 200, response.text
    billing = response.json()
    assert billing["status"] == "active"
    assert billing["plan"]["lookup_key"] == "pro_monthly"
    assert billing["payment_method"]["last4"] == "4242"
    assert billing["invoices"]["data"], "the demo customer's invoices arrived by webhook"
    assert billing["actions"]["subscription_update"] is True
    # The demo catalog's Pro includes three features; their names came from Stripe once.
    assert billing["features"] == [
        {"lookup_key": "exports", "name": "CSV exports"},
        {"lookup_key": "priority_support", "name": "Priority support"},
        {"lookup_key": "projects", "name": "Unlimited projects"},
    ]
    receipt = requests.get(billing["invoices"]["data"][0]["hosted_invoice_url"], timeout=5)
    assert receipt.status_code == 200, "the page's invoice link opens the hosted invoice"
    assert "Pro x 1" in receipt.text


def test_requests_without_a_valid_token_are_401_before_any_function(
    local_stack: LocalStack,
) -> None:
    assert requests.get(f"{local_stack.api_url}/billing", timeout=5).status_code == 401
    forged = local_stack.token("demo-user")[:-4] + "AAAA"
    assert local_stack.get("/billing", forged).status_code == 401


def test_a_new_user_gets_a_portal_session_on_the_stand_in(local_stack: LocalStack) -> None:
    token = local_stack.token("e2e-newcomer")

    response = local_stack.post("/portal-sessions", token, {})

    assert response.status_code == 200, response.text
    assert response.json()["url"].startswith(f"{local_stack.stripe_url}/p/session/")


def test_the_demo_page_is_served_at_the_root(local_stack: LocalStack) -> None:
    page = requests.get(f"{local_stack.api_url}/", timeout=5)

    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert 'data-testid="sign-in"' in page.text


def test_a_taken_port_fails_with_a_clear_message(local_stack: LocalStack) -> None:
    second = subprocess.run(  # noqa: S603 - our own command line
        dev_command(local_stack.port, free_port()),
        cwd=ROOT,
        env=dev_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert second.returncode == 1
    assert f"Port {local_stack.port}" in second.stderr
    assert "PORT=" in second.stderr


def test_the_banner_s_shell_lines_name_this_run_s_ports_and_demo_customer(
    local_stack: LocalStack,
) -> None:
    # pread: the file offset is shared with the running process, which still writes.
    fd = local_stack.log.fileno()
    printed = os.pread(fd, os.fstat(fd).st_size, 0).decode()
    shell = [line.strip() for line in printed.splitlines() if "curl -s" in line]

    assert len(shell) == 4, printed
    assert all(local_stack.api_url in line for line in shell[:3])
    (clock,) = [line for line in shell if "advance_clock" in line]
    url = re.search(r"(http://\S+/advance_clock)", clock)
    assert url is not None
    assert url.group(1).startswith(local_stack.stripe_url)
    # The demo customer's id is the real one: the stand-in moves its clock.
    moved = requests.post(url.group(1), json={"seconds": 60}, timeout=10)
    assert moved.status_code == 200, moved.text


def test_make_dev_prints_one_line_per_request_with_the_webhook_outcome() -> None:
    stack = start_local_stack()
    try:
        token = stack.token("request-lines")
        assert stack.get("/billing", token).status_code == 200
        assert requests.get(f"{stack.api_url}/billing", timeout=5).status_code == 401
    finally:
        output = stop_local_stack(stack)

    lines = output.splitlines()
    # The demo customer's events were delivered at start: each says what became of it.
    assert any(re.search(r"POST /webhooks/stripe 200 \d+ ms applied$", line) for line in lines)
    assert any(re.search(r"GET /billing 200 \d+ ms$", line) for line in lines)
    assert any(re.search(r"GET /billing 401 \d+ ms$", line) for line in lines)
