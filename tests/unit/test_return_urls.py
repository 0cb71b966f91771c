"""The return-URL policy: only URLs under configured origins and path prefixes."""

from __future__ import annotations

import ada_url
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.core.errors import ReturnUrlNotAllowed
from billing.portal.return_urls import ReturnUrlPolicy

POLICY = ReturnUrlPolicy.from_allowed(
    ["https://app.example.com", "http://localhost:5173", "https://shop.example.com/billing/"]
)
ALLOWED_ORIGINS = {"https://app.example.com", "http://localhost:5173", "https://shop.example.com"}


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.com",
        "https://app.example.com/",
        "https://app.example.com/account?tab=billing#plan",
        "https://APP.example.com:443/account",
        "HTTPS://app.example.com/x",
        "http://localhost:5173/settings",
        "https://shop.example.com/billing",
        "https://shop.example.com/billing/invoices",
    ],
)
def test_urls_under_an_allowed_prefix_are_accepted_unchanged(url: str) -> None:
    assert POLICY.check(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test/",  # another host
        "//app.example.com/account",  # scheme-relative
        "/account",  # relative
        "https://app.example.com@evil.test/",  # userinfo trick
        "https://user:pw@app.example.com/",  # any credentials
        "https://app.example.com.evil.test/",  # suffix trick
        "https://evilapp.example.com/",  # prefix trick
        "https://app.example.com:8443/",  # other port
        "http://app.example.com/",  # other scheme
        "javascript:alert(1)//app.example.com",
        "data:text/html,<script>alert(1)</script>",
        "ftp://app.example.com/",
        "https://app.example.com/\r\nSet-Cookie:x=1",  # control characters
        "https://app.example.com/\x00",
        "https://app.example.com/ account",  # whitespace
        "https://app.example.com\\@evil.test/",  # backslash
        "https:\\\\evil.test",
        "https://shop.example.com/billingx",  # path prefix is per segment
        "https://shop.example.com/",  # outside the path prefix
        "https://shop.example.com/billing/../admin",  # dot segments
        "https://shop.example.com/billing/%2e%2e/admin",
        "https://shop.example.com/billing/%252e%252e/admin",
        "https://app.example.com:99999/",  # malformed port
        "https://xn--pp-cza.example.com/",  # look-alike host
        "https://\u0430pp.example.com/",  # Cyrillic a: non-ASCII refused
        "https://app.example.com/" + "a" * 2100,  # too long
        "",
    ],
)
def test_attacks_and_other_origins_are_refused(url: str) -> None:
    with pytest.raises(ReturnUrlNotAllowed):
        POLICY.check(url)


def test_absent_return_url_resolves_to_the_default_and_a_present_one_is_checked() -> None:
    assert (
        POLICY.resolve(None, "https://app.example.com/account") == "https://app.example.com/account"
    )
    with pytest.raises(ReturnUrlNotAllowed):
        POLICY.resolve("https://evil.test/", "https://app.example.com/account")


@pytest.mark.parametrize(
    "entry",
    ["app.example.com", "https://app.example.com/?q=1", "ftp://x.test", "https://u@x.test", ""],
)
def test_malformed_configuration_entries_are_rejected_at_startup(entry: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        ReturnUrlPolicy.from_allowed([entry])


_PIECES = st.sampled_from(
    [
        "https://", "http://", "//", "HTTPS://", "javascript:", "app.example.com",
        "localhost", ":5173", ":443", ":80", "shop.example.com", "/billing", "/", "@", "evil.test",
        ".", "..", "%2e", "\\", "#", "?", "x", "%40", ":", "\t", "\u0430", "/billing/", "user:pw@",
    ]
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=8).map("".join))
def test_every_accepted_url_has_an_allowed_origin_as_a_browser_parses_it(url: str) -> None:
    """Property: whatever is accepted, a WHATWG URL parser (as in browsers) sees an allowed
    origin with no credentials, so the redirect cannot leave the allowed sites."""
    try:
        POLICY.check(url)
    except ReturnUrlNotAllowed:
        return
    parsed = ada_url.URL(url)
    assert parsed.origin in ALLOWED_ORIGINS
    assert parsed.username == ""
    assert parsed.password == ""
    if parsed.origin == "https://shop.example.com":
        assert parsed.pathname == "/billing" or parsed.pathname.startswith("/billing/")


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="abcXYZ019-_~/=&?#%", max_size=60))
def test_plain_paths_under_an_allowed_origin_are_accepted(path: str) -> None:
    """The property above is not vacuous: ordinary paths under an allowed origin pass."""
    url = "https://app.example.com/" + path
    if "/./" in url or "/../" in url or url.endswith(("/.", "/..")) or "%" in path:
        return
    assert POLICY.check(url) == url
