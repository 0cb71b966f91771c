"""What the deploy-time custom resources do in Stripe and Secrets Manager.

``Custom::PortalConfiguration`` (:class:`PortalConfigurationResource`): Create
-> ``configurations.create``; Update -> ``configurations.update`` in place, same
physical id; Delete -> deactivate (Stripe has no delete). A configuration that
no longer exists (another Stripe account or mode behind the key) is replaced by
a new one on Update and counts as deleted on Delete.

``Custom::StripeWebhookEndpoint`` (:class:`WebhookEndpointResource`): registers
the endpoint with every event type the projection handles and the API version
the code is pinned to, and stores the signing secret, which Stripe returns only
at creation, in Secrets Manager as ``we_<id>=whsec_...`` entries, newest first
(the webhook function accepts any of them). Update changes URL, events and
description in place; a new endpoint (and secret) is registered instead when
``SecretRotation`` changes, the pinned API version changed (Stripe cannot
change an endpoint's version) or the endpoint is gone. CloudFormation then
deletes the old endpoint, and that Delete drops its entry, so both secrets are
valid while both endpoints exist.

Every failure becomes :class:`ResourceFailed` with a reason for the person
running ``sam deploy``; Stripe's own messages are kept (they hold no secrets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import stripe
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_pascal

from billing.projection.registry import HANDLED_EVENT_TYPES
from billing.projection.signature import signing_entries
from billing.provisioning.answer import Provisioned, ResourceFailed
from billing.provisioning.portal_config import (
    ConfigurationInvalid,
    PortalConfigurationSpec,
    PriceFound,
    describe_errors,
    parse_portal_configuration,
    resolve_lookup_keys,
    stripe_params,
)
from billing.stripe_api.client import STRIPE_API_VERSION, idempotency_key

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = Logger(child=True)

StripeClientFactory = Callable[[], stripe.StripeClient]
_LOOKUP_KEYS_PER_LIST = 10  # Stripe's limit for prices.list(lookup_keys=...)


@contextmanager
def stripe_step(what: str) -> Iterator[None]:
    """Turn Stripe exceptions raised while doing ``what`` into a deploy-failure reason."""
    try:
        yield
    except stripe.AuthenticationError:
        raise ResourceFailed(
            f"Stripe rejected the secret key while trying to {what}: check the key "
            "stored in the StripeSecretName secret."
        ) from None
    except stripe.PermissionError as error:
        raise ResourceFailed(
            f"The Stripe key may not {what} ({error.user_message or error}); a restricted "
            "key needs write access to the billing portal and webhook endpoints."
        ) from None
    except stripe.InvalidRequestError as error:
        param = f" (parameter {error.param})" if error.param else ""
        raise ResourceFailed(
            f"Stripe refused to {what}: {error.user_message or error}{param}"
        ) from None
    except (stripe.APIConnectionError, stripe.RateLimitError):
        raise ResourceFailed(
            f"Stripe was unreachable while trying to {what}; retry the deploy."
        ) from None
    except stripe.StripeError as error:
        raise ResourceFailed(
            f"Stripe failed to {what} ({type(error).__name__}); retry the deploy."
        ) from None


def _is_missing(error: stripe.InvalidRequestError) -> bool:
    return error.code == "resource_missing" or error.http_status == 404


# --- Custom::PortalConfiguration ---------------------------------------------------------------


class PortalConfigurationResource:
    """Create, update in place, and deactivate the portal configuration."""

    def __init__(self, stripe_client: StripeClientFactory) -> None:
        self._stripe_client = stripe_client

    def create(self, request: CloudFormationCustomResourceEvent) -> Provisioned:
        spec = _portal_spec(request.resource_properties)
        client = self._stripe_client()
        params = _portal_params(spec, self._prices(client, spec))
        with stripe_step("create the portal configuration"):
            config = client.v1.billing_portal.configurations.create(
                params,  # type: ignore[arg-type]  # plain dicts; the stand-in tests check them
                options={"idempotency_key": _request_key("portal-configuration", request)},
            )
        logger.info("Portal configuration created", extra={"configuration": config.id})
        return _portal_outcome(config, spec)

    def update(self, request: CloudFormationCustomResourceEvent) -> Provisioned:
        spec = _portal_spec(request.resource_properties)
        configuration_id = request.physical_resource_id
        if not configuration_id.startswith("bpc_"):
            return self.create(request)
        client = self._stripe_client()
        previous_metadata = request.old_resource_properties.get("Metadata")
        params = _portal_params(
            spec,
            self._prices(client, spec),
            previous_metadata_keys=previous_metadata if isinstance(previous_metadata, dict) else (),
        )
        with stripe_step("update the portal configuration"):
            try:
                config = client.v1.billing_portal.configurations.update(
                    configuration_id,
                    {**params, "active": True},  # type: ignore[arg-type]
                )
            except stripe.InvalidRequestError as error:
                if not _is_missing(error):
                    raise
                # Another account or mode behind the key: a replacement is needed.
                logger.warning(
                    "Portal configuration not found; creating a new one",
                    extra={"configuration": configuration_id},
                )
                return self.create(request)
        logger.info("Portal configuration updated", extra={"configuration": config.id})
        return _portal_outcome(config, spec)

    def delete(self, request: CloudFormationCustomResourceEvent) -> None:
        configuration_id = request.physical_resource_id
        if not configuration_id.startswith("bpc_"):
            return  # never created: the rollback of a failed Create
        client = self._stripe_client()
        with stripe_step("deactivate the portal configuration"):
            try:
                client.v1.billing_portal.configurations.update(configuration_id, {"active": False})
            except stripe.InvalidRequestError as error:
                if not _is_missing(error):
                    raise
                return
        logger.info("Portal configuration deactivated", extra={"configuration": configuration_id})

    @staticmethod
    def _prices(
        client: stripe.StripeClient, spec: PortalConfigurationSpec
    ) -> dict[str, PriceFound]:
        keys = spec.features.subscription_update.lookup_keys()
        found: list[PriceFound] = []
        with stripe_step("look up the portal's prices"):
            for start in range(0, len(keys), _LOOKUP_KEYS_PER_LIST):
                chunk = keys[start : start + _LOOKUP_KEYS_PER_LIST]
                prices = client.v1.prices.list({"lookup_keys": chunk, "limit": 100})
                found.extend(
                    PriceFound(
                        lookup_key=price.lookup_key or "",
                        price_id=price.id,
                        product_id=price.product if isinstance(price.product, str) else "",
                        active=price.active,
                        recurring=price.recurring is not None,
                    )
                    for price in prices.data
                )
        try:
            return resolve_lookup_keys(spec, found)
        except ConfigurationInvalid as error:
            raise ResourceFailed(str(error)) from None


def _portal_spec(properties: dict[str, Any]) -> PortalConfigurationSpec:
    try:
        return parse_portal_configuration(properties)
    except ConfigurationInvalid as error:
        raise ResourceFailed(str(error)) from None


def _portal_params(
    spec: PortalConfigurationSpec, prices: dict[str, PriceFound], **options: Any
) -> dict[str, Any]:
    try:
        return stripe_params(spec, prices, **options)
    except ConfigurationInvalid as error:  # rules that need the resolved prices
        raise ResourceFailed(str(error)) from None


def _portal_outcome(
    config: stripe.billing_portal.Configuration, spec: PortalConfigurationSpec
) -> Provisioned:
    login_url = config.login_page.url if config.login_page and config.login_page.url else ""
    return Provisioned(
        config.id,
        {
            "ConfigurationId": config.id,
            "Flows": ",".join(spec.offered_flows()),
            "LoginPageUrl": login_url,
        },
    )


def _request_key(purpose: str, request: CloudFormationCustomResourceEvent) -> str:
    # One CloudFormation request -> one Stripe object, even if the request is retried.
    return idempotency_key(
        purpose, request.stack_id, request.logical_resource_id, request.request_id
    )


# --- Custom::StripeWebhookEndpoint -------------------------------------------------------------


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an https:// URL")
    return value


class WebhookEndpointSpec(BaseModel):
    """The properties of ``Custom::StripeWebhookEndpoint``."""

    model_config = ConfigDict(alias_generator=to_pascal, extra="ignore", frozen=True)

    url: Annotated[str, AfterValidator(_http_url)]
    # Secrets Manager secret (name or ARN) the webhook function reads.
    secret_id: str = Field(min_length=1)
    description: str = Field(default="", max_length=5000)
    # Change it (any new value) to register a new endpoint with a new signing secret.
    secret_rotation: str = ""
    # Written in the template so that upgrading the pinned version changes a
    # property, which re-runs the resource; it must equal the code's version.
    api_version: str = STRIPE_API_VERSION

    @model_validator(mode="after")
    def _version_is_the_pinned_one(self) -> WebhookEndpointSpec:
        if self.api_version != STRIPE_API_VERSION:
            raise ValueError(
                f"ApiVersion {self.api_version} is not the version the code is pinned to; "
                f"set it to {STRIPE_API_VERSION}"
            )
        return self


def _endpoint_spec(properties: dict[str, Any]) -> WebhookEndpointSpec:
    try:
        return WebhookEndpointSpec.model_validate(properties)
    except ValidationError as error:
        reason = describe_errors(error).replace("portal configuration", "webhook endpoint")
        raise ResourceFailed(reason) from None


class SigningSecrets:
    """The ``we_<id>=whsec_...`` entries in the webhook function's secret."""

    def __init__(self, client: Callable[[], SecretsManagerClient]) -> None:
        self._client = client

    def entries(self, secret_id: str) -> list[tuple[str, str]]:
        """(endpoint id, signing secret) pairs; anything else in the value is dropped."""
        value = self._client().get_secret_value(SecretId=secret_id).get("SecretString") or ""
        return [
            (endpoint_id, secret)
            for endpoint_id, secret in signing_entries(value)
            if endpoint_id and secret.startswith("whsec_")
        ]

    def put(self, secret_id: str, entries: list[tuple[str, str]]) -> None:
        value = ",".join(f"{endpoint_id}={secret}" for endpoint_id, secret in entries)
        self._client().put_secret_value(SecretId=secret_id, SecretString=value or "none")

    def add(self, secret_id: str, endpoint_id: str, secret: str) -> None:
        others = [pair for pair in self.entries(secret_id) if pair[0] != endpoint_id]
        self.put(secret_id, [(endpoint_id, secret), *others])

    def remove(self, secret_id: str, endpoint_id: str) -> None:
        entries = self.entries(secret_id)
        if any(pair[0] == endpoint_id for pair in entries):
            self.put(secret_id, [pair for pair in entries if pair[0] != endpoint_id])


