"""Benchmark the ``${{ }}`` expression engine.

Measures, for a few typical ``if:`` conditions, how many evaluations per second a
pre-parsed expression achieves against a realistic context, and how many parses
per second the parser achieves. Each figure is the median of 5 runs.

    python bench/bench_expressions.py [--json] [--runs N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from shipyard.workflow.expressions import (
    EvalContext,
    is_truthy,
    parse,
    parse_condition,
    parse_template,
)

CONDITIONS: dict[str, str] = {
    "deploy-gate": (
        "github.event_name == 'push' && (startsWith(github.ref, 'refs/heads/release/') "
        "|| contains(github.event.head_commit.message, '[deploy]')) && matrix.os != 'windows'"
    ),
    "simple-ref": "github.ref == 'refs/heads/main'",
    "labels-filter": (
        "contains(github.event.pull_request.labels.*.name, 'safe to test') "
        "&& !github.event.pull_request.draft"
    ),
    "status+outputs": "always() && (needs.build.result == 'success' || steps.tests.outputs.flaky == 'true')",
}

TEMPLATE = "app-${{ matrix.os }}-${{ github.sha }}-${{ format('{0}.{1}', matrix.node, github.run_number) }}"


def realistic_context() -> EvalContext:
    labels = [
        {"id": 1000 + i, "name": name, "color": "ededed"}
        for i, name in enumerate(["bug", "ci", "safe to test", "dependencies", "needs review"])
    ]
    github: dict[str, Any] = {
        "event_name": "push",
        "ref": "refs/heads/release/2.4",
        "ref_name": "release/2.4",
        "sha": "0f3c1a9e2b7d4c5f8a6e1d2c3b4a5f6e7d8c9b0a",
        "repository": "acme/shipyard",
        "actor": "octocat",
        "run_id": 7654321098,
        "run_number": 1234,
        "workflow": "CI",
        "event": {
            "ref": "refs/heads/release/2.4",
            "before": "1" * 40,
            "after": "0f3c1a9e2b7d4c5f8a6e1d2c3b4a5f6e7d8c9b0a",
            "head_commit": {
                "id": "0f3c1a9e2b7d4c5f8a6e1d2c3b4a5f6e7d8c9b0a",
                "message": "Bump the parser to v2\n\nCloses #421. Ready to ship [DEPLOY].",
                "author": {"name": "Mona", "email": "mona@example.com"},
            },
            "pull_request": {"number": 421, "labels": labels, "draft": False},
            "repository": {"name": "shipyard", "full_name": "acme/shipyard", "private": True},
        },
    }
    return EvalContext(
        contexts={
            "github": github,
            "matrix": {"os": "ubuntu-latest", "node": 20},
            "env": {"CI": "true", "DEPLOY_ENV": "staging"},
            "needs": {"build": {"result": "success", "outputs": {"version": "2.4.1"}}},
            "steps": {"tests": {"outcome": "success", "outputs": {"flaky": "false"}}},
            "runner": {"os": "Linux", "arch": "X64"},
        }
    )


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn``, timed in batches for about ``seconds``."""
    batch = 1
    while True:  # grow the batch until it takes a measurable time
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > 0.02:
            break
        batch *= 2
    total = 0
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        total += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return total / elapsed


def _median_rate(fn: Callable[[], object], runs: int, seconds: float) -> float:
    return statistics.median(_rate(fn, seconds) for _ in range(runs))


def run(runs: int, seconds: float) -> list[dict[str, Any]]:
    ctx = realistic_context()
    results: list[dict[str, Any]] = []
    for name, source in CONDITIONS.items():
        expression = parse(source)
        condition = parse_condition(source)
        results.append(
            {
                "name": f"eval {name}",
                "source": source,
                "value": expression.evaluate(ctx),
                "per_second": _median_rate(lambda e=expression: e.evaluate(ctx), runs, seconds),
            }
        )
        results.append(
            {
                "name": f"if: {name}",
                "source": source,
                "value": is_truthy(condition.evaluate(ctx)),
                "per_second": _median_rate(lambda c=condition: c.evaluate(ctx), runs, seconds),
            }
        )
    template = parse_template(TEMPLATE)
    results.append(
        {
            "name": "template (3 parts)",
            "source": TEMPLATE,
            "value": template.evaluate(ctx),
            "per_second": _median_rate(lambda: template.evaluate(ctx), runs, seconds),
        }
    )
    source = CONDITIONS["deploy-gate"]
    results.append(
        {
            "name": "parse deploy-gate",
            "source": source,
            "value": None,
            "per_second": _median_rate(lambda: parse(source), runs, seconds),
        }
    )
    results.append(
        {
            "name": "parse template",
            "source": TEMPLATE,
            "value": None,
            "per_second": _median_rate(lambda: parse_template(TEMPLATE), runs, seconds),
        }
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median reported)")
    parser.add_argument("--seconds", type=float, default=0.3, help="duration of one run")
    args = parser.parse_args(argv)
    results = run(args.runs, args.seconds)
    if args.json:
        print(json.dumps({"runs": args.runs, "results": results}, indent=2, default=str))
        return 0
    width = max(len(r["name"]) for r in results)
    print(f"{'benchmark':<{width}}  {'per second':>12}  {'µs each':>8}  value")
    for r in results:
        rate = r["per_second"]
        value = "" if r["value"] is None else repr(r["value"])
        print(f"{r['name']:<{width}}  {rate:>12,.0f}  {1e6 / rate:>8.2f}  {value[:40]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
