"""`make dev` checks its ports as its servers bind them: a port whose last connections
wait in TIME_WAIT is free (the servers set SO_REUSEADDR); one with a listener is not."""

from __future__ import annotations

import socket

import pytest

from sandbox.dev import PortTaken, ensure_free

HOST = "127.0.0.1"


def port_in_time_wait() -> int:
    """A port whose server closed a connection first, then stopped listening: the kernel
    keeps that connection in TIME_WAIT for a minute, as after Ctrl-C on `make dev`
    with a browser still connected."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        client = socket.create_connection((HOST, port))
        served, _ = listener.accept()
        served.close()  # the server's side closes first ...
        client.recv(1)  # ... the client sees it ...
        client.close()  # ... and closes: the server's side enters TIME_WAIT
    return port


def test_a_port_in_time_wait_is_free() -> None:
    port = port_in_time_wait()
    # What the check did before: refused for a minute.
    with socket.socket() as plain, pytest.raises(OSError, match="in use"):
        plain.bind((HOST, port))

    ensure_free(HOST, port, "local API gateway")


def test_a_port_with_a_listener_is_taken_and_the_message_says_what_to_do() -> None:
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        with pytest.raises(PortTaken, match=rf"Port {port} .* make dev PORT="):
            ensure_free(HOST, port, "local API gateway")