class WebhookEndpointResource:
    """Register, update and delete the Stripe webhook endpoint; keep its secret."""

    def __init__(self, stripe_client: StripeClientFactory, secrets: SigningSecrets) -> None:
        self._stripe_client = stripe_client
        self._secrets = secrets

    def create(self, request: CloudFormationCustomResourceEvent) -> Provisioned:
        spec = _endpoint_spec(request.resource_properties)
        client = self._stripe_client()
        with stripe_step("register the webhook endpoint"):
            endpoint = client.v1.webhook_endpoints.create(
                {**_endpoint_params(spec), "api_version": STRIPE_API_VERSION},  # type: ignore[typeddict-item]
                options={"idempotency_key": _request_key("webhook-endpoint", request)},
            )
        if not endpoint.secret:
            self._delete_endpoint(client, endpoint.id)
            raise ResourceFailed("Stripe returned no signing secret for the new endpoint.")
        try:
            self._secrets.add(spec.secret_id, endpoint.id, endpoint.secret)
        except (ClientError, BotoCoreError) as error:
            # An endpoint whose secret is lost would only ever get 400s: remove it.
            self._delete_endpoint(client, endpoint.id)
            raise ResourceFailed(
                f"Could not store the signing secret in {spec.secret_id} "
                f"({_aws_error(error)}); the new endpoint was removed again."
            ) from None
        logger.info("Webhook endpoint registered", extra={"endpoint": endpoint.id})
        return _endpoint_outcome(endpoint)

    def update(self, request: CloudFormationCustomResourceEvent) -> Provisioned:
        spec = _endpoint_spec(request.resource_properties)
        old = request.old_resource_properties
        endpoint_id = request.physical_resource_id
        if not endpoint_id.startswith("we_"):
            return self.create(request)
        if spec.secret_rotation != str(old.get("SecretRotation") or ""):
            logger.info("Rolling the signing secret with a new endpoint")
            return self.create(request)
        client = self._stripe_client()
        with stripe_step("read the webhook endpoint"):
            try:
                current = client.v1.webhook_endpoints.retrieve(endpoint_id)
            except stripe.InvalidRequestError as error:
                if not _is_missing(error):
                    raise
                logger.warning("Webhook endpoint not found; registering a new one")
                return self.create(request)
        if current.api_version != STRIPE_API_VERSION:
            # An endpoint keeps the version it was created with.
            logger.info(
                "Webhook endpoint on another API version; registering a new one",
                extra={"endpoint_version": current.api_version},
            )
            return self.create(request)
        if spec.secret_id != old.get("SecretId") and not self._move_secret(
            str(old.get("SecretId") or ""), spec.secret_id, endpoint_id
        ):
            return self.create(request)
        with stripe_step("update the webhook endpoint"):
            endpoint = client.v1.webhook_endpoints.update(
                endpoint_id,
                _endpoint_params(spec),  # type: ignore[arg-type]
            )
        logger.info("Webhook endpoint updated", extra={"endpoint": endpoint.id})
        return _endpoint_outcome(endpoint)

    def delete(self, request: CloudFormationCustomResourceEvent) -> None:
        endpoint_id = request.physical_resource_id
        if not endpoint_id.startswith("we_"):
            return  # never created
        client = self._stripe_client()
        with stripe_step("delete the webhook endpoint"):
            try:
                client.v1.webhook_endpoints.delete(endpoint_id)
            except stripe.InvalidRequestError as error:
                if not _is_missing(error):
                    raise
        secret_id = str(request.resource_properties.get("SecretId") or "")
        if secret_id:
            try:
                self._secrets.remove(secret_id, endpoint_id)
            except ClientError as error:
                # The secret may already be gone with the stack; nothing to clean then.
                if _aws_error(error) != "ResourceNotFoundException":
                    raise
        logger.info("Webhook endpoint deleted", extra={"endpoint": endpoint_id})

    def _move_secret(self, old_secret_id: str, new_secret_id: str, endpoint_id: str) -> bool:
        """Copy the endpoint's entry to a renamed secret; False if it cannot be found."""
        try:
            entries = dict(self._secrets.entries(old_secret_id)) if old_secret_id else {}
        except ClientError:
            entries = {}
        if endpoint_id not in entries:
            return False
        self._secrets.add(new_secret_id, endpoint_id, entries[endpoint_id])
        return True

    @staticmethod
    def _delete_endpoint(client: stripe.StripeClient, endpoint_id: str) -> None:
        try:
            client.v1.webhook_endpoints.delete(endpoint_id)
        except stripe.StripeError:
            logger.exception("Could not remove the endpoint whose secret was not stored")


def _endpoint_params(spec: WebhookEndpointSpec) -> dict[str, Any]:
    return {
        "url": spec.url,
        "enabled_events": list(HANDLED_EVENT_TYPES),
        "description": spec.description,
        "metadata": {"managed_by": "billing-portal"},
    }


def _endpoint_outcome(endpoint: stripe.WebhookEndpoint) -> Provisioned:
    return Provisioned(
        endpoint.id,
        {
            "EndpointId": endpoint.id,
            "Url": endpoint.url,
            "ApiVersion": endpoint.api_version or "",
            "EnabledEvents": ",".join(endpoint.enabled_events),
        },
    )


def _aws_error(error: ClientError | BotoCoreError) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__
