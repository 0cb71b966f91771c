"""Stripe's enumerations, read from stripe-python's own type definitions.

The values a parameter accepts (portal locales, flow types, cancellation reasons, ...)
are the ``Literal`` members of its annotation in ``stripe.params``, so moving the
stripe-python pin moves them too, and nothing here is a list copied by hand. Only the
write path imports this module (it imports stripe's parameter types); the snapshot's
read path keeps its own small enums (``billing.core.domain``), which a unit test holds to
these.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

from stripe.params import billing_portal as portal_params
from stripe.params import checkout as checkout_params


@cache
def stripe_values(owner: type, field: str) -> tuple[str, ...]:
    """The string values stripe-python's annotation of ``owner.field`` lists (its
    ``Literal`` members; the empty string, which clears a field, left out)."""
    # Evaluated alone, in the module that declares it: the whole class's hints need
    # names stripe imports only while type checking.
    probe = type(
        "Probe",
        (),
        {"__annotations__": {field: owner.__annotations__[field]}, "__module__": owner.__module__},
    )
    hint = typing.get_type_hints(probe)[field]
    return tuple(value for value in _literals(hint) if value)


def _literals(hint: Any) -> list[str]:
    if typing.get_origin(hint) is typing.Literal:
        return [value for value in typing.get_args(hint) if isinstance(value, str)]
    return [value for arg in typing.get_args(hint) for value in _literals(arg)]


FLOW_TYPES = stripe_values(portal_params.SessionCreateParamsFlowData, "type")
PORTAL_LOCALES = stripe_values(portal_params.SessionCreateParams, "locale")
CHECKOUT_LOCALES = stripe_values(checkout_params.SessionCreateParams, "locale")
CUSTOMER_UPDATE_FIELDS = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesCustomerUpdate, "allowed_updates"
)
CANCELLATION_REASONS = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesSubscriptionCancelCancellationReason,
    "options",
)
SUBSCRIPTION_UPDATE_FIELDS = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesSubscriptionUpdate, "default_allowed_updates"
)
PAUSE_INTERVALS = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesSubscriptionPauseDurationIntervalOption,
    "interval",
)
CANCEL_MODES = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesSubscriptionCancel, "mode"
)
CANCEL_PRORATIONS = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesSubscriptionCancel, "proration_behavior"
)
UPDATE_PRORATIONS = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesSubscriptionUpdate, "proration_behavior"
)
BILLING_CYCLE_ANCHORS = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesSubscriptionUpdate, "billing_cycle_anchor"
)
TRIAL_UPDATE_BEHAVIORS = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesSubscriptionUpdate, "trial_update_behavior"
)
SCHEDULE_CONDITIONS = stripe_values(
    portal_params.ConfigurationCreateParamsFeaturesSubscriptionUpdateScheduleAtPeriodEndCondition,
    "type",
)
AFTER_COMPLETION_TYPES = stripe_values(
    portal_params.SessionCreateParamsFlowDataAfterCompletion, "type"
)
