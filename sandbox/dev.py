"""``make dev``: the whole product on one machine, offline, in one process tree.

Started in this order, each on loopback:

1. moto's server (DynamoDB, Secrets Manager, SQS): the table as ``BillingTable``
   declares it, the Stripe key secret, the stack's webhook signing secret and the
   catalog fan-out queue, whose messages a local event source feeds to the fan-out
   function (:mod:`sandbox.queues`); every boto3 client in the process talks to it
   (``AWS_ENDPOINT_URL``).
2. The Stripe stand-in with the demo catalog (:mod:`sandbox.seed`).
3. ``Custom::PortalConfiguration`` run exactly as CloudFormation calls it
   (:mod:`sandbox.cloudformation`), with the template's properties.
4. The local API gateway (:mod:`sandbox.gateway`) serving the template's routes,
   the functions in-process with the environment the template gives them, the
   development routes under ``/_dev/`` and the demo page at ``/``.
5. ``Custom::StripeWebhookEndpoint`` pointing at the gateway's webhook route; its
   secret lands in the local Secrets Manager, where the webhook function reads it.
6. The demo customer, whose events reach the projection through real signed
   deliveries.

Ctrl-C stops all of it.

The template's parameters take the values a first deploy would, except what
``PARAMETER_OVERRIDES`` (or ``--parameter-overrides``) sets, written as for
``sam deploy``: ``make dev PARAMETER_OVERRIDES="CheckoutTrialDays=14"`` sells a trial.
Time travel (the stand-in's per-customer clocks) moves the time the functions answer
that customer's user by (:mod:`billing.read.clock`), so a trial or grace period ends
in the snapshot when it ends in Stripe.

With ``STRIPE_API_KEY`` (a test-mode key) and ``STRIPE_WEBHOOK_SECRET`` (from
``stripe listen --print-secret``) in the environment, the same stack talks to
that Stripe account instead of the stand-in (:class:`ExternalStripe`): the
catalog and the demo customer are created there only if missing, the webhook
endpoint resource is skipped (``stripe listen --forward-to`` delivers the
events, signed with that secret), the projection is backfilled from the account
at start, and the portal configuration is deactivated again at exit, as a stack
delete would.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import stripe
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from billing.aws.settings import get_backfill_settings
from billing.projection.registry import HANDLED_EVENT_TYPES
from billing.projection.signature import parse_secrets
from billing.read.clock import follow as follow_clock
from billing.stripe_api.client import STRIPE_API_VERSION
from functions.backfill.app import run_backfill
from sandbox.cloudformation import (
    TEMPLATE,
    CustomResourceAnswer,
    CustomResourceFailed,
    LocalStack,
    create_billing_table,
    lambda_functions,
    load_template,
    run_custom_resource,
    sam_translate,
)
from sandbox.fast_moto import fast_dynamodb
from sandbox.gateway import LocalGateway, LocalIdentityProvider, PortInUse, serve
from sandbox.queues import SqsEventSource, create_queue
from sandbox.seed import DEMO_EMAIL, DEMO_USER, ensure_catalog, ensure_demo_customer
from sandbox.stripe_standin.server import DEFAULT_API_KEY, StripeStandIn

STACK_NAME = "billing-portal-local"
DEMO_DIR = Path(__file__).resolve().parent / "demo"
_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class PortTaken(RuntimeError):
    pass


class NotTestMode(ValueError):
    """The environment names a Stripe account ``make dev`` must not use as it is."""


@dataclass(frozen=True)
class ExternalStripe:
    """A Stripe test-mode account to use instead of the stand-in."""

    api_key: str
    webhook_secret: str  # what `stripe listen` signs its forwarded events with
    api_base: str = "https://api.stripe.com"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ExternalStripe | None:
        """``STRIPE_API_KEY`` + ``STRIPE_WEBHOOK_SECRET`` (+ ``STRIPE_API_BASE``), or None."""
        api_key = environ.get("STRIPE_API_KEY", "")
        if not api_key:
            return None
        if not api_key.startswith(("sk_test_", "rk_test_")):
            raise NotTestMode(
                "STRIPE_API_KEY must be a test-mode key (sk_test_... or rk_test_...): "
                "make dev creates customers and subscriptions in the account it is given."
            )
        webhook_secret = environ.get("STRIPE_WEBHOOK_SECRET", "")
        if not webhook_secret.startswith("whsec_"):
            raise NotTestMode(
                "STRIPE_WEBHOOK_SECRET must be the whsec_... secret of `stripe listen`: "
                "STRIPE_WEBHOOK_SECRET=$(stripe listen --print-secret)"
            )
        return cls(api_key, webhook_secret, environ.get("STRIPE_API_BASE") or cls.api_base)

    def listen_command(self, webhook_url: str) -> str:
        events = ",".join(sorted(HANDLED_EVENT_TYPES))
        return f"stripe listen --forward-to {webhook_url} --events {events}"


@dataclass
class _Status:
    """What ``/_dev/info`` reports while the stack starts."""

    webhook_secret: str = ""
    ready: bool = False  # the demo customer's webhooks have been applied


@dataclass
class LocalDeployment:
    """What ``make dev`` started; the URLs and ids a test or a person needs."""

    api_url: str
    stripe_url: str
    moto_url: str
    configuration_id: str
    webhook_endpoint_id: str
    webhook_secret: str
    demo_user: str
    demo_customer_id: str
    standin: StripeStandIn | None  # None when talking to a real test-mode account
    listen_command: str | None = None  # how to forward that account's events here
    # Makes /_dev/info say ready (local_deployment(ready_on_start=False) leaves it to
    # the caller, which first makes sure a Ctrl-C can no longer interrupt its start).
    mark_ready: Callable[[], None] = lambda: None


def ensure_free(host: str, port: int, what: str) -> None:
    """Refuse a port another process listens on, with what to do about it.

    The probe binds as the servers will (``SO_REUSEADDR``, as Werkzeug's and the
    gateway's do): connections of an earlier run waiting in TIME_WAIT do not make the
    port taken, or ``make dev`` would refuse to restart for a minute after Ctrl-C.
    """
    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise PortTaken(
                f"Port {port} on {host} is taken, so the {what} cannot start. Stop what uses "
                f"it (e.g. another `make dev`) or choose another port: make dev PORT=3001"
            ) from None


@contextmanager
def local_deployment(
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    stripe_port: int = 12111,
    external: ExternalStripe | None = None,
    ready_on_start: bool = True,
    parameter_overrides: Mapping[str, str] | None = None,
) -> Iterator[LocalDeployment]:
    """Start everything; stop it all when the block ends. ``parameter_overrides``: template
    parameters, as ``sam deploy --parameter-overrides`` takes them."""
    ensure_free(host, port, "local API gateway")
    if external is None:
        ensure_free(host, stripe_port, "Stripe stand-in")
    with ExitStack() as running:
        running.enter_context(_quick_thread_handoffs())
        os.environ.update(_FAKE_AWS)
        os.environ["AWS_ENDPOINT_URL"] = start_moto(host, running)

        standin: StripeStandIn | None = None
        if external is None:
            standin = _start_standin(host, stripe_port, running)
            api_key, api_base = standin.api_key, standin.url
        else:
            api_key, api_base = external.api_key, external.api_base
        client = stripe.StripeClient(
            api_key, stripe_version=STRIPE_API_VERSION, base_addresses={"api": api_base}
        )
        gateway_url = f"http://{host}:{port}"
        parameters = _parameters(gateway_url, port, parameter_overrides or {})
        if external is not None:
            # A developer's own account may already hold the demo prices (made by earlier
            # runs or by hand): they are completed, not re-made, and sold by lookup key,
            # as a deployment that sets PlanLookupKeys sells Dashboard prices.
            parameters.setdefault("PlanLookupKeys", ",".join(ensure_catalog(client)))
        stack = LocalStack(sam_translate(load_template()), STACK_NAME, parameters=dict(parameters))
        _create_aws_resources(stack, api_key)
        os.environ.update(
            STRIPE_API_BASE=api_base,
            TABLE_NAME=stack.refs["BillingTable"],
            STRIPE_SECRET_NAME=str(stack.parameters["StripeSecretName"]),
            POWERTOOLS_SERVICE_NAME="billing-portal-local",
        )

        _provision_catalog(stack)
        config_properties = stack.resolve(stack.resource("PortalConfiguration")["Properties"])
        config = run_custom_resource(
            handler_of("functions.portal_config.app"),
            stack=stack,
            logical_id="PortalConfiguration",
            properties=config_properties,
        )
        _answered(stack, "PortalConfiguration", config)
        if external is not None:
            # A real account keeps what make dev creates: leave no active configuration behind.
            running.callback(
                run_custom_resource,
                handler_of("functions.portal_config.app"),
                stack=stack,
                logical_id="PortalConfiguration",
                properties=config_properties,
                request_type="Delete",
                physical_resource_id=config.physical_resource_id,
            )
        os.environ.update(_functions_environment(stack))
        running.callback(_start_catalog_fanout(stack).stop)

        status = _Status()
        identity = LocalIdentityProvider(parameters["JwtIssuer"], parameters["JwtAudience"])
        gateway = LocalGateway.from_template(
            TEMPLATE,
            parameters=parameters,
            identity=identity,
            static_dir=DEMO_DIR,
            dev_info=lambda: {
                "stripe_url": api_base,
                "webhook_secret": status.webhook_secret,
                "demo_user": DEMO_USER,
                "ready": status.ready,
            },
        )
        server = serve(gateway, host, port)
        running.callback(server.stop)
        webhook_url = f"{gateway_url}/webhooks/stripe"

        if standin is not None:
            endpoint_id = _register_webhook_endpoint(stack, webhook_url)
            status.webhook_secret = _signing_secret(stack.refs["WebhookSigningSecret"])
            # The catalog was created before the endpoint existed: resend its events,
            # as Stripe's "resend" (or make backfill) would.
            for event in client.v1.events.list({"limit": 100}).data:
                standin.redeliver(event.id)
            demo_customer_id = ensure_demo_customer(client, _prices(client, stack))
            standin.wait_idle(timeout=30)
        elif external is not None:
            # `stripe listen` stands in for the endpoint: no resource to register.
            endpoint_id = "stripe-listen"
            status.webhook_secret = external.webhook_secret
            _store_signing_secret(stack.refs["WebhookSigningSecret"], status.webhook_secret)
            demo_customer_id = ensure_demo_customer(client, _prices(client, stack))
            # The local table starts empty; the account may hold earlier runs' state.
            run_backfill(get_backfill_settings(), replay=False)
        status.ready = ready_on_start
        yield LocalDeployment(
            api_url=gateway_url,
            stripe_url=api_base,
            moto_url=os.environ["AWS_ENDPOINT_URL"],
            configuration_id=config.physical_resource_id,
            webhook_endpoint_id=endpoint_id,
            webhook_secret=status.webhook_secret,
            demo_user=DEMO_USER,
            demo_customer_id=demo_customer_id,
            standin=standin,
            listen_command=external.listen_command(webhook_url) if external else None,
            mark_ready=functools.partial(setattr, status, "ready", True),
        )


def _register_webhook_endpoint(stack: LocalStack, webhook_url: str) -> str:
    """``Custom::StripeWebhookEndpoint`` for the gateway's webhook route; returns its id."""
    stack.refs["HttpApi"] = "local"  # its URL is the gateway's, set below
    properties = stack.resolve(stack.resource("StripeWebhookEndpoint")["Properties"])
    properties["Url"] = webhook_url
    endpoint = run_custom_resource(
        handler_of("functions.webhook_endpoint.app"),
        stack=stack,
        logical_id="StripeWebhookEndpoint",
        properties=properties,
    )
    stack.refs["StripeWebhookEndpoint"] = endpoint.physical_resource_id
    return endpoint.physical_resource_id


@contextmanager
def _quick_thread_handoffs() -> Iterator[None]:
    """A shorter interval between the interpreter's thread switches while the stack runs.

    Every server and function of the local stack is a thread of this process, and one
    request hands over between several of them (sender, gateway, function, moto). A
    thread woken by its socket waits for the GIL up to the switch interval (5 ms by
    default) while busy threads hold it; with 0.5 ms a burst of 2,400 webhook
    deliveries ran in 79 s instead of 100 s.
    """
    default = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        yield
    finally:
        sys.setswitchinterval(default)


class _OneAtATime:
    """Moto's app, one request at a time.

    Moto undoes a failed DynamoDB transaction by restoring what it saved before
    (the items it names, :mod:`sandbox.fast_moto`), which drops what other
    threads wrote to them meanwhile; DynamoDB itself does not. Concurrent webhook
    deliveries could lose writes without this.
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


def start_moto(host: str, running: ExitStack) -> str:
    """Moto's server on ``host`` (a free port), its transactions undone item by item;
    returns its URL."""
    running.enter_context(fast_dynamodb())
    app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, 0, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    running.callback(server.shutdown)
    return f"http://{host}:{server.server_port}"


def _create_aws_resources(stack: LocalStack, stripe_api_key: str) -> None:
    name = f"{STACK_NAME}-BillingTable"
    create_billing_table(stack.template, name)
    stack.refs["BillingTable"] = name
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(
        Name=str(stack.parameters["StripeSecretName"]), SecretString=stripe_api_key
    )
    # Like the template's WebhookSigningSecret: a generated placeholder until the
    # webhook-endpoint resource writes the real secret.
    stack.refs["WebhookSigningSecret"] = secrets.create_secret(
        Name=f"{STACK_NAME}-WebhookSigningSecret", SecretString=os.urandom(16).hex()
    )["ARN"]
    stack.refs["CatalogFanoutQueue"] = create_queue(
        stack.template, "CatalogFanoutQueue", f"{STACK_NAME}-CatalogFanoutQueue"
    )


def _start_catalog_fanout(stack: LocalStack) -> SqsEventSource:
    """The fan-out function, fed by its queue as the template's SQS event source does."""
    source = SqsEventSource(
        stack.refs["CatalogFanoutQueue"],
        handler_of("functions.catalog_fanout.app"),
        function_name=f"{STACK_NAME}-catalog-fanout",
        timeout=float(stack.resource("CatalogFanoutFunction")["Properties"]["Timeout"]),
    )
    source.start()
    return source


def _parameters(gateway_url: str, port: int, overrides: Mapping[str, str]) -> dict[str, str]:
    """The template parameters of the local stack: the gateway's own URLs, then overrides."""
    return {
        "JwtIssuer": f"{gateway_url}/_dev",
        "JwtAudience": "billing-portal-local",
        "AllowedOrigins": f"{gateway_url},http://localhost:{port}",
        "DefaultReturnUrl": f"{gateway_url}/",
        "PortalHeadline": "Acme Cloud: manage your plan",
        **overrides,
    }


def _provision_catalog(stack: LocalStack) -> None:
    """``Custom::StripeCatalog``, run as CloudFormation runs it, when the template's
    catalog is the one on sale (``PlanLookupKeys`` left empty)."""
    if not stack.condition("ManagesCatalog"):
        return
    answer = run_custom_resource(
        handler_of("functions.catalog.app"),
        stack=stack,
        logical_id="StripeCatalog",
        properties=stack.resolve(stack.resource("StripeCatalog")["Properties"]),
    )
    _answered(stack, "StripeCatalog", answer)


def _answered(stack: LocalStack, logical_id: str, answer: CustomResourceAnswer) -> None:
    """What a custom resource answered, as its ``Ref`` and attributes."""
    stack.refs[logical_id] = answer.physical_resource_id
    stack.attributes[logical_id] = answer.data


def _prices(client: stripe.StripeClient, stack: LocalStack) -> dict[str, str]:
    """Price ids of the plans on sale, by lookup key."""
    keys = [k for k in stack.environment("BillingFunction")["PLAN_LOOKUP_KEYS"].split(",") if k]
    prices: dict[str, str] = {}
    for start in range(0, len(keys), 10):
        listed = client.v1.prices.list({"lookup_keys": keys[start : start + 10], "limit": 10})
        prices.update({p.lookup_key: p.id for p in listed.data if p.lookup_key and p.active})
    return prices


def _start_standin(host: str, port: int, running: ExitStack) -> StripeStandIn:
    standin = StripeStandIn(host, port, DEFAULT_API_KEY).start()
    running.callback(standin.stop)
    # Time travel moves a customer's Stripe time; the answers to that customer's user
    # follow it (billing.read.clock), as if the functions lived in that time too.
    follow_clock(_stripe_time_of(standin))
    running.callback(follow_clock, None)
    return standin


def _stripe_time_of(standin: StripeStandIn) -> Callable[[str | None], float]:
    state = standin.state

    def stripe_time(customer_id: str | None) -> float:
        if customer_id is None or customer_id not in state.objects:
            return time.time()
        return float(state.customer_now(customer_id))

    return stripe_time


def parse_parameter_overrides(text: str) -> dict[str, str]:
    """``Key=Value Key2=Value2``, as ``sam deploy --parameter-overrides`` takes them,
    checked against the template's parameters."""
    known = set(load_template().get("Parameters", {}))
    overrides: dict[str, str] = {}
    for pair in text.split():
        key, equals, value = pair.partition("=")
        if not equals or key not in known:
            raise UnknownParameter(
                f"{pair!r} is not Key=Value with a parameter of template.yaml "
                f"(known: {', '.join(sorted(known))})"
            )
        overrides[key] = value
    return overrides


class UnknownParameter(ValueError):
    pass


def _functions_environment(stack: LocalStack) -> dict[str, str]:
    """The union of every function's environment (they share this process)."""
    environment: dict[str, str] = {}
    for logical_id in lambda_functions(stack.template):
        environment.update(stack.environment(logical_id))
    return environment


def _store_signing_secret(secret_arn: str, webhook_secret: str) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=secret_arn, SecretString=webhook_secret
    )


