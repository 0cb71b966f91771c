"""What every test of ``make dev``'s stack needs: free loopback ports and a dev token."""

from __future__ import annotations

import socket

import requests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def dev_token(api_url: str, sub: str, email: str | None = None) -> str:
    """A signed-in user's token from the local gateway's ``POST /_dev/token``."""
    response = requests.post(
        f"{api_url}/_dev/token",
        json={"sub": sub, "email": email or f"{sub}@example.com"},
        timeout=5,
    )
    response.raise_for_status()
    token: str = response.json()["token"]
    return token
