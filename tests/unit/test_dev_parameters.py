"""``make dev PARAMETER_OVERRIDES=...`` takes template parameters as ``sam deploy`` does."""

from __future__ import annotations

import pytest

from sandbox.dev import UnknownParameter, parse_parameter_overrides


def test_overrides_are_key_value_pairs_of_the_template_s_parameters() -> None:
    assert parse_parameter_overrides("CheckoutTrialDays=14  AccessPausedGrants=true") == {
        "CheckoutTrialDays": "14",
        "AccessPausedGrants": "true",
    }
    assert parse_parameter_overrides("") == {}


@pytest.mark.parametrize("text", ["CheckoutTrialDay=14", "CheckoutTrialDays", "=14"])
def test_a_misspelt_or_malformed_override_names_itself_and_the_known_ones(text: str) -> None:
    with pytest.raises(UnknownParameter) as refused:
        parse_parameter_overrides(text)
    assert repr(text) in str(refused.value)
    assert "CheckoutTrialDays" in str(refused.value)
