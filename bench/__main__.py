"""``make bench``: every measured figure in one markdown report, printed and written to
``bench/results/latest.md``. Needs ``sam build`` first (``make bench`` runs it)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.artifacts import LAYER, measure_artifacts
from bench.budgets import counted_verdicts, measured_verdicts
from bench.cold_start import measure_cold_starts
from bench.counts import measure_counts
from bench.first_response import measure_first_responses
from bench.report import Run, render
from bench.stack import offline_stack
from bench.timing import measure_timing

RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="cold-start runs per function")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    step("counting requests per operation")
    with offline_stack() as stack:
        counts = measure_counts(stack)
    step("timing snapshot latency and webhook throughput")
    with offline_stack() as stack:  # a table of its own: moto slows down as tables grow
        timing = measure_timing(stack)
    step(f"timing cold starts ({args.runs} runs per function and variant)")
    cold = measure_cold_starts(args.runs)
    step(f"timing cold starts to the first response ({args.runs} runs per function)")
    with offline_stack() as stack:
        first = measure_first_responses(stack, args.runs)
    step("zipping the build artifacts")
    artifacts = measure_artifacts()
    layer = next(artifact for artifact in artifacts if artifact.name == LAYER)
    verdicts = counted_verdicts(counts) + measured_verdicts(cold, layer)
    run = Run(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        python=platform.python_version(),
        machine=f"{platform.system()} {platform.machine()}, nproc {len(os.sched_getaffinity(0))}",
        command="make bench",
        seconds=time.perf_counter() - started,
    )
    text = render(
        run,
        counts=counts,
        timing=timing,
        cold=cold,
        first=first,
        artifacts=artifacts,
        verdicts=verdicts,
    )
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_name(args.output.name + ".tmp")
    partial.write_text(text)
    partial.replace(args.output)
    step(f"written to {args.output}")
    return 0


def step(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