def _signing_secret(secret_arn: str) -> str:
    """The newest signing secret the webhook-endpoint resource stored."""
    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    return parse_secrets(value)[0]


def handler_of(module: str) -> Callable[[dict[str, Any], Any], Any]:
    """A function's handler, imported now: its module initialises from the environment."""
    handler: Callable[[dict[str, Any], Any], Any] = importlib.import_module(module).lambda_handler
    return handler


class _CtrlC:
    """Ctrl-C (SIGINT) or SIGTERM: an exception while the stack starts, a flag once it runs.

    Once running, a signal only sets a flag that ``wait`` polls, so it never interrupts
    the main thread half-way through something (a print holding stdout's lock, a
    request): the shutdown that follows (the portal configuration deactivated against a
    real account, the servers stopped) then always runs to its end.
    """

    def __init__(self) -> None:
        self.running = False
        self._stop = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self.running:
            raise KeyboardInterrupt
        self._stop = True

    def wait(self) -> None:
        while not self._stop:
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole product offline.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument(
        "--stripe-port", type=int, default=int(os.environ.get("STRIPE_PORT", "12111"))
    )
    parser.add_argument(
        "--parameter-overrides",
        default=os.environ.get("PARAMETER_OVERRIDES", ""),
        help="template parameters, as sam deploy takes them: 'CheckoutTrialDays=14 ...'",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    # Request lines of moto's and the stand-in's servers would drown the banner.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # One line per request through the local API gateway: method, path, status, time and,
    # for a webhook, its outcome (what API Gateway's access log and the metrics record).
    requests_log = logging.getLogger("sandbox.gateway")
    requests_log.setLevel(logging.INFO)
    printer = logging.StreamHandler(sys.stdout)
    printer.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
    requests_log.addHandler(printer)
    requests_log.propagate = False
    ctrl_c = _CtrlC()
    try:
        external = ExternalStripe.from_environment(os.environ)
        with local_deployment(
            host=args.host,
            port=args.port,
            stripe_port=args.stripe_port,
            external=external,
            ready_on_start=False,
            parameter_overrides=parse_parameter_overrides(args.parameter_overrides),
        ) as deployment:
            ctrl_c.running = True
            print(_banner(deployment, time.monotonic() - started), flush=True)
            deployment.mark_ready()
            ctrl_c.wait()
            print("\nStopping…", flush=True)
    except (PortTaken, PortInUse, NotTestMode, CustomResourceFailed, UnknownParameter) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while starting: what had started is stopped
        print("\nStopped before it was ready.", file=sys.stderr)
        return 130
    except stripe.StripeError as error:
        print(
            f"error: Stripe refused a set-up call: {error.user_message or error}", file=sys.stderr
        )
        return 1
    return 0


def _banner(deployment: LocalDeployment, seconds: float) -> str:
    where = "offline" if deployment.standin else "against your Stripe test-mode account"
    if deployment.standin:
        stripe_line = f"  Stripe stand-in     {deployment.stripe_url} (key {DEFAULT_API_KEY})"
    else:
        stripe_line = f"  Stripe              {deployment.stripe_url} (STRIPE_API_KEY)"
    lines = [
        "",
        f"Billing portal running {where} (ready in {seconds:.1f} s)",
        f"  Demo billing page   {deployment.api_url}/",
        f"  API                 {deployment.api_url}/billing, /portal-sessions, ...",
        f"  Dev token           POST {deployment.api_url}/_dev/token "
        '{"sub": "...", "email": "..."}',
        stripe_line,
        f"  AWS (moto)          {deployment.moto_url}",
        f"  Demo user           {deployment.demo_user} ({DEMO_EMAIL})",
        f"  Portal config       {deployment.configuration_id}",
        f"  Webhook endpoint    {deployment.webhook_endpoint_id}",
    ]
    if deployment.listen_command:
        lines += [
            "Forward the account's events here, in another terminal:",
            f"  {deployment.listen_command}",
        ]
    return "\n".join([*lines, *_try_it(deployment), "Ctrl-C stops everything.", ""])


def _try_it(deployment: LocalDeployment) -> list[str]:
    """Shell lines for this run's ports and demo customer, ready to paste."""
    api = deployment.api_url
    lines = [
        "Try it from a shell:",
        f"  TOKEN=$(curl -s -X POST {api}/_dev/token -H 'content-type: application/json' "
        f"""-d '{{"sub": "{deployment.demo_user}"}}' """
        """| python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')""",
        f'  curl -s {api}/billing -H "authorization: Bearer $TOKEN"',
        f'  curl -s -X POST {api}/portal-sessions -H "authorization: Bearer $TOKEN" '
        """-H 'content-type: application/json' -d '{"flow": "subscription_cancel"}'""",
    ]
    if deployment.standin is not None:
        lines.append(
            f"  curl -s -X POST {deployment.stripe_url}/_standin/customers/"
            f"{deployment.demo_customer_id}/advance_clock -H 'content-type: application/json' "
            """-d '{"seconds": 2678400}'   # the demo customer, a month later"""
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
