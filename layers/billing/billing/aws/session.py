"""The process's one botocore session, which every AWS client of the layer is made from."""

from __future__ import annotations

from functools import cache

import botocore.session


@cache
def aws_session() -> botocore.session.Session:
    """Credentials and region from the environment, and the event hooks every client
    made from it inherits (tests and ``make bench`` count requests through them)."""
    return botocore.session.get_session()
