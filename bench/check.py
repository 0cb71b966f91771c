"""``make bench-check``: every budget, PASS or FAIL with its figure; exit 1 if any is broken.

``--counted`` runs only the counted budgets (no timing, no ``sam build``): ``make test``
runs it. Without it, the cold-start share and the layer size are checked too, on the
artifacts of ``sam build``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from bench.artifacts import BUILD, LAYER, zipped
from bench.budgets import Verdict, counted_verdicts, measured_verdicts
from bench.cold_start import measure_cold_starts
from bench.counts import measure_counts
from bench.stack import offline_stack


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.check", description=__doc__)
    parser.add_argument(
        "--counted", action="store_true", help="only the counted budgets (no timing, no build)"
    )
    parser.add_argument("--runs", type=int, default=15, help="cold-start runs per function")
    args = parser.parse_args(argv)
    with offline_stack() as stack:
        verdicts = counted_verdicts(measure_counts(stack))
    if not args.counted:
        cold = measure_cold_starts(
            args.runs,
            functions=("BillingFunction", "PortalSessionFunction"),
            naive=False,
            variants=("pyc",),
        )
        verdicts += measured_verdicts(cold, zipped(BUILD / LAYER))
    return report(verdicts)


def report(verdicts: Sequence[Verdict], out: TextIO | None = None) -> int:
    """Print one line per budget and a summary; the exit status (1 if any is broken)."""
    out = out or sys.stdout
    for verdict in verdicts:
        print(verdict.line(), file=out)
    broken = [verdict for verdict in verdicts if not verdict.passed]
    if not broken:
        print(f"bench-check: all {len(verdicts)} budgets kept", file=out)
        return 0
    print(f"bench-check: {len(broken)} of {len(verdicts)} budgets BROKEN:", file=out)
    for verdict in broken:
        print(f"  BROKEN  {verdict.budget}: {verdict.measured}", file=out)
    return 1


if __name__ == "__main__":
    sys.exit(main())
