"""How fast Shipyard validates workflow files.

Writes N realistic, varied workflow files (CI with matrices, containers and services,
dispatch inputs, schedules, reusable-workflow calls, anchors) into a temporary
repository, then times ``validate_paths`` over them (median of 5 runs) and, when the
``shipyard`` command is on PATH, the full ``shipyard validate DIR`` command.

    python bench/bench_validate.py [--files 500] [--json]

Target: at most 5 ms per file.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from shipyard.workflow._validate import validate_paths

TARGET_MS = 5.0
RUNS = 5

_TRIGGERS = [
    "on:\n  push:\n    branches: [main, 'release/**']\n    paths-ignore: ['docs/**', '**.md']\n"
    "  pull_request:\n    branches: [main]\n",
    "on: [push, pull_request]\n",
    "on:\n  push:\n    tags: ['v[0-9]+.[0-9]+.[0-9]+']\n  workflow_dispatch:\n    inputs:\n"
    "      environment:\n        type: choice\n        options: [staging, production]\n"
    "        default: staging\n      dry-run:\n        type: boolean\n        default: true\n",
    "on:\n  schedule:\n    - cron: '30 2 * * *'\n    - cron: '0 */6 * * MON-FRI'\n"
    "  workflow_dispatch:\n",
    "on:\n  pull_request:\n    types: [opened, synchronize, labeled]\n"
    "    paths: ['src/**', 'tests/**', '!**.md']\n",
]

_SETUP_STEPS = [
    "      - uses: actions/checkout@v4\n        with:\n          fetch-depth: 0\n",
    "      - uses: actions/setup-python@v5\n        with:\n"
    "          python-version: ${{ matrix.python || '3.12' }}\n          cache: pip\n",
    "      - uses: actions/cache@v4\n        with:\n          path: ~/.cache/pip\n"
    "          key: pip-${{ runner.os }}-${{ hashFiles('**/pyproject.toml') }}\n"
    "          restore-keys: |\n            pip-${{ runner.os }}-\n",
]

_WORK_STEPS = [
    "      - name: Install\n        run: |\n          python -m pip install --upgrade pip\n"
    '          pip install -e ".[test]"\n',
    "      - name: Test\n        id: test{n}\n        run: pytest -q --junitxml=report-{n}.xml\n"
    "        env:\n          CI: true\n          SHARD: ${{{{ matrix.shard || 0 }}}}\n",
    "      - run: ruff check --output-format=github .\n",
    "      - name: Build {n}\n        run: make build-{n} VERSION=${{{{ github.sha }}}}\n"
    "        working-directory: services/svc-{n}\n        timeout-minutes: 20\n",
    "      - if: ${{{{ failure() && steps.test{n}.outcome == 'failure' }}}}\n"
    "        run: echo 'tests failed' >&2\n",
    "      - uses: actions/upload-artifact@v4\n        if: always()\n        with:\n"
    "          name: report-{n}-${{{{ strategy.job-index }}}}\n          path: report-*.xml\n",
    "      - name: Summary\n        shell: python\n        run: |\n          import os\n"
    "          print('job {n}', os.environ.get('GITHUB_REF'))\n",
]

_MATRIX = (
    "    strategy:\n      fail-fast: false\n      matrix:\n"
    "        os: [ubuntu-latest, macos-latest]\n        python: ['3.11', '3.12', '3.13']\n"
    "        shard: [1, 2]\n        exclude:\n          - os: macos-latest\n            shard: 2\n"
    "        include:\n          - os: ubuntu-latest\n            python: '3.14'\n"
    "            experimental: true\n"
)

_CONTAINER = (
    "    container:\n      image: python:3.12-slim\n      env:\n        PGHOST: postgres\n"
    "    services:\n      postgres:\n        image: postgres:16\n        env:\n"
    "          POSTGRES_PASSWORD: ${{ secrets.DB_PASSWORD }}\n        ports: ['5432:5432']\n"
    "        options: >-\n          --health-cmd pg_isready\n          --health-interval 10s\n"
)


def make_workflow(rng: random.Random, index: int) -> str:
    """One plausible workflow; the shape varies with the seed."""
    parts = [f"name: Pipeline {index}\n", rng.choice(_TRIGGERS)]
    parts.append("env:\n  FORCE_COLOR: 1\n  APP_ENV: ci\n")
    parts.append("concurrency:\n  group: ci-${{ github.ref }}\n  cancel-in-progress: true\n")
    parts.append("jobs:\n")
    job_ids: list[str] = []
    for j in range(rng.randint(1, 5)):
        job_id = f"job-{j}"
        parts.append(f"  {job_id}:\n")
        parts.append(f"    name: Job {j} ${{{{ matrix.os || 'linux' }}}}\n")
        if job_ids:
            needs = rng.sample(job_ids, k=min(len(job_ids), rng.randint(1, 2)))
            parts.append(f"    needs: [{', '.join(needs)}]\n")
            parts.append(f"    if: ${{{{ needs.{needs[0]}.result == 'success' }}}}\n")
        use_matrix = rng.random() < 0.4
        parts.append(
            "    runs-on: ${{ matrix.os }}\n" if use_matrix else "    runs-on: ubuntu-latest\n"
        )
        parts.append("    timeout-minutes: 30\n")
        if use_matrix:
            parts.append(_MATRIX)
        elif rng.random() < 0.2:
            parts.append(_CONTAINER)
        parts.append("    outputs:\n      result: ${{ steps.test0.outputs.result }}\n")
        parts.append("    steps:\n")
        parts.extend(rng.sample(_SETUP_STEPS, k=rng.randint(1, 3)))
        for n in range(rng.randint(2, 8)):
            parts.append(rng.choice(_WORK_STEPS).format(n=n))
        job_ids.append(job_id)
    return "".join(parts)


def write_repo(root: Path, count: int) -> Path:
    folder = root / ".github" / "workflows"
    folder.mkdir(parents=True)
    rng = random.Random(1234)
    for i in range(count):
        (folder / f"wf-{i:04d}.yml").write_text(make_workflow(rng, i), encoding="utf-8")
    return root


def time_library(root: Path) -> tuple[float, float, int]:
    """(first run, median of the next runs, errors); the first run pays imports and caches."""
    started = time.perf_counter()
    errors = validate_paths([root])
    first = time.perf_counter() - started
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        validate_paths([root])
        times.append(time.perf_counter() - started)
    return first, statistics.median(times), len(errors)


def time_cli(root: Path) -> float | None:
    exe = shutil.which("shipyard") or shutil.which("shipyard", path=str(Path(sys.executable).parent))
    if exe is None:
        return None
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([exe, "validate", str(root)], capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as tmp:
        root = write_repo(Path(tmp), args.files)
        lines = sum(p.read_text().count("\n") for p in (root / ".github" / "workflows").iterdir())
        first, total, errors = time_library(root)
        cli = time_cli(root)
    per_file_ms = total * 1000 / args.files
    result = {
        "files": args.files,
        "lines_per_file": round(lines / args.files, 1),
        "errors": errors,
        "library_total_ms": round(total * 1000, 1),
        "library_ms_per_file": round(per_file_ms, 3),
        "library_first_run_ms_per_file": round(first * 1000 / args.files, 3),
        "cli_total_ms": None if cli is None else round(cli * 1000, 1),
        "cli_ms_per_file": None if cli is None else round(cli * 1000 / args.files, 3),
        "target_ms_per_file": TARGET_MS,
        "ok": per_file_ms <= TARGET_MS and errors == 0,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.files} files, {result['lines_per_file']} lines each on average")
        print(
            f"validate_paths: {result['library_total_ms']} ms total,"
            f" {result['library_ms_per_file']} ms per file (target <= {TARGET_MS} ms);"
            f" first run {result['library_first_run_ms_per_file']} ms per file"
        )
        if errors:
            print(f"unexpected: {errors} validation errors in the generated files")
        if cli is None:
            print("shipyard validate: skipped (no 'shipyard' command on PATH)")
        else:
            print(
                f"shipyard validate DIR: {result['cli_total_ms']} ms total,"
                f" {result['cli_ms_per_file']} ms per file"
            )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
