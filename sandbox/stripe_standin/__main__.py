"""Run the Stripe stand-in: ``python -m sandbox.stripe_standin [--port 12111]``."""

from __future__ import annotations

import argparse
import sys
import threading

from sandbox.stripe_standin.server import DEFAULT_API_KEY, StripeStandIn


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    args = parser.parse_args()
    try:
        standin = StripeStandIn(args.host, args.port, args.api_key).start()
    except OSError as error:
        print(f"Cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"Stripe stand-in on {standin.url} (API key {args.api_key})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
