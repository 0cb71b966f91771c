"""Cold start of each built function: import of its handler module, in fresh interpreters.

What is timed: ``importlib.import_module("app")`` (every import and all module-level
code of the handler) inside a fresh ``python3.13`` process, in CPU time
(``time.process_time``: what the budget uses, since other processes on a shared machine
inflate wall time but not CPU time) and in wall time (``time.perf_counter``);
interpreter start-up is not included. Each process sees what Lambda's sees:
``sys.path`` is the function's code (``.aws-sam/build/<Function>``, the cwd), then the
built layer (``/opt/python``), then the runtime's own boto3 (precompiled, as in
Lambda's runtime), then the standard library; ``-I -S``: no user site, no venv. The
environment is the function's variables from ``template.yaml`` with dummy values.

Two variants of the same build: ``.pyc`` (the layer as ``sam build`` precompiled it,
the function code compiled too) and ``source`` (every ``__pycache__`` removed, run with
``-B`` so nothing is written: what a layer without ``.pyc`` costs on read-only
``/opt``). The baseline is a handler written the naive way (``NAIVE_HANDLER``) on the
same layer. Runs are interleaved across functions and variants, after one discarded
warm-up round; figures are medians.

The layer is built for arm64; on another machine its compiled extension modules are
replaced by the same versions' host builds from this virtualenv (pure Python is the
same on both), and the report says which.
"""

from __future__ import annotations

import compileall
import json
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.cloudformation import LocalStack, lambda_functions, load_template, sam_translate

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".aws-sam" / "build"
NAIVE = "NaiveBaseline"
VARIANTS = ("pyc", "source")
# What Lambda's Python runtime provides next to the layer.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "dateutil", "six.py")

NAIVE_HANDLER = '''\
"""The baseline: a handler written the naive way, everything built at import."""
import json
import os

import boto3
import stripe
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

logger = Logger()
metrics = Metrics(namespace="BillingPortal")
app = APIGatewayHttpResolver()
table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
secrets = boto3.client("secretsmanager")
stripe.api_key = os.environ.get("STRIPE_API_KEY", "sk_test_naive")


@app.get("/billing")
def billing():
    item = table.get_item(Key={"pk": "USER#x", "sk": "LINK"}).get("Item") or {}
    customer = stripe.Customer.retrieve(item["customer_id"])
    return json.loads(json.dumps(customer))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    return app.resolve(event, context)
'''

# Timed inside the child; sys.argv: function dir, layer dir, runtime dir.
_CHILD = """
import importlib, json, os, sys, time
task, layer, runtime = sys.argv[1:4]
sys.path[0:0] = [task, layer, runtime]
os.chdir(task)
wall, cpu = time.perf_counter(), time.process_time()
importlib.import_module("app")
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({
    "wall": wall * 1000,
    "cpu": cpu * 1000,
    "stripe": "stripe" in sys.modules,
    "pydantic": "pydantic" in sys.modules,
}))
"""

_DUMMY_ENV = {
    "TABLE_NAME": "billing-bench",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "CUSTOMER_USER_METADATA_KEY": "user_id",
    "STRIPE_SECRET_NAME": "billing-portal/stripe-secret-key",
    "WEBHOOK_SECRET_NAME": "arn:aws:secretsmanager:us-east-1:123456789012:secret:whsec-AbCdEf",
    "ALLOWED_ORIGINS": "https://app.example.com",
    "ALLOWED_RETURN_URLS": "https://app.example.com",
    "DEFAULT_RETURN_URL": "https://app.example.com/account",
    "PORTAL_CONFIGURATION_ID": "bpc_bench",
    "PORTAL_FLOWS": "payment_method_update,subscription_cancel,subscription_update",
    "STRIPE_LIVEMODE": "false",
    "CANCEL_RETENTION_COUPON": "",
    "PORTAL_SESSION_RECOVERY": "false",
    "CATALOG_FANOUT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-fanout",
}


