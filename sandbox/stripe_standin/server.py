"""HTTP face of the stand-in: Stripe's ``/v1`` API on loopback, plus test controls.

stripe-python talks to it through ``base_addresses={"api": url}``. Every state
change becomes an event (``/v1/events``), delivered signed to the webhook
endpoints registered with ``/v1/webhook_endpoints`` by a background thread
(``webhooks.Deliverer``: retries, ordering and duplication controls).

Besides the API it offers, under ``/_standin/`` (never part of Stripe; JSON
bodies):

- ``POST /_standin/faults`` ``{"status": 500|429|..., "count": N}`` or
  ``{"hang_seconds": S, "count": N}``: the next N API requests fail that way
  before touching any state; ``DELETE`` clears pending faults.
- ``GET /_standin/requests``: every API request so far (method, path,
  idempotency key, Stripe-Version, status, replayed); ``DELETE`` clears it.
- ``GET /_standin/changes``: the ordered log of state changes (event types).
- ``GET /_standin/deliveries``: every webhook delivery attempt (``event``,
  ``endpoint``, ``attempt``, ``trigger``: event|duplicate|redeliver, ``status``
  or ``error``, ``at``) and the queue (``holding``, ``held``, ``queued``,
  ``in_flight``, ``retry_schedule``, ``timeout_seconds``).
- ``POST /_standin/deliveries/hold``: park new deliveries (and retries)
  instead of sending them.
- ``POST /_standin/deliveries/release`` ``{"order": "as_is"|"reverse"|"shuffle",
  "seed": N, "duplicate": N, "delay_seconds": S}`` (all optional): stop
  holding and send what was held in that order, each with N extra copies.
- ``POST /_standin/deliveries/wait_idle`` ``{"timeout": S}``: answers once
  nothing is queued or being sent (held deliveries do not count), or 504.
- ``POST /_standin/deliveries/config`` ``{"retry_schedule": [S, ...],
  "timeout_seconds": S}``: seconds between retries and the request timeout
  (back to the defaults on reset).
- ``POST /_standin/events/<id>/redeliver`` ``{"endpoint": "we_..."}``: send
  an event again, to that endpoint or to every enabled endpoint that wants it.
- ``POST /_standin/reset``: forget everything: objects, events, webhook
  endpoints, queued, held and recorded deliveries, customer clocks; stop holding.
- ``POST /_standin/customers/<id>/advance_clock`` ``{"seconds": N}`` or
  ``{"to": <unix time>}``: move that customer's clock forward like a Stripe
  test clock (clocks are per customer: see ``state.py``), renewing or ending
  its subscriptions at each period end on the way
  (``StripeState.advance_clock``); answers ``{"customer", "previous_time",
  "time", "period_ends", "events"}``. ``GET`` answers ``{"customer", "time"}``.

The session URLs that ``billing_portal.sessions.create`` hands out
(``/p/session/<token>``) are served by the hosted-portal simulator
(``portal.py``); invoices' ``hosted_invoice_url`` and ``invoice_pdf``
(``/i/<token>``, where an open invoice can be paid) by ``invoices.py``.

``StripeStandIn`` offers the same controls as methods for in-process tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandbox.stripe_standin.checkout_page import HostedCheckoutPage
from sandbox.stripe_standin.core import (
    SESSION_URL_SECONDS,
    SESSION_USE_SECONDS,
    Obj,
    StripeApiError,
    api_request,
    random_id,
)
from sandbox.stripe_standin.forms import decode
from sandbox.stripe_standin.invoices import HostedInvoicePages
from sandbox.stripe_standin.portal import PortalSimulator
from sandbox.stripe_standin.state import StripeState
from sandbox.stripe_standin.webhooks import (
    DEFAULT_RETRY_SCHEDULE,
    Deliverer,
    DeliveryAttempt,
    Order,
)

DEFAULT_API_KEY = "sk_test_standin"

_API = Map(
    [
        Rule("/v1/customers", methods=["POST"], endpoint="create_customer"),
        Rule("/v1/customers", methods=["GET"], endpoint="list_customers"),
        Rule("/v1/customers/<id>", methods=["GET"], endpoint="retrieve:customer"),
        Rule("/v1/customers/<id>", methods=["POST"], endpoint="update_customer"),
        Rule("/v1/customers/<id>", methods=["DELETE"], endpoint="delete_customer"),
        Rule(
            "/v1/customers/<id>/payment_methods",
            methods=["GET"],
            endpoint="customer_payment_methods",
        ),
        Rule("/v1/products", methods=["POST"], endpoint="create_product"),
        Rule("/v1/products", methods=["GET"], endpoint="list_products"),
        Rule("/v1/products/<id>", methods=["GET"], endpoint="retrieve:product"),
        Rule("/v1/products/<id>", methods=["POST"], endpoint="update_product"),
        Rule("/v1/products/<id>/features", methods=["POST"], endpoint="attach_product_feature"),
        Rule("/v1/products/<id>/features", methods=["GET"], endpoint="list_product_features"),
        Rule(
            "/v1/products/<id>/features/<attachment>",
            methods=["GET"],
            endpoint="retrieve_product_feature",
        ),
        Rule(
            "/v1/products/<id>/features/<attachment>",
            methods=["DELETE"],
            endpoint="detach_product_feature",
        ),
        Rule("/v1/entitlements/features", methods=["POST"], endpoint="create_feature"),
        Rule("/v1/entitlements/features", methods=["GET"], endpoint="list_features"),
        Rule(
            "/v1/entitlements/features/<id>",
            methods=["GET"],
            endpoint="retrieve:entitlements.feature",
        ),
        Rule("/v1/entitlements/features/<id>", methods=["POST"], endpoint="update_feature"),
        Rule(
            "/v1/entitlements/active_entitlements",
            methods=["GET"],
            endpoint="list_active_entitlements",
        ),
        Rule("/v1/prices", methods=["POST"], endpoint="create_price"),
        Rule("/v1/prices", methods=["GET"], endpoint="list_prices"),
        Rule("/v1/prices/<id>", methods=["GET"], endpoint="retrieve:price"),
        Rule("/v1/prices/<id>", methods=["POST"], endpoint="update_price"),
        Rule("/v1/payment_methods", methods=["GET"], endpoint="list_payment_methods"),
        Rule("/v1/payment_methods/<id>", methods=["GET"], endpoint="retrieve:payment_method"),
        Rule("/v1/payment_methods/<id>/attach", methods=["POST"], endpoint="attach_payment_method"),
        Rule("/v1/payment_methods/<id>/detach", methods=["POST"], endpoint="detach_payment_method"),
        Rule("/v1/setup_intents", methods=["POST"], endpoint="create_setup_intent"),
        Rule("/v1/setup_intents/<id>", methods=["GET"], endpoint="retrieve:setup_intent"),
        Rule("/v1/setup_intents/<id>/confirm", methods=["POST"], endpoint="confirm_setup_intent"),
        Rule("/v1/subscriptions", methods=["POST"], endpoint="create_subscription"),
        Rule("/v1/subscriptions", methods=["GET"], endpoint="list_subscriptions"),
        Rule("/v1/subscriptions/<id>", methods=["GET"], endpoint="retrieve:subscription"),
        Rule("/v1/subscriptions/<id>", methods=["POST"], endpoint="update_subscription"),
        Rule("/v1/subscriptions/<id>", methods=["DELETE"], endpoint="cancel_subscription"),
        Rule("/v1/invoices", methods=["GET"], endpoint="list_invoices"),
        Rule("/v1/coupons", methods=["POST"], endpoint="create_coupon"),
        Rule("/v1/promotion_codes", methods=["POST"], endpoint="create_promotion_code"),
        Rule("/v1/promotion_codes", methods=["GET"], endpoint="list_promotion_codes"),
        Rule("/v1/coupons/<id>", methods=["GET"], endpoint="retrieve:coupon"),
        Rule("/v1/promotion_codes/<id>", methods=["GET"], endpoint="retrieve:promotion_code"),
        Rule("/v1/invoices/<id>", methods=["GET"], endpoint="retrieve:invoice"),
        Rule("/v1/invoices/<id>/pay", methods=["POST"], endpoint="pay_invoice"),
        Rule(
            "/v1/billing_portal/configurations", methods=["POST"], endpoint="create_configuration"
        ),
        Rule("/v1/billing_portal/configurations", methods=["GET"], endpoint="list_configurations"),
        Rule(
            "/v1/billing_portal/configurations/<id>",
            methods=["GET"],
            endpoint="retrieve:billing_portal.configuration",
        ),
        Rule(
            "/v1/billing_portal/configurations/<id>",
            methods=["POST"],
            endpoint="update_configuration",
        ),
        Rule("/v1/billing_portal/sessions", methods=["POST"], endpoint="create_portal_session"),
        Rule("/v1/checkout/sessions", methods=["POST"], endpoint="create_checkout_session"),
        Rule("/v1/checkout/sessions", methods=["GET"], endpoint="list_checkout_sessions"),
        Rule("/v1/checkout/sessions/<id>", methods=["GET"], endpoint="retrieve:checkout.session"),
        Rule(
            "/v1/checkout/sessions/<id>/expire",
            methods=["POST"],
            endpoint="expire_checkout_session",
        ),
        Rule("/v1/events", methods=["GET"], endpoint="list_events"),
        Rule("/v1/events/<id>", methods=["GET"], endpoint="retrieve:event"),
        Rule("/v1/webhook_endpoints", methods=["POST"], endpoint="create_webhook_endpoint"),
        Rule("/v1/webhook_endpoints", methods=["GET"], endpoint="list_webhook_endpoints"),
        Rule("/v1/webhook_endpoints/<id>", methods=["GET"], endpoint="retrieve:webhook_endpoint"),
        Rule("/v1/webhook_endpoints/<id>", methods=["POST"], endpoint="update_webhook_endpoint"),
        Rule("/v1/webhook_endpoints/<id>", methods=["DELETE"], endpoint="delete_webhook_endpoint"),
    ]
)
_CONTROLS = Map(
    [
        Rule("/_standin/faults", methods=["POST"], endpoint="add_fault"),
        Rule("/_standin/faults", methods=["DELETE"], endpoint="clear_faults"),
        Rule("/_standin/requests", methods=["GET"], endpoint="list_requests"),
        Rule("/_standin/requests", methods=["DELETE"], endpoint="clear_requests"),
        Rule("/_standin/changes", methods=["GET"], endpoint="list_changes"),
        Rule("/_standin/reset", methods=["POST"], endpoint="reset"),
        Rule("/_standin/deliveries", methods=["GET"], endpoint="list_deliveries"),
        Rule("/_standin/deliveries/hold", methods=["POST"], endpoint="hold"),
        Rule("/_standin/deliveries/release", methods=["POST"], endpoint="release"),
        Rule("/_standin/deliveries/wait_idle", methods=["POST"], endpoint="wait_idle"),
        Rule("/_standin/deliveries/config", methods=["POST"], endpoint="configure"),
        Rule("/_standin/events/<event_id>/redeliver", methods=["POST"], endpoint="redeliver"),
        Rule(
            "/_standin/customers/<customer_id>/advance_clock",
            methods=["POST"],
            endpoint="advance_clock",
        ),
        Rule(
            "/_standin/customers/<customer_id>/advance_clock",
            methods=["GET"],
            endpoint="customer_clock",
        ),
    ]
)


@dataclass
class _Fault:
    status: int | None
    hang_seconds: float
    remaining: int


@dataclass
class _Idempotent:
    fingerprint: str
    done: threading.Event = field(default_factory=threading.Event)
    status: int = 0
    body: bytes = b""


class StandInApp:
    """The WSGI application. ``state`` is the account behind it, ``webhooks`` its deliveries."""

    def __init__(
        self,
        state: StripeState,
        api_key: str = DEFAULT_API_KEY,
        webhooks: Deliverer | None = None,
    ) -> None:
        self.state = state
        self.api_key = api_key
        self.webhooks = webhooks or Deliverer(state)
        state.on_event = self.webhooks.enqueue
        self.portal = PortalSimulator(state)
        self.invoices = HostedInvoicePages(state)
        self.checkout = HostedCheckoutPage(state)
        self.faults: list[_Fault] = []
        self.requests: list[Obj] = []
        self.idempotency: dict[str, _Idempotent] = {}
        self.lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        if request.path.startswith("/v1/"):
            response = self._api(request)
        elif request.path.startswith("/_standin/"):
            response = self._control(request)
        elif request.path.startswith("/p/session/"):
            response = self.portal(request)
        elif request.path.startswith("/i/"):
            response = self.invoices(request)
        elif request.path.startswith("/c/pay/"):
            response = self.checkout(request)
        else:
            response = Response("Not found", status=404)
        return response(environ, start_response)

    # --- /v1 -------------------------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key")
        log: Obj = {
            "method": request.method,
            "path": request.path,
            "idempotency_key": key,
            "stripe_version": request.headers.get("Stripe-Version"),
            "replayed": False,
        }
        with self.lock:
            self.requests.append(log)
        request_id = random_id("req_", 14)
        with api_request(request_id, key):
            response = self._api_response(request, key, log)
        log["status"] = response.status_code
        response.headers["Request-Id"] = request_id
        return response

    def _api_response(self, request: Request, key: str | None, log: Obj) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(
                StripeApiError(
                    "Invalid API Key provided.", status=401, type_="invalid_request_error"
                )
            )
        if (fault := self._take_fault()) is not None:
            return fault
        params = decode(
            request.form.items(multi=True)
            if request.method == "POST"
            else request.args.items(multi=True)
        )
        if request.method != "POST" or not key:
            return self._dispatch(request, params)
        fingerprint = json.dumps([request.method, request.path, params], sort_keys=True)
        with self.lock:
            entry = self.idempotency.get(key)
            first = entry is None
            if entry is None:
                entry = self.idempotency[key] = _Idempotent(fingerprint)
        if first:
            response = self._dispatch(request, params)
            entry.status, entry.body = response.status_code, response.get_data()
            if response.status_code >= 500:  # not saved: a retry runs again
                with self.lock:
                    del self.idempotency[key]
            entry.done.set()
            return response
        entry.done.wait(timeout=30)
        if entry.fingerprint != fingerprint:
            return _error(
                StripeApiError(
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                    type_="idempotency_error",
                )
            )
        log["replayed"] = True
        response = Response(entry.body, status=entry.status, mimetype="application/json")
        response.headers["Idempotent-Replayed"] = "true"
        return response

    def _take_fault(self) -> Response | None:
        with self.lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.faults.pop(0)
        if fault.hang_seconds:
            time.sleep(fault.hang_seconds)
        status = fault.status or 500
        if status == 429:
            return _error(
                StripeApiError(
                    "Too many requests.",
                    status=429,
                    code="rate_limit",
                    type_="invalid_request_error",
                )
            )
        return _error(
            StripeApiError("An unknown error occurred.", status=status, type_="api_error")
        )

    def _dispatch(self, request: Request, params: dict[str, Any]) -> Response:
        adapter = _API.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except Exception:  # werkzeug raises NotFound/MethodNotAllowed
            return _error(
                StripeApiError(
                    f"Unrecognized request URL ({request.method}: {request.path}).", status=404
                )
            )
        expand = params.get("expand", [])
        try:
            result = self._call(str(endpoint), args, params)
        except StripeApiError as error:
            return _error(error)
        return _json(self.state.render(result, expand if result.get("object") != "list" else ()))

    def _call(self, endpoint: str, args: Mapping[str, Any], params: dict[str, Any]) -> Obj:
        state = self.state
        if endpoint.startswith("retrieve:"):
            with state.lock:
                return state.get(
                    args["id"], endpoint.removeprefix("retrieve:"), param="id", status=404
                )
        if "attachment" in args:
            attachment: Any = getattr(state, endpoint)
            return attachment(args["id"], args["attachment"])  # type: ignore[no-any-return]
        if endpoint == "customer_payment_methods":
            return state.list_payment_methods(params, customer_id=args["id"])
        if endpoint in ("detach_payment_method", "delete_customer", "delete_webhook_endpoint"):
            method: Any = getattr(state, endpoint)
            return method(args["id"])  # type: ignore[no-any-return]
        method = getattr(state, endpoint)
        if "id" in args:
            return method(args["id"], params)  # type: ignore[no-any-return]
        return method(params)  # type: ignore[no-any-return]

    # --- /_standin ---------------------------------------------------------------------------

    def _control(self, request: Request) -> Response:
        try:
            endpoint, args = _CONTROLS.bind_to_environ(request.environ).match()
        except Exception:  # werkzeug raises NotFound/MethodNotAllowed
            return Response("Not found", status=404)
        body = request.get_json(force=True, silent=True) or {}
        handler = getattr(self, f"_control_{endpoint}")
        try:
            return handler(body, **args)  # type: ignore[no-any-return]
        except StripeApiError as error:
            return _error(error)
        except (TypeError, ValueError) as error:
            return _json({"error": {"message": str(error)}}, status=400)

    def reset(self) -> None:
        """Forget everything, as ``POST /_standin/reset``."""
        with self.lock:
            self.faults.clear()
            self.requests.clear()
            self.idempotency.clear()
        self.webhooks.reset()
        self.state.reset()

    def _control_add_fault(self, spec: Obj) -> Response:
        fault = _Fault(
            spec.get("status"), float(spec.get("hang_seconds", 0)), int(spec.get("count", 1))
        )
        with self.lock:
            self.faults.append(fault)
            return _json({"pending": len(self.faults)})

    def _control_clear_faults(self, _: Obj) -> Response:
        with self.lock:
            self.faults.clear()
        return _json({"pending": 0})

    def _control_list_requests(self, _: Obj) -> Response:
        with self.lock:
            return _json({"data": list(self.requests)})

    def _control_clear_requests(self, _: Obj) -> Response:
        with self.lock:
            self.requests.clear()
        return _json({"data": []})

    def _control_list_changes(self, _: Obj) -> Response:
        with self.state.lock:
            return _json({"data": list(self.state.changes)})

    def _control_reset(self, _: Obj) -> Response:
        self.reset()
        return _json({"reset": True})

    def _control_list_deliveries(self, _: Obj) -> Response:
        attempts = [asdict(a) for a in self.webhooks.attempts()]
        return _json({"data": attempts, **self.webhooks.status()})

    def _control_hold(self, _: Obj) -> Response:
        self.webhooks.hold()
        return _json(self.webhooks.status())

    def _control_release(self, spec: Obj) -> Response:
        released = self.webhooks.release(
            spec.get("order", "as_is"),
            seed=spec.get("seed"),
            duplicate=int(spec.get("duplicate", 0)),
            delay_seconds=float(spec.get("delay_seconds", 0)),
        )
        return _json({"released": released})

    def _control_wait_idle(self, spec: Obj) -> Response:
        try:
            self.webhooks.wait_idle(float(spec.get("timeout", 10)))
        except TimeoutError as error:
            return _json({"idle": False, "error": {"message": str(error)}}, status=504)
        return _json({"idle": True})

    def _control_configure(self, spec: Obj) -> Response:
        self.webhooks.configure(
            retry_schedule=spec.get("retry_schedule"), timeout_seconds=spec.get("timeout_seconds")
        )
        return _json(self.webhooks.status())

    def _control_redeliver(self, spec: Obj, event_id: str) -> Response:
        return _json({"queued": self.webhooks.redeliver(event_id, spec.get("endpoint"))})

    def _control_advance_clock(self, spec: Obj, customer_id: str) -> Response:
        seconds, to = spec.get("seconds"), spec.get("to")
        return _json(
            self.state.advance_clock(
                customer_id,
                seconds=None if seconds is None else int(seconds),
                to=None if to is None else int(to),
            )
        )

    def _control_customer_clock(self, _: Obj, customer_id: str) -> Response:
        with self.state.lock:
            self.state.get(customer_id, "customer", status=404)
            return _json({"customer": customer_id, "time": self.state.customer_now(customer_id)})


def _json(payload: Obj, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _error(error: StripeApiError) -> Response:
    return Response(json.dumps(error.body()), status=error.status, mimetype="application/json")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are in ``/_standin/requests``; keep the console for the developer."""


