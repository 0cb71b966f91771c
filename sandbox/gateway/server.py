"""Serving the gateway: a threaded werkzeug server on a port, in a background thread."""

from __future__ import annotations

import errno
import socket
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class PortInUse(RuntimeError):
    """The port is taken; the message names it and says how to choose another."""


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The gateway logs each request itself (``sandbox.gateway``), with its route."""


class GatewayServer:
    """A running server: ``url``, ``port``; ``stop()`` (or use it as a context manager)."""

    def __init__(self, server: BaseWSGIServer) -> None:
        self._server = server
        self.host = server.host
        self.port: int = server.port
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so that stop() returns at once
            name=f"gateway:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> GatewayServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    port_hint: str = "pass another port (0 picks a free one)",
) -> GatewayServer:
    """Serve the WSGI ``app`` on ``host:port`` from a background thread (port 0: any free port).

    A taken port raises ``PortInUse`` naming it, with ``port_hint`` saying how to
    choose another (e.g. ``"run make dev PORT=3001"``).
    """
    # Bound here rather than by werkzeug, which prints and exits on a taken port.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is already in use (another `make dev`?); "
                f"stop what uses it, or {port_hint}"
            ) from None
        raise
    try:
        sock.listen(128)
        server = make_server(
            host, port, app, threaded=True, request_handler=_QuietHandler, fd=sock.fileno()
        )
    finally:
        sock.close()  # the server holds its own duplicate of the socket
    return GatewayServer(server)