@dataclass(frozen=True)
class ColdStart:
    function: str
    # Medians by variant: CPU time of the import (what the budget uses: other processes
    # on the machine inflate wall time, not CPU time), and wall time.
    cpu_ms: dict[str, float]
    wall_ms: dict[str, float]
    imports_stripe: bool
    imports_pydantic: bool = False


@dataclass(frozen=True)
class ColdStarts:
    functions: tuple[ColdStart, ...]  # the template's functions, then the naive baseline
    runs: int
    interpreter: str
    replaced_extensions: tuple[str, ...]  # arm64 modules run as their host builds

    def of(self, function: str) -> ColdStart:
        return next(f for f in self.functions if f.function == function)


def measure_cold_starts(
    runs: int = 15,
    functions: Iterable[str] | None = None,
    *,
    naive: bool = True,
    variants: Sequence[str] = VARIANTS,
) -> ColdStarts:
    """Median import times of ``functions`` (default: all) and the naive baseline."""
    environments = function_environments()
    names = list(functions or environments)
    environments[NAIVE] = {**environments[names[0]], "AWS_LAMBDA_FUNCTION_NAME": NAIVE}
    interpreter = python313()
    samples: dict[tuple[str, str, str], list[float]] = {}
    stripe: dict[str, bool] = {}
    pydantic: dict[str, bool] = {}
    with workspace(names, naive=naive, variants=variants) as built:
        for round_ in range(runs + 1):  # round 0 warms the file cache
            for variant in variants:
                for name, task in built.tasks[variant].items():
                    answer = _run(
                        interpreter,
                        task,
                        built.layers[variant],
                        built.runtime,
                        variant,
                        env=environments[name],
                    )
                    stripe[name] = answer["stripe"]
                    pydantic[name] = answer["pydantic"]
                    for clock in ("cpu", "wall") if round_ else ():
                        samples.setdefault((name, variant, clock), []).append(answer[clock])
        replaced = built.replaced

    def medians(name: str, clock: str) -> dict[str, float]:
        return {v: statistics.median(samples[name, v, clock]) for v in variants}

    results = tuple(
        ColdStart(name, medians(name, "cpu"), medians(name, "wall"), stripe[name], pydantic[name])
        for name in [*names, *([NAIVE] if naive else [])]
    )
    return ColdStarts(results, runs, interpreter, replaced)


@dataclass(frozen=True)
class Workspace:
    """The build as Lambda lays it out, per variant: task dirs, the layer, the runtime."""

    runtime: Path
    layers: dict[str, Path]  # by variant
    tasks: dict[str, dict[str, Path]]  # by variant, then function
    replaced: tuple[str, ...]  # arm64 extension modules swapped for host builds


@contextmanager
def workspace(
    names: Iterable[str], *, naive: bool, variants: Sequence[str] = VARIANTS
) -> Iterator[Workspace]:
    """Copies of the built functions and layer in a temporary directory, for one run."""
    if not (BUILD / "template.yaml").exists():
        raise RuntimeError("no .aws-sam/build: run `make build` first")
    names = list(names)
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as work:
        base = Path(work)
        runtime = _runtime(base / "runtime")
        layers, replaced = _layers(base, variants)
        tasks = {v: _tasks(base / v / "task", names, naive, compiled=v == "pyc") for v in variants}
        yield Workspace(runtime, layers, tasks, replaced)


def function_environments() -> dict[str, dict[str, str]]:
    """Each function's environment at cold start, from ``template.yaml``: parameters at
    their defaults, and dummy values for what only a deployment knows (resources' ids)."""
    template = sam_translate(load_template(ROOT / "template.yaml"))  # Globals merged by SAM
    unset = {
        name: "bench"
        for name, spec in template.get("Parameters", {}).items()
        if spec.get("Default") is None
    }
    stack = LocalStack(template, "bench", parameters=unset)
    environments = {}
    for name, function in lambda_functions(template).items():
        variables = function.get("Environment", {}).get("Variables", {})
        environments[name] = {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            **{key: _value(stack, key, value) for key, value in variables.items()},
        }
    return environments


