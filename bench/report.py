"""The markdown report of ``make bench``: the same text on stdout and in ``bench/results``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.artifacts import Artifact
from bench.budgets import Verdict, described
from bench.cold_start import NAIVE, ColdStarts
from bench.counts import Count, Counts
from bench.first_response import FirstResponses
from bench.timing import Rate, Timing


@dataclass(frozen=True)
class Run:
    """Where and how the figures were made."""

    date: str
    python: str
    machine: str
    command: str
    seconds: float


def render(
    run: Run,
    *,
    counts: Counts,
    timing: Timing,
    cold: ColdStarts,
    first: FirstResponses,
    artifacts: Sequence[Artifact],
    verdicts: Sequence[Verdict],
) -> str:
    parts = [
        "# Benchmarks",
        "",
        f"`{run.command}` on {run.date}: Python {run.python}, {run.machine}; "
        f"took {run.seconds:.0f} s. Timings are medians on a shared machine: "
        "read the ratios, not the milliseconds.",
        *_requests(counts),
        *_throughput(timing),
        *_latency(timing),
        *_cold_starts(cold),
        *_first_responses(first, cold),
        *_artifacts(artifacts),
        "",
        "## Budgets (`make bench-check`)",
        "",
        "```",
        *(verdict.line() for verdict in verdicts),
        "```",
    ]
    return "\n".join(parts) + "\n"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _request_rows(counts: Iterable[Count]) -> list[tuple[str, str, str, str]]:
    return [(c.operation, described(c.dynamodb), described(c.stripe), c.seed or "") for c in counts]


def _requests(counts: Counts) -> list[str]:
    columns = ("operation", "DynamoDB requests", "Stripe calls", "seed design")
    webhooks = [
        (
            f"`{w.event_type}`" + (" *" if w.relabelled else ""),
            described(w.first.dynamodb),
            described(w.first.stripe),
            described(w.again.dynamodb),
            described(w.again.stripe),
        )
        for w in counts.webhooks
    ]
    return [
        "",
        "## Requests per operation",
        "",
        "Counted on the real handlers in-process (moto, the Stripe stand-in over HTTP): "
        "DynamoDB by a `before-call` hook on boto3's session, Stripe by a hook on "
        "stripe-python's HTTP client, checked against the stand-in's request log. Steady "
        "state: the user is linked, the catalog is in the table, earlier events arrived.",
        "",
        "### Snapshot",
        "",
        *_table(columns, _request_rows(counts.snapshots)),
        "",
        f"`stripe` imported by the snapshot function: "
        f"{'yes' if counts.snapshot_imports_stripe else 'no'} "
        "(fresh interpreter that serves one `GET /billing`).",
        "",
        "### Portal sessions (each flow; the user's customer exists unless said)",
        "",
        *_table(columns, _request_rows(counts.sessions)),
        "",
        "### Webhooks, each handled type: first delivery, then Stripe's redelivery",
        "",
        *_table(
            (
                "event type",
                "DynamoDB",
                "Stripe",
                "redelivered: DynamoDB",
                "redelivered: Stripe",
            ),
            webhooks,
        ),
        "",
        "\\* The stand-in never emits this type: delivered with an object of the same "
        "kind (the registry, `billing/event_registry.py`, folds each type by its kind).",
        "",
        "### Webhooks outside the steady state",
        "",
        *_table(
            ("path", "DynamoDB requests", "Stripe calls", "outcome"),
            [
                (c.operation, described(c.dynamodb), described(c.stripe), c.outcome)
                for c in counts.webhook_paths
            ],
        ),
        "",
        "### A product renamed: the webhook announces it, the fan-out copies it",
        "",
        *_table(
            ("subscribers", "webhook: DynamoDB", "fan-out: DynamoDB", "invocations", "Stripe"),
            [
                (
                    str(f.subscribers),
                    described(f.announce.dynamodb),
                    _tally(f.fanout.dynamodb),
                    str(f.invocations),
                    described((*f.announce.stripe, *f.fanout.stripe)),
                )
                for f in counts.fanouts
            ],
        ),
        "",
        "Bound: N `UpdateItem` + ⌊N/100⌋ + 1 `Query` for N subscribers (a page of the "
        "subscriber index is 100), and one `GetItem` and one SQS message per fan-out "
        "invocation, each of which hands the rest on 30 s before its 300 s timeout.",
        "",
        "### Deploy-time provisioning: `Custom::StripeCatalog`",
        "",
        *_table(
            ("deploy", "Stripe calls", "of which writes", "DynamoDB requests"),
            [
                (
                    c.operation,
                    _tally(c.stripe),
                    str(sum(not call.startswith("GET ") for call in c.stripe)),
                    str(len(c.dynamodb)),
                )
                for c in counts.deploys
            ],
        ),
    ]


def _tally(calls: Sequence[str]) -> str:
    """``101 UpdateItem + 2 Query``: the counts of each operation, most frequent first."""
    counted = Counter(calls)
    return " + ".join(f"{n} {name}" for name, n in counted.most_common()) or "0"


def _throughput(timing: Timing) -> list[str]:
    def rates(rate: Rate) -> tuple[str, str]:
        return f"{rate.wall:.1f}", f"{rate.cpu:.1f}"

    return [
        "",
        "## Webhook throughput (in-process, moto)",
        "",
        *_table(
            ("", "per second", "per CPU second", "ratio (CPU)"),
            [
                (
                    "signed `customer.subscription.updated` events through the handler",
                    *rates(timing.webhook),
                    "1",
                ),
                (
                    "bare `PutItem` (a dedupe record)",
                    *rates(timing.put),
                    f"overhead factor {timing.webhook_overhead:.1f}x",
                ),
                (
                    "the same event's 2 DynamoDB requests alone (`BatchGetItem` + "
                    "`TransactWriteItems`, through the store)",
                    *rates(timing.requests),
                    f"handler / its requests {timing.handler_overhead:.2f}x",
                ),
            ],
        ),
        "",
        "The three interleaved one by one in rotating order; medians of 3 rounds of 100; "
        "cyclic GC paused while timing (with moto's whole account in the heap a full "
        "collection takes tens of ms, an artefact). moto copies the whole table on every "
        "`TransactWriteItems`, which dominates an event's time: the overhead factor against "
        "`PutItem` is mostly moto's, and the last ratio (the handler's time over that of its "
        "own two requests) is the handler's own share.",
    ]


def _latency(timing: Timing) -> list[str]:
    snapshot, query = timing.snapshot, timing.query
    return [
        "",
        f"## Snapshot latency, warm (in-process, moto, {snapshot.samples} samples)",
        "",
        *_table(
            ("", "p50 ms", "p99 ms"),
            [
                (
                    "`GET /billing` (12 invoices)",
                    f"{snapshot.p50_ms:.2f}",
                    f"{snapshot.p99_ms:.2f}",
                ),
                ("its one `Query`, bare", f"{query.p50_ms:.2f}", f"{query.p99_ms:.2f}"),
                (
                    "ratio",
                    f"{timing.snapshot_ratio:.2f}x",
                    f"{snapshot.p99_ms / query.p99_ms:.2f}x",
                ),
            ],
        ),
        "",
        "Wall time per call, after 30 warm-up calls; the two alternate (each first as "
        "often), cyclic GC paused while timing.",
    ]


def _cold_starts(cold: ColdStarts) -> list[str]:
    naive = cold.of(NAIVE).cpu_ms["pyc"]
    session = cold.of("PortalSessionFunction").cpu_ms["pyc"]
    rows = [
        (
            "naive baseline: stripe + Powertools + boto3 at import"
            if f.function == NAIVE
            else f.function,
            f"{f.cpu_ms['pyc']:.0f}",
            f"{f.cpu_ms['source']:.0f}",
            f"{f.wall_ms['pyc']:.0f}",
            f"{f.wall_ms['source']:.0f}",
            f"{f.cpu_ms['pyc'] / naive:.2f}",
            f"{f.cpu_ms['pyc'] / session:.2f}",
            "yes" if f.imports_stripe else "no",
            "yes" if f.imports_pydantic else "no",
        )
        for f in cold.functions
    ]
    swapped = ", ".join(cold.replaced_extensions)
    return [
        "",
        f"## Cold start: import of the handler module (medians of {cold.runs} fresh processes)",
        "",
        *_table(
            (
                "function",
                "CPU ms, .pyc",
                "CPU ms, no .pyc",
                "wall ms, .pyc",
                "wall ms, no .pyc",
                "vs naive (CPU, .pyc)",
                "vs portal session (CPU, .pyc)",
                "imports stripe",
                "imports pydantic",
            ),
            rows,
        ),
        "",
        "Each in a fresh `python3.13 -I -S`: `importlib.import_module('app')` timed inside "
        "it (interpreter start-up excluded) with `process_time` (CPU) and `perf_counter` "
        "(wall); other processes on a shared machine inflate wall time, not CPU time. "
        "`sys.path` as on Lambda: the built function, the built layer, the runtime's boto3 "
        "(precompiled). No .pyc: every `__pycache__` removed and `-B`, as a layer without "
        "bytecode on read-only `/opt`. The naive baseline is `bench.cold_start.NAIVE_HANDLER`."
        + (
            f" The arm64 layer's extension modules ran as this machine's builds: {swapped}."
            if swapped
            else ""
        ),
    ]


def _first_responses(first: FirstResponses, cold: ColdStarts) -> list[str]:
    session = first.of("PortalSessionFunction").total_ms
    rows = [
        (
            f.function,
            f.request,
            f"{f.import_ms:.0f}",
            f"{f.request_ms:.0f}",
            f"{f.total_ms:.0f}",
            f"{f.total_ms / session:.2f}",
        )
        for f in first.functions
    ]
    import_share = (
        cold.of("BillingFunction").cpu_ms["pyc"] / cold.of("PortalSessionFunction").cpu_ms["pyc"]
    )
    return [
        "",
        f"## Cold start to the first response (CPU, .pyc, medians of {first.runs} fresh processes)",
        "",
        *_table(
            (
                "function",
                "first request",
                "import ms",
                "first request ms",
                "total ms",
                "vs portal session (total)",
            ),
            rows,
        ),
        "",
        "The same fresh processes and build as the table above, then one real request: AWS "
        "calls over HTTP to moto's server, Stripe calls to the stand-in, both outside the "
        "timed process. Work a function puts off from its import to its first request "
        "shows here. Snapshot over portal session: "
        f"{first.of('BillingFunction').total_ms / session:.0%} to the first response, "
        f"{import_share:.0%} at import (`bench.first_response`).",
    ]


def _artifacts(artifacts: Sequence[Artifact]) -> list[str]:
    return [
        "",
        "## Artifact sizes after `sam build` (zipped with deflate, as `sam package`)",
        "",
        *_table(
            ("artifact", "zipped", "unzipped", "files", ".pyc files"),
            [
                (
                    a.name,
                    _size(a.zipped_bytes),
                    _size(a.unzipped_bytes),
                    a.files,
                    a.pyc_files,
                )
                for a in artifacts
            ],
        ),
    ]


def _size(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
