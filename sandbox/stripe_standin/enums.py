"""Stripe's enumerations, as stripe-python's own type definitions state them.

The stand-in plays Stripe, so it takes the values Stripe accepts from Stripe's
artifacts (the ``Literal`` members of ``stripe.params``' annotations), never from the
product's code; a value the product sends that the pinned stripe-python does not list
is refused here as Stripe would refuse it.
"""

from __future__ import annotations

import typing
from typing import Any

from stripe.params import billing_portal as portal
from stripe.params import checkout


def stripe_values(owner: type, field: str) -> frozenset[str]:
    """The values of ``owner.field``'s ``Literal`` annotation (empty string left out)."""
    probe = type(
        "Probe",
        (),
        {"__annotations__": {field: owner.__annotations__[field]}, "__module__": owner.__module__},
    )
    return frozenset(v for v in _literals(typing.get_type_hints(probe)[field]) if v)


def _literals(hint: Any) -> list[str]:
    if typing.get_origin(hint) is typing.Literal:
        return [value for value in typing.get_args(hint) if isinstance(value, str)]
    return [value for arg in typing.get_args(hint) for value in _literals(arg)]


FLOW_TYPES = stripe_values(portal.SessionCreateParamsFlowData, "type")
AFTER_COMPLETION_TYPES = stripe_values(portal.SessionCreateParamsFlowDataAfterCompletion, "type")
AFTER_EXPIRATION_TYPES = stripe_values(portal.SessionCreateParamsAfterExpiration, "type")
RETENTION_TYPES = stripe_values(
    portal.SessionCreateParamsFlowDataSubscriptionCancelRetention, "type"
)
LOCALES = stripe_values(portal.SessionCreateParams, "locale")
CUSTOMER_UPDATE_FIELDS = stripe_values(
    portal.ConfigurationCreateParamsFeaturesCustomerUpdate, "allowed_updates"
)
CANCELLATION_REASONS = stripe_values(
    portal.ConfigurationCreateParamsFeaturesSubscriptionCancelCancellationReason, "options"
)
PAUSE_DURATION_TYPES = stripe_values(
    portal.ConfigurationCreateParamsFeaturesSubscriptionPauseDuration, "type"
)
PAUSE_INTERVALS = stripe_values(
    portal.ConfigurationCreateParamsFeaturesSubscriptionPauseDurationIntervalOption, "interval"
)
CANCEL_MODES = stripe_values(portal.ConfigurationCreateParamsFeaturesSubscriptionCancel, "mode")
CANCEL_PRORATIONS = stripe_values(
    portal.ConfigurationCreateParamsFeaturesSubscriptionCancel, "proration_behavior"
)
UPDATE_PRORATIONS = stripe_values(
    portal.ConfigurationCreateParamsFeaturesSubscriptionUpdate, "proration_behavior"
)
CHECKOUT_UI_MODES = stripe_values(checkout.SessionCreateParams, "ui_mode")
CHECKOUT_LOCALES = stripe_values(checkout.SessionCreateParams, "locale")
