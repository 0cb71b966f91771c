"""Library loggers that would write secrets, capped below the levels at which they do.

At DEBUG, botocore logs every request and response body: the Stripe secret key
in ``GetSecretValue`` answers, the signing secrets in ``PutSecretValue``
requests. stripe-python logs every request's parameters and every response
body at DEBUG (SetupIntent client secrets, a new webhook endpoint's signing
secret), and each request URL with its query string (user input included) at
INFO. Lambda's application log level is one switch in the console (Advanced
Logging Controls), so these caps hold whatever it is set to; the functions log
what matters about their AWS and Stripe calls themselves.
"""

from __future__ import annotations

import logging

LIBRARY_LOG_LEVELS = {
    "botocore": logging.INFO,
    "urllib3": logging.INFO,
    "stripe": logging.WARNING,
}


def cap_library_loggers() -> None:
    """Keep the loggers in ``LIBRARY_LOG_LEVELS`` at or above their cap (cheap; idempotent)."""
    for name, level in LIBRARY_LOG_LEVELS.items():
        library_logger = logging.getLogger(name)
        if library_logger.level < level:  # NOTSET (0) too: it would follow the root logger
            library_logger.setLevel(level)
