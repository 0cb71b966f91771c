"""A first response only counts when it is the right answer: a fast error would flatter."""

from __future__ import annotations

import json

import pytest

from bench.first_response import REQUESTS, _check

SNAPSHOT, SESSION = REQUESTS


def answer(status: int, body: object) -> dict[str, object]:
    return {"status": status, "body": json.dumps(body)}


def test_a_subscriber_s_snapshot_and_a_portal_url_count() -> None:
    _check(SNAPSHOT, answer(200, {"status": "active"}))
    _check(SESSION, answer(200, {"url": "http://127.0.0.1:1/p/session/x"}))


@pytest.mark.parametrize(
    ("request_index", "status", "body"),
    [
        (0, 503, {"error": {"code": "storage_unavailable"}}),
        (0, 200, {"status": "none"}),  # the seeded subscriber was not found
        (1, 503, {"error": {"code": "secrets_unavailable"}}),
        (1, 200, {"error": "no url"}),
    ],
)
def test_an_error_or_a_wrong_answer_stops_the_run(
    request_index: int, status: int, body: object
) -> None:
    with pytest.raises(RuntimeError, match=str(status)):
        _check(REQUESTS[request_index], answer(status, body))
