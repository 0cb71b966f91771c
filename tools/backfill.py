"""``make backfill``: rebuild the projection from Stripe, in this process.

Reads the same environment as the functions (TABLE_NAME, STRIPE_SECRET_NAME,
STRIPE_API_BASE, ...) with your AWS credentials. To run it inside the deployed
stack instead: ``make backfill STACK=<stack name>`` (invokes BackfillFunction).
"""

from __future__ import annotations

import argparse
import json

from billing.aws.settings import get_backfill_settings
from functions.backfill.app import run_backfill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--no-replay", action="store_true", help="skip replaying undelivered events"
    )
    args = parser.parse_args()
    print(json.dumps(run_backfill(get_backfill_settings(), replay=not args.no_replay), indent=2))


if __name__ == "__main__":
    main()
