"""The stand-in turns state changes into Stripe events and delivers them signed to endpoints."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
import requests
import stripe

from billing.stripe_api.client import STRIPE_API_VERSION
from sandbox.stripe_standin.server import StripeStandIn

FAST_RETRIES = (0.05, 0.05)
EndpointParams = stripe.params.WebhookEndpointCreateParams


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event


class Receiver:
    """A webhook receiver on loopback that answers scripted statuses (then 200)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on ``received``."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/webhooks/stripe"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def event_ids(self) -> list[str]:
        with self._lock:
            return [r.event["id"] for r in self.received]

    def event_types(self) -> list[str]:
        with self._lock:
            return [r.event["type"] for r in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def client(stripe_account: StripeStandIn) -> stripe.StripeClient:
    stripe_account.configure_deliveries(retry_schedule=FAST_RETRIES)
    return stripe.StripeClient(
        stripe_account.api_key,
        stripe_version=STRIPE_API_VERSION,
        base_addresses={"api": stripe_account.url},
    )


def endpoint_for(
    client: stripe.StripeClient, receiver: Receiver, events: list[str] | None = None
) -> stripe.WebhookEndpoint:
    params = {
        "url": receiver.url,
        "enabled_events": events or ["*"],
        "api_version": STRIPE_API_VERSION,
    }
    return client.v1.webhook_endpoints.create(params=cast(EndpointParams, params))


def test_customer_changes_become_events_newest_first_with_previous_attributes(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(
        params={"email": "a@example.com"}, options={"idempotency_key": "create-a"}
    )
    client.v1.customers.update(customer.id, params={"name": "Ada"})

    updated, created = client.v1.events.list(params={"type": "customer.*"}).data

    assert (created.type, updated.type) == ("customer.created", "customer.updated")
    assert created.api_version == updated.api_version == STRIPE_API_VERSION
    assert created.id.startswith("evt_")
    assert created.livemode is False
    assert created.data.object["id"] == customer.id
    assert "previous_attributes" not in created.data.to_dict()
    assert created.request is not None
    assert created.request.idempotency_key == "create-a"
    assert customer.last_response is not None
    assert created.request.id == customer.last_response.request_id
    assert updated.data.object["name"] == "Ada"
    assert updated.data.to_dict()["previous_attributes"] == {"name": None}
    assert client.v1.events.retrieve(updated.id).to_dict() == updated.to_dict()
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve("evt_missing")


def test_deliveries_carry_a_signature_made_with_the_secret_from_create(
    stripe_account: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    endpoint = endpoint_for(client, receiver, ["customer.created"])
    assert endpoint.secret is not None
    assert endpoint.secret.startswith("whsec_")
    assert "secret" not in client.v1.webhook_endpoints.retrieve(endpoint.id).to_dict()

    customer = client.v1.customers.create(params={"email": "signed@example.com"})
    stripe_account.wait_idle()

    [delivery] = receiver.received
    payload = delivery.body.decode()
    header = delivery.headers["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(payload, header, endpoint.secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, header, "whsec_other", tolerance=300)
    assert delivery.headers["Content-Type"] == "application/json; charset=utf-8"
    assert delivery.headers["User-Agent"] == "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
    event = stripe.Webhook.construct_event(payload, header, endpoint.secret)
    assert event.type == "customer.created"
    assert event.data.object["id"] == customer.id
    assert event.id == client.v1.events.list(params={"type": "customer.created"}).data[0].id


def test_an_endpoint_receives_only_its_enabled_events(
    stripe_account: StripeStandIn, client: stripe.StripeClient
) -> None:
    only_created, everything, disabled = Receiver(), Receiver(), Receiver()
    try:
        endpoint_for(client, only_created, ["customer.created"])
        endpoint_for(client, everything, ["*"])
        off = endpoint_for(client, disabled, ["*"])
        client.v1.webhook_endpoints.update(off.id, params={"disabled": True})
        customer = client.v1.customers.create(params={"email": "f@example.com"})
        client.v1.customers.update(customer.id, params={"name": "F"})
        client.v1.products.create(params={"name": "Gadget"})
        stripe_account.wait_idle()

        assert only_created.event_types() == ["customer.created"]
        assert everything.event_types() == [
            "customer.created",
            "customer.updated",
            "product.created",
        ]
        assert disabled.received == []
        assert client.v1.webhook_endpoints.retrieve(off.id).status == "disabled"
    finally:
        for server in (only_created, everything, disabled):
            server.close()


def test_a_failed_delivery_is_retried_until_a_2xx_and_then_counts_as_delivered(
    stripe_account: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500]
    endpoint = endpoint_for(client, receiver)

    client.v1.customers.create(params={"email": "retry@example.com"})
    stripe_account.wait_idle()

    attempts = stripe_account.deliveries()
    assert [(a.attempt, a.status, a.endpoint) for a in attempts] == [
        (1, 500, endpoint.id),
        (2, 500, endpoint.id),
        (3, 200, endpoint.id),
    ]
    assert len(set(receiver.event_ids())) == 1
    [event] = client.v1.events.list(params={"delivery_success": True}).data
    assert event.id == attempts[0].event
    assert event.pending_webhooks == 0
    assert client.v1.events.list(params={"delivery_success": False}).data == []


def test_delivery_success_false_lists_events_an_endpoint_never_acknowledged(
    stripe_account: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    failing = Receiver()
    try:
        failing.statuses = [500] * 10
        endpoint_for(client, receiver)
        endpoint_for(client, failing)
        client.v1.customers.create(params={"email": "lost@example.com"})
        stripe_account.wait_idle()
    finally:
        failing.close()

    assert len(failing.received) == 1 + len(FAST_RETRIES)  # then given up
    assert len(receiver.received) == 1
    [event] = client.v1.events.list(params={"delivery_success": False}).data
    assert event.type == "customer.created"
    assert event.pending_webhooks == 1
    assert client.v1.events.list(params={"delivery_success": True}).data == []


def test_a_refused_connection_is_recorded_as_an_error_and_retried(
    stripe_account: StripeStandIn, client: stripe.StripeClient
) -> None:
    gone = Receiver()
    gone.close()  # nothing listens on its port any more
    endpoint_for(client, gone)

    client.v1.customers.create(params={"email": "refused@example.com"})
    stripe_account.wait_idle()

    attempts = stripe_account.deliveries()
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert all(a.status is None and a.error for a in attempts)


def test_held_deliveries_are_released_reversed_with_duplicates(
    stripe_account: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    endpoint_for(client, receiver, ["customer.created"])
    stripe_account.hold_deliveries()
    ids = [client.v1.customers.create(params={"email": f"{n}@example.com"}).id for n in range(3)]
    stripe_account.wait_idle()
    assert receiver.received == []
    pending = client.v1.events.list(params={"type": "customer.created"}).data
    assert [e.pending_webhooks for e in pending] == [1, 1, 1]

    assert stripe_account.release_deliveries("reverse", duplicate=1) == 6
    stripe_account.wait_idle()

    customers = [json.loads(r.body)["data"]["object"]["id"] for r in receiver.received]
    assert customers == [ids[2], ids[2], ids[1], ids[1], ids[0], ids[0]]
    triggers = [a.trigger for a in stripe_account.deliveries()]
    assert sorted(triggers) == ["duplicate"] * 3 + ["event"] * 3


def test_http_controls_shuffle_held_deliveries_repeatably(
    stripe_account: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    control = f"{stripe_account.url}/_standin"
    endpoint_for(client, receiver, ["product.created"])

    def shuffled_names() -> list[str]:
        requests.post(f"{control}/deliveries/hold", timeout=5).raise_for_status()
        for name in "abcdef":
            client.v1.products.create(params={"name": name})
        assert requests.get(f"{control}/deliveries", timeout=5).json()["held"] == 6
        released = requests.post(
            f"{control}/deliveries/release", json={"order": "shuffle", "seed": 7}, timeout=5
        ).json()
        assert released == {"released": 6}
        idle = requests.post(f"{control}/deliveries/wait_idle", json={"timeout": 5}, timeout=10)
        assert idle.json() == {"idle": True}
        names = [r.event["data"]["object"]["name"] for r in receiver.received]
        receiver.received.clear()
        return names

    first, second = shuffled_names(), shuffled_names()
    assert first == second
    assert sorted(first) == list("abcdef")
    assert first != list("abcdef")
    listed = requests.get(f"{control}/deliveries", timeout=5).json()
    assert len(listed["data"]) == 12
    assert {a["status"] for a in listed["data"]} == {200}


def test_an_event_can_be_redelivered_on_demand(
    stripe_account: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    endpoint = endpoint_for(client, receiver)
    client.v1.customers.create(params={"email": "again@example.com"})
    stripe_account.wait_idle()
    [event_id] = receiver.event_ids()

    answer = requests.post(
        f"{stripe_account.url}/_standin/events/{event_id}/redeliver",
        json={"endpoint": endpoint.id},
        timeout=5,
    )
    assert answer.json() == {"queued": 1}
    assert stripe_account.redeliver(event_id) == 1
    stripe_account.wait_idle()

    assert receiver.event_ids() == [event_id] * 3
    assert [a.trigger for a in stripe_account.deliveries()] == ["event", "redeliver", "redeliver"]
    missing = requests.post(
        f"{stripe_account.url}/_standin/events/evt_missing/redeliver", timeout=5
    )
    assert missing.status_code == 404


def test_a_deleted_endpoint_receives_nothing_more(
    stripe_account: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    endpoint = endpoint_for(client, receiver)
    client.v1.customers.create(params={"email": "one@example.com"})
    stripe_account.wait_idle()
    stripe_account.hold_deliveries()
    client.v1.customers.create(params={"email": "held@example.com"})

    deleted = client.v1.webhook_endpoints.delete(endpoint.id)
    stripe_account.release_deliveries()
    client.v1.customers.create(params={"email": "after@example.com"})
    stripe_account.wait_idle()

    assert deleted.to_dict() == {"id": endpoint.id, "object": "webhook_endpoint", "deleted": True}
    assert receiver.event_types() == ["customer.created"]
    assert len(stripe_account.deliveries()) == 1
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.webhook_endpoints.retrieve(endpoint.id)


def test_events_list_paginates_and_filters_like_stripe(client: stripe.StripeClient) -> None:
    ids = [client.v1.products.create(params={"name": f"P{n}"}).id for n in range(5)]
    client.v1.customers.create(params={"email": "c@example.com"})

    page = client.v1.events.list(params={"types": ["product.created"], "limit": 2})
    assert page.has_more
    assert page.url == "/v1/events"
    newest_first = [e.data.object["id"] for e in page.data]
    assert newest_first == [ids[4], ids[3]]
    rest = client.v1.events.list(
        params={"types": ["product.created"], "limit": 10, "starting_after": page.data[-1].id}
    )
    assert [e.data.object["id"] for e in rest.data] == [ids[2], ids[1], ids[0]]
    assert not rest.has_more
    before = client.v1.events.list(
        params={"types": ["product.created"], "ending_before": rest.data[0].id}
    )
    assert [e.id for e in before.data] == [e.id for e in page.data]
    every = list(client.v1.events.list(params={"limit": 2}).auto_paging_iter())
    assert [e.type for e in every[:2]] == ["customer.created", "product.created"]
    created = every[0].created
    assert client.v1.events.list(params={"created": {"gt": created}}).data == []
    assert len(client.v1.events.list(params={"created": {"lte": created}}).data) == 6
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.list(params={"type": "customer.created", "types": ["product.created"]})


def test_webhook_endpoints_are_managed_like_stripes(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as no_url:
        client.v1.webhook_endpoints.create(params=cast(EndpointParams, {"enabled_events": ["*"]}))
    assert no_url.value.param == "url"
    with pytest.raises(stripe.InvalidRequestError) as no_events:
        client.v1.webhook_endpoints.create(
            params=cast(EndpointParams, {"url": "https://example.com/hook"})
        )
    assert no_events.value.param == "enabled_events"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.webhook_endpoints.update("we_missing", params={"disabled": True})
    assert unknown.value.http_status == 404

    endpoint = client.v1.webhook_endpoints.create(
        params={
            "url": "https://example.com/hook",
            "enabled_events": ["customer.created"],
            "description": "billing",
            "metadata": {"stage": "dev"},
        }
    )
    updated = client.v1.webhook_endpoints.update(
        endpoint.id,
        params={"enabled_events": ["*"], "url": "https://example.com/other", "disabled": True},
    )
    assert (updated.status, updated.url, updated.enabled_events) == (
        "disabled",
        "https://example.com/other",
        ["*"],
    )
    assert updated.description == "billing"
    listed = client.v1.webhook_endpoints.list()
    assert [e.id for e in listed.data] == [endpoint.id]
    assert "secret" not in listed.data[0].to_dict()


def test_reset_forgets_endpoints_events_and_held_deliveries(
    stripe_account: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    endpoint_for(client, receiver)
    stripe_account.hold_deliveries()
    client.v1.customers.create(params={"email": "forgotten@example.com"})

    stripe_account.reset()
    stripe_account.wait_idle()

    assert client.v1.webhook_endpoints.list().data == []
    assert client.v1.events.list(params={"type": "customer.*"}).data == []
    assert stripe_account.webhooks.status()["holding"] is False
    assert stripe_account.release_deliveries() == 0
    assert receiver.received == []
    assert stripe_account.deliveries() == []


def test_wait_idle_gives_up_while_retries_are_pending(
    stripe_account: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    receiver.statuses = [500]
    stripe_account.configure_deliveries(retry_schedule=[30])
    endpoint_for(client, receiver)
    client.v1.customers.create(params={"email": "slow@example.com"})

    with pytest.raises(TimeoutError):
        stripe_account.wait_idle(timeout=0.5)
    assert [a.status for a in stripe_account.deliveries()] == [500]