def _value(stack: LocalStack, key: str, value: object) -> str:
    if key in _DUMMY_ENV:
        return _DUMMY_ENV[key]
    try:
        resolved = stack.resolve(value)
    except (KeyError, NotImplementedError):  # a resource's id or attribute
        return "bench"
    return ",".join(map(str, resolved)) if isinstance(resolved, list) else str(resolved)


def python313() -> str:
    """The interpreter behind this virtualenv, which must be 3.13 (Lambda's)."""
    interpreter = getattr(sys, "_base_executable", sys.executable)
    if sys.version_info[:2] != (3, 13):
        raise RuntimeError(f"cold starts need Python 3.13, this is {sys.version}")
    return str(interpreter)


def _run(
    interpreter: str, task: Path, layer: Path, runtime: Path, variant: str, *, env: dict[str, str]
) -> dict[str, Any]:
    flags = ["-I", "-S"] + (["-B"] if variant == "source" else [])
    return run_child(
        [interpreter, *flags, "-c", _CHILD, str(task), str(layer), str(runtime)],
        cwd=task,
        env=env,
        failure=f"importing {task.name} ({variant}) failed",
    )


def run_child(
    command: Sequence[str], *, cwd: Path, env: dict[str, str], failure: str
) -> dict[str, Any]:
    """Run a timing script in a fresh interpreter; the JSON of its last line of output."""
    done = subprocess.run(  # noqa: S603 - our interpreter and our script
        command, env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{failure}:\n{done.stderr}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _compile(path: Path) -> None:
    compileall.compile_dir(
        path,
        quiet=1,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )


def _copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def _layers(base: Path, variants: Sequence[str]) -> tuple[dict[str, Path], tuple[str, ...]]:
    """The built layer per variant: as built (``pyc``), without bytecode (``source``)."""
    built = base / "built" / "python"
    shutil.copytree(BUILD / "BillingLayer" / "python", built)
    if not any(built.rglob("*.pyc")):
        _compile(built)  # built without python3.13: compile here instead
    replaced = _host_extensions(built)
    layers = {}
    for variant in variants:
        layers[variant] = base / variant / "opt" / "python"
        layers[variant].parent.mkdir(parents=True)
        if variant == "pyc":
            built.rename(layers[variant])
        else:
            _copy_tree(layers.get("pyc", built), layers[variant])
    return layers, replaced


def _tasks(base: Path, names: Iterable[str], naive: bool, *, compiled: bool) -> dict[str, Path]:
    """Each function's built code (the cwd on Lambda), and the naive baseline's."""
    tasks = {name: _copy_tree(BUILD / name, base / name) for name in names}
    if naive:
        tasks[NAIVE] = base / NAIVE
        tasks[NAIVE].mkdir(parents=True)
        (tasks[NAIVE] / "app.py").write_text(NAIVE_HANDLER)
    if compiled:
        for task in tasks.values():
            _compile(task)
    return tasks


def _host_extensions(layer: Path) -> tuple[str, ...]:
    """Swap extension modules built for another platform for this virtualenv's builds."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    site = Path(sysconfig.get_paths()["purelib"])
    replaced = []
    for module in sorted(layer.rglob("*.so")):
        if module.name.endswith(suffix):
            continue
        relative = module.relative_to(layer).parent / (module.name.split(".")[0] + suffix)
        host = site / relative
        if not host.exists():
            raise RuntimeError(f"{module.relative_to(layer)} has no build for this machine")
        module.unlink()
        shutil.copy2(host, layer / relative)
        replaced.append(str(relative.parent / module.name.split(".")[0]).replace(os.sep, "."))
    return tuple(replaced)


def _runtime(target: Path) -> Path:
    """boto3 and its dependencies, precompiled, as Lambda's runtime has them."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir(parents=True)
    for name in RUNTIME_PACKAGES:
        source = site / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "data") if name == "botocore" else None
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    (target / "botocore" / "data").symlink_to(site / "botocore" / "data")
    _compile(target)
    return target
