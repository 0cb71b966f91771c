"""``make test-stripe`` runs only against a test-mode account, and says what it needs."""

from __future__ import annotations

import pytest

from tools.test_stripe import LIVE_KEY, NEEDS_KEY, contract_environment, main


def test_without_a_key_it_says_what_it_needs_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    assert main([]) == 2
    assert "STRIPE_API_KEY=sk_test_" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["sk_live_51Abc", "rk_live_51Abc", "pk_test_51Abc", "whsec_1"])
def test_it_refuses_anything_but_a_test_mode_secret_key(
    key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", key)
    assert main([]) == 2
    said = capsys.readouterr().err
    assert "refuses live-mode keys" in said
    assert key not in said, "a key is never echoed"


def test_a_test_mode_key_reaches_the_contract_scenarios() -> None:
    environment = contract_environment({"STRIPE_API_KEY": " sk_test_51Abc ", "PATH": "/bin"})
    assert isinstance(environment, dict)
    assert environment["CONTRACT_STRIPE_API_KEY"] == "sk_test_51Abc"
    assert contract_environment({}) == NEEDS_KEY
    assert contract_environment({"STRIPE_API_KEY": "sk_live_1"}) == LIVE_KEY