class StripeStandIn:
    """The stand-in served on loopback from a background thread, with its webhook sender.

    >>> standin = StripeStandIn().start()  # port 0: any free port
    >>> standin.url, standin.state  # doctest: +SKIP

    The delivery controls of ``/_standin/`` are methods here too.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        *,
        session_open_seconds: int = SESSION_URL_SECONDS,
        session_use_seconds: int = SESSION_USE_SECONDS,
    ) -> None:
        self.state = StripeState()
        self.state.session_open_seconds = session_open_seconds
        self.state.session_use_seconds = session_use_seconds
        self.webhooks = Deliverer(self.state, retry_schedule=retry_schedule)
        self.app = StandInApp(self.state, api_key, self.webhooks)
        self.api_key = api_key
        self._server = make_server(
            host, port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://{host}:{self._server.server_port}"
        self.state.base_url = self.url
        # A short poll interval, so that stop() returns at once (the default waits 0.5 s).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> StripeStandIn:
        self._thread.start()
        self.webhooks.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.webhooks.stop()

    def __enter__(self) -> StripeStandIn:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget everything, as ``POST /_standin/reset``."""
        self.app.reset()

    def hold_deliveries(self) -> None:
        """Park new webhook deliveries and retries until ``release_deliveries``."""
        self.webhooks.hold()

    def release_deliveries(
        self,
        order: Order = "as_is",
        *,
        seed: int | None = None,
        duplicate: int = 0,
        delay_seconds: float = 0.0,
    ) -> int:
        """Stop holding; send the held deliveries in ``order``, each with ``duplicate`` copies."""
        return self.webhooks.release(
            order, seed=seed, duplicate=duplicate, delay_seconds=delay_seconds
        )

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until no delivery is queued or in flight; ``TimeoutError`` after ``timeout``."""
        self.webhooks.wait_idle(timeout)

    def deliveries(self) -> list[DeliveryAttempt]:
        """Every delivery attempt since the last reset, in order."""
        return self.webhooks.attempts()

    def redeliver(self, event_id: str, endpoint_id: str | None = None) -> int:
        """Send an event again (to one endpoint, or all that want it); returns how many."""
        return self.webhooks.redeliver(event_id, endpoint_id)

    def advance_clock(
        self, customer_id: str, *, seconds: int | None = None, to: int | None = None
    ) -> Obj:
        """Move a customer's clock forward (``seconds``, or ``to`` a unix time), renewing and
        ending its subscriptions on the way; as ``POST /_standin/customers/<id>/advance_clock``.
        """
        return self.state.advance_clock(customer_id, seconds=seconds, to=to)

    def configure_deliveries(
        self, *, retry_schedule: Sequence[float] | None = None, timeout_seconds: float | None = None
    ) -> None:
        """Seconds between retries and the per-request timeout, until the next reset."""
        self.webhooks.configure(retry_schedule=retry_schedule, timeout_seconds=timeout_seconds)
