"""HTTP face of the stand-in: Stripe's ``/v1`` API on loopback, plus test controls.

stripe-python talks to it through ``base_addresses={"api": url}``. Besides the
API it offers, under ``/_standin/`` (never part of Stripe):

- ``POST /_standin/faults`` ``{"status": 500|429|..., "count": N}`` or
  ``{"hang_seconds": S, "count": N}``: the next N API requests fail that way
  before touching any state; ``DELETE`` clears pending faults.
- ``GET /_standin/requests``: every API request so far (method, path,
  idempotency key, Stripe-Version, status, replayed); ``DELETE`` clears it.
- ``GET /_standin/changes``: the ordered log of state changes (event types).
- ``POST /_standin/reset``: forget everything.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandbox.stripe_standin.forms import decode
from sandbox.stripe_standin.state import Obj, StripeApiError, StripeState, random_id

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
        Rule("/v1/invoices/<id>", methods=["GET"], endpoint="retrieve:invoice"),
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
    """The WSGI application. ``state`` is the account behind it."""

    def __init__(self, state: StripeState, api_key: str = DEFAULT_API_KEY) -> None:
        self.state = state
        self.api_key = api_key
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
            response = self._portal_page(request.path.removeprefix("/p/session/"))
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
        response = self._api_response(request, key, log)
        log["status"] = response.status_code
        response.headers["Request-Id"] = random_id("req_", 14)
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
        if endpoint == "customer_payment_methods":
            return state.list_payment_methods(params, customer_id=args["id"])
        if endpoint in ("detach_payment_method", "delete_customer"):
            method: Any = getattr(state, endpoint)
            return method(args["id"])  # type: ignore[no-any-return]
        method = getattr(state, endpoint)
        if "id" in args:
            return method(args["id"], params)  # type: ignore[no-any-return]
        return method(params)  # type: ignore[no-any-return]

    # --- /_standin ---------------------------------------------------------------------------

    def _control(self, request: Request) -> Response:
        name = request.path.removeprefix("/_standin/")
        if name == "faults" and request.method == "POST":
            spec = request.get_json(force=True)
            with self.lock:
                self.faults.append(
                    _Fault(
                        spec.get("status"),
                        float(spec.get("hang_seconds", 0)),
                        int(spec.get("count", 1)),
                    )
                )
            return _json({"pending": len(self.faults)})
        if name == "faults" and request.method == "DELETE":
            with self.lock:
                self.faults.clear()
            return _json({"pending": 0})
        if name == "requests":
            with self.lock:
                if request.method == "DELETE":
                    self.requests.clear()
                return _json({"data": list(self.requests)})
        if name == "changes":
            with self.state.lock:
                return _json({"data": list(self.state.changes)})
        if name == "reset" and request.method == "POST":
            with self.lock:
                self.faults.clear()
                self.requests.clear()
                self.idempotency.clear()
            self.state.reset()
            return _json({"reset": True})
        return Response("Not found", status=404)

    def _portal_page(self, token: str) -> Response:
        session = self.state.session_for_token(token)
        if session is None:
            return Response("This portal session has expired.", status=410, mimetype="text/plain")
        flow = session["flow"]["type"] if session["flow"] else "home"
        body = (
            "<!doctype html><title>Billing portal (stand-in)</title>"
            f"<h1>Billing portal</h1><p data-flow='{flow}'>Flow: {flow}</p>"
        )
        return Response(body, mimetype="text/html")


def _json(payload: Obj) -> Response:
    return Response(json.dumps(payload), mimetype="application/json")


def _error(error: StripeApiError) -> Response:
    return Response(json.dumps(error.body()), status=error.status, mimetype="application/json")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are in ``/_standin/requests``; keep the console for the developer."""


class StripeStandIn:
    """The stand-in served on loopback from a background thread.

    >>> standin = StripeStandIn().start()  # port 0: any free port
    >>> standin.url, standin.state  # doctest: +SKIP
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, api_key: str = DEFAULT_API_KEY
    ) -> None:
        self.state = StripeState()
        self.app = StandInApp(self.state, api_key)
        self.api_key = api_key
        self._server = make_server(
            host, port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://{host}:{self._server.server_port}"
        self.state.base_url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> StripeStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StripeStandIn:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
