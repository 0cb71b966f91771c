"""Events and webhook endpoints: listing events, endpoints and their signing secrets, deliveries."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from sandbox.stripe_standin.core import (
    Obj,
    Params,
    StandinCore,
    StripeApiError,
    WebhookDelivery,
    as_bool,
    merge_metadata,
    missing_param,
    random_id,
    range_filter,
    type_matches,
)
from sandbox.stripe_standin.shapes import shaped


class WebhookEndpoints(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    def list_events(self, params: Params) -> Obj:
        with self.lock:
            if "type" in params and "types" in params:
                raise StripeApiError("You may pass either type or types, but not both.")
            patterns = [params["type"]] if "type" in params else _as_list(params.get("types"))
            created = range_filter(params.get("created"), "created")
            success = params.get("delivery_success")
            wanted = None if success is None else as_bool(success, "delivery_success")

            def keep(event: Obj) -> bool:
                delivered = not self.undelivered.get(event["id"])
                return (
                    (not patterns or any(type_matches(p, event["type"]) for p in patterns))
                    and created(event["created"])
                    and (wanted is None or delivered == wanted)
                )

            return self.page("event", params, "/v1/events", keep)

    def _endpoints_for(self, event_type: str) -> list[str]:
        """Enabled endpoints that want ``event_type``, oldest first."""
        endpoints = [self.objects[i] for i in self.webhook_secrets]  # exactly the live ones
        return [
            e["id"]
            for e in endpoints
            if e["status"] == "enabled"
            and ("*" in e["enabled_events"] or event_type in e["enabled_events"])
        ]

    def create_webhook_endpoint(self, params: Params) -> Obj:
        with self.lock:
            endpoint = shaped(
                "webhook_endpoint",
                id=random_id("we_"),
                api_version=params.get("api_version") or None,
                application=None,
                created=self.now(),
                description=params.get("description") or None,
                enabled_events=_enabled_events(params.get("enabled_events")),
                livemode=False,
                metadata=merge_metadata({}, params.get("metadata")),
                status="enabled",
                url=_webhook_url(params.get("url")),
            )
            self._store(endpoint)
            secret = self.webhook_secrets[endpoint["id"]] = random_id("whsec_", 32)
            return {**endpoint, "secret": secret}  # only here, as Stripe shows it once

    def update_webhook_endpoint(self, endpoint_id: str, params: Params) -> Obj:
        with self.lock:
            endpoint = self.get(endpoint_id, "webhook_endpoint", status=404)
            update: Obj = {}  # validated in full before anything changes
            if "url" in params:
                update["url"] = _webhook_url(params["url"])
            if "enabled_events" in params:
                update["enabled_events"] = _enabled_events(params["enabled_events"])
            if "description" in params:
                update["description"] = params["description"] or None
            if "metadata" in params:
                update["metadata"] = merge_metadata(endpoint["metadata"], params["metadata"])
            if "disabled" in params:
                disabled = as_bool(params["disabled"], "disabled")
                update["status"] = "disabled" if disabled else "enabled"
            endpoint.update(update)
            return endpoint

    def delete_webhook_endpoint(self, endpoint_id: str) -> Obj:
        with self.lock:
            self.get(endpoint_id, "webhook_endpoint", status=404)
            del self.objects[endpoint_id]
            del self.webhook_secrets[endpoint_id]
            return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}

    def list_webhook_endpoints(self, params: Params) -> Obj:
        with self.lock:
            return self.page("webhook_endpoint", params, "/v1/webhook_endpoints", lambda _: True)

    def webhook_delivery(self, event_id: str, endpoint_id: str) -> WebhookDelivery | None:
        """The request for one delivery; None once the endpoint is deleted or disabled."""
        with self.lock:
            endpoint = self.objects.get(endpoint_id)
            event = self.objects.get(event_id)
            if endpoint is None or event is None or endpoint["status"] != "enabled":
                return None
            payload = {**event, "api_version": endpoint["api_version"] or event["api_version"]}
            return WebhookDelivery(
                endpoint["url"], self.webhook_secrets[endpoint_id], json.dumps(payload, indent=2)
            )

    def mark_delivered(self, event_id: str, endpoint_id: str) -> None:
        """``endpoint_id`` answered 2xx to ``event_id``."""
        with self.lock:
            pending = self.undelivered.get(event_id)
            if pending is None or endpoint_id not in pending:
                return
            pending.discard(endpoint_id)
            self.objects[event_id]["pending_webhooks"] = len(pending)

    def redelivery_targets(self, event_id: str, endpoint_id: str | None) -> list[str]:
        """Where a resend of ``event_id`` goes: ``endpoint_id``, or every endpoint that wants it."""
        with self.lock:
            event = self.get(event_id, "event", status=404)
            if endpoint_id is None:
                return self._endpoints_for(event["type"])
            self.get(endpoint_id, "webhook_endpoint", param="endpoint", status=404)
            return [endpoint_id]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _webhook_url(value: Any) -> str:
    if not value:
        raise missing_param("url")
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StripeApiError(f"Invalid URL: {value}", param="url", code="url_invalid")
    return str(value)


def _enabled_events(value: Any) -> list[str]:
    events = _as_list(value)
    if not events:
        raise missing_param("enabled_events")
    if not all(isinstance(e, str) and e for e in events):
        raise StripeApiError("Invalid enabled_events.", param="enabled_events")
    return events
