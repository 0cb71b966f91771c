"""Which ``return_url`` values a portal session may send the customer back to.

A return URL is accepted only when its scheme, host and port equal those of one
configured entry exactly, and its path lies under that entry's path (when the
entry has one). Anything a browser could read differently from this parser is
refused outright rather than normalised: userinfo (``https://app@evil``),
backslashes, whitespace and control characters, non-ASCII text, dot segments
(also percent-encoded) and scheme-relative URLs (``//host``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from billing.core.errors import ReturnUrlNotAllowed

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Printable ASCII except space and backslash (browsers read "\" as "/").
_SAFE_URL = re.compile(r"[!-\[\]-~]+")


@dataclass(frozen=True, slots=True)
class AllowedPrefix:
    """One configured entry: an exact origin plus an optional path prefix."""

    scheme: str
    host: str
    port: int
    path: str  # "" (any path) or "/segment..." without a trailing slash

    def admits(self, scheme: str, host: str, port: int, path: str) -> bool:
        if (scheme, host, port) != (self.scheme, self.host, self.port):
            return False
        return not self.path or path == self.path or path.startswith(self.path + "/")


def _origin_parts(parts: SplitResult) -> tuple[str, str, int]:
    """Scheme, host and port of an absolute http(s) URL; ValueError otherwise."""
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("only http and https URLs are allowed")
    if not parts.netloc:
        raise ValueError("the URL must be absolute")
    if "@" in parts.netloc:
        raise ValueError("the URL must not contain credentials")
    host = parts.hostname or ""
    if not host:
        raise ValueError("the URL has no host")
    port = parts.port  # raises ValueError on a malformed port
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def _has_dot_segment(path: str) -> bool:
    # Decode twice so %252e%252e is caught as well as %2e%2e.
    decoded = unquote(unquote(path))
    return any(segment in {".", ".."} for segment in re.split(r"[/\\]", decoded))


@dataclass(frozen=True, slots=True)
class ReturnUrlPolicy:
    """The configured allow-list, checked against each requested return URL."""

    prefixes: tuple[AllowedPrefix, ...]

    @classmethod
    def from_allowed(cls, entries: tuple[str, ...] | list[str]) -> ReturnUrlPolicy:
        """Parse configured entries such as ``https://app.example.com`` or
        ``https://app.example.com/billing``; a malformed entry is a ValueError."""
        prefixes = []
        for entry in entries:
            if not _SAFE_URL.fullmatch(entry):
                raise ValueError(f"allowed return URL {entry!r} contains unsafe characters")
            parts = urlsplit(entry)
            scheme, host, port = _origin_parts(parts)
            if parts.query or parts.fragment or _has_dot_segment(parts.path):
                raise ValueError(f"allowed return URL {entry!r} must be an origin and a path")
            prefixes.append(AllowedPrefix(scheme, host, port, parts.path.rstrip("/")))
        if not prefixes:
            raise ValueError("at least one allowed return URL is required")
        return cls(tuple(prefixes))

    def check(self, url: str) -> str:
        """Return ``url`` unchanged if it is allowed; raise ReturnUrlNotAllowed if not."""
        if len(url) > MAX_URL_LENGTH:
            raise ReturnUrlNotAllowed("return_url is too long")
        if not _SAFE_URL.fullmatch(url):
            raise ReturnUrlNotAllowed("return_url contains characters that are not allowed")
        parts = urlsplit(url)
        try:
            scheme, host, port = _origin_parts(parts)
        except ValueError as error:
            raise ReturnUrlNotAllowed(f"return_url is not allowed: {error}") from None
        if _has_dot_segment(parts.path):
            raise ReturnUrlNotAllowed("return_url must not contain '.' or '..' path segments")
        if not any(prefix.admits(scheme, host, port, parts.path) for prefix in self.prefixes):
            raise ReturnUrlNotAllowed("return_url is not under an allowed origin")
        return url

    def resolve(self, requested: str | None, default: str) -> str:
        """The URL to use: the requested one if allowed, the default when none was sent."""
        return default if requested is None else self.check(requested)
