"""RunPlan schedules job instances by needs, if, matrix, fail-fast and max-parallel."""

from __future__ import annotations

import textwrap

from shipyard.workflow._parser import load_workflow
from shipyard.workflow._plan import RunPlan
from shipyard.workflow._runtime import Conclusion, JobResult

GITHUB = {"event_name": "push", "ref": "refs/heads/main", "sha": "0" * 40}


def plan(yaml_text: str, **kw) -> RunPlan:
    wf = load_workflow("p.yml", textwrap.dedent(yaml_text))
    return RunPlan(wf, {"github": GITHUB, "inputs": {}, "vars": {}, "secrets": {}}, **kw)


def result(req, conclusion=Conclusion.SUCCESS, **outputs) -> JobResult:
    return JobResult(key=req.key, job_id=req.job.id, name=req.name, conclusion=conclusion,
                     outputs=dict(outputs))


def keys(reqs) -> list[str]:
    return [r.key for r in reqs]


CHAIN = """\
on: push
jobs:
  a:
    runs-on: x
    outputs:
      v: ${{ steps.s.outputs.v }}
    steps: [{id: s, run: 'true'}]
  b:
    needs: a
    runs-on: x
    steps: [{run: 'true'}]
  c:
    needs: [a, b]
    runs-on: x
    if: needs.a.outputs.v == 'go'
    steps: [{run: 'true'}]
"""


def test_jobs_start_only_when_their_needs_are_done():
    p = plan(CHAIN)
    first = p.ready()
    assert keys(first) == ["a"]
    assert p.ready() == []
    p.finish("a", result(first[0], v="go"))
    second = p.ready()
    assert keys(second) == ["b"]
    p.finish("b", result(second[0]))
    third = p.ready()
    assert keys(third) == ["c"]
    assert third[0].contexts["needs"]["a"] == {"result": "success", "outputs": {"v": "go"}}
    p.finish("c", result(third[0]))
    assert p.done and p.conclusion() is Conclusion.SUCCESS


def test_job_if_false_skips_the_job():
    p = plan(CHAIN)
    a = p.ready()[0]
    p.finish("a", result(a, v="stop"))
    b = p.ready()[0]
    p.finish("b", result(b))
    assert p.ready() == []
    assert p.done
    assert p.job_results()["c"].conclusion is Conclusion.SKIPPED
    assert p.conclusion() is Conclusion.SUCCESS


def test_failed_need_skips_dependents_unless_always():
    p = plan("""\
        on: push
        jobs:
          a: {runs-on: x, steps: [{run: 'false'}]}
          b: {needs: a, runs-on: x, steps: [{run: 'true'}]}
          c: {needs: b, runs-on: x, if: always(), steps: [{run: 'true'}]}
          d: {needs: a, runs-on: x, if: failure(), steps: [{run: 'true'}]}
        """)
    a = p.ready()[0]
    p.finish("a", result(a, Conclusion.FAILURE))
    later = p.ready()
    assert sorted(keys(later)) == ["c", "d"]
    assert later[0].contexts["needs"]["b"]["result"] == "skipped"
    assert p.job_results()["b"].conclusion is Conclusion.SKIPPED
    for r in later:
        p.finish(r.key, result(r))
    assert p.conclusion() is Conclusion.FAILURE


def test_matrix_instances_are_named_with_their_values():
    p = plan("""\
        on: push
        jobs:
          test:
            runs-on: x
            strategy: {matrix: {py: ['3.11', '3.12'], os: [linux]}}
            steps: [{run: 'true'}]
        """)
    reqs = p.ready()
    assert keys(reqs) == ["test (3.11, linux)", "test (3.12, linux)"]
    assert reqs[1].contexts["matrix"] == {"py": "3.12", "os": "linux"}
    assert reqs[1].contexts["strategy"]["job-index"] == 1
    assert reqs[1].contexts["strategy"]["job-total"] == 2


def test_name_using_matrix_is_not_suffixed():
    p = plan("""\
        on: push
        jobs:
          test:
            name: Python ${{ matrix.py }}
            runs-on: x
            strategy: {matrix: {py: ['3.11']}}
            steps: [{run: 'true'}]
        """)
    assert keys(p.ready()) == ["Python 3.11"]


def test_max_parallel_limits_running_instances():
    p = plan("""\
        on: push
        jobs:
          t:
            runs-on: x
            strategy: {max-parallel: 2, matrix: {n: [1, 2, 3, 4, 5]}}
            steps: [{run: 'true'}]
        """)
    first = p.ready()
    assert len(first) == 2
    assert p.ready() == []
    p.finish(first[0].key, result(first[0]))
    assert len(p.ready()) == 1


def test_fail_fast_cancels_the_other_legs():
    p = plan("""\
        on: push
        jobs:
          t:
            runs-on: x
            strategy: {max-parallel: 2, matrix: {n: [1, 2, 3]}}
            steps: [{run: 'true'}]
        """)
    a, b = p.ready()
    to_cancel = p.finish(a.key, result(a, Conclusion.FAILURE))
    assert to_cancel == [b.key]
    p.finish(b.key, result(b, Conclusion.CANCELLED))
    assert p.ready() == []
    assert p.done
    assert [r.conclusion for r in p.instance_results()] == [
        Conclusion.FAILURE, Conclusion.CANCELLED, Conclusion.CANCELLED,
    ]


def test_fail_fast_false_lets_the_other_legs_run():
    p = plan("""\
        on: push
        jobs:
          t:
            runs-on: x
            strategy: {fail-fast: false, matrix: {n: [1, 2]}}
            steps: [{run: 'true'}]
        """)
    a, _b = p.ready()
    assert p.finish(a.key, result(a, Conclusion.FAILURE)) == []


def test_continue_on_error_leg_does_not_fail_the_run_or_dependents():
    p = plan("""\
        on: push
        jobs:
          t:
            runs-on: x
            continue-on-error: ${{ matrix.experimental }}
            strategy: {matrix: {experimental: [false, true]}}
            steps: [{run: 'true'}]
          after: {needs: t, runs-on: x, steps: [{run: 'true'}]}
        """)
    stable, experimental = p.ready()
    assert p.finish(experimental.key, result(experimental, Conclusion.FAILURE)) == []
    p.finish(stable.key, result(stable))
    after = p.ready()
    assert keys(after) == ["after"]
    assert after[0].contexts["needs"]["t"]["result"] == "success"


def test_matrix_from_needs_outputs_expands_when_the_need_is_done():
    p = plan("""\
        on: push
        jobs:
          gen:
            runs-on: x
            outputs: {m: "${{ steps.s.outputs.m }}"}
            steps: [{id: s, run: 'true'}]
          use:
            needs: gen
            runs-on: x
            strategy:
              matrix: ${{ fromJSON(needs.gen.outputs.m) }}
            steps: [{run: 'true'}]
        """)
    gen = p.ready()[0]
    p.finish("gen", result(gen, m='{"v": [1, 2, 3]}'))
    assert keys(p.ready()) == ["use (1)", "use (2)", "use (3)"]


def test_only_jobs_runs_the_job_and_what_it_needs():
    p = plan(CHAIN, only_jobs=["b"])
    assert keys(p.ready()) == ["a"]
    assert set(p._nodes) == {"a", "b"}


def test_matrix_filter_keeps_matching_legs():
    p = plan("""\
        on: push
        jobs:
          t:
            runs-on: x
            strategy: {matrix: {py: ['3.11', '3.12'], os: [a, b]}}
            steps: [{run: 'true'}]
        """, matrix_filter={"py": "3.12"})
    assert keys(p.ready()) == ["t (3.12, a)", "t (3.12, b)"]


def test_cancel_ends_queued_jobs_and_returns_running_ones():
    p = plan(CHAIN)
    a = p.ready()[0]
    assert p.cancel() == ["a"]
    p.finish("a", result(a, Conclusion.CANCELLED))
    assert p.done and p.conclusion() is Conclusion.CANCELLED


def test_workflow_env_is_evaluated_once_for_every_job():
    p = plan("""\
        on: push
        env:
          REF: ${{ github.ref }}
        jobs:
          a: {runs-on: x, steps: [{run: 'true'}]}
        """)
    assert p.ready()[0].contexts["env"] == {"REF": "refs/heads/main"}


def test_runs_on_labels_are_evaluated():
    p = plan("""\
        on: push
        jobs:
          a:
            runs-on: [self-hosted, "${{ matrix.arch }}"]
            strategy: {matrix: {arch: [arm64]}}
            steps: [{run: 'true'}]
        """)
    assert p.ready()[0].labels == ("self-hosted", "arm64")


def test_a_failed_job_that_continues_on_error_does_not_fail_the_run():
    p = plan("""\
        on: push
        jobs:
          t:
            runs-on: x
            continue-on-error: true
            steps: [{run: 'false'}]
        """)
    [t] = p.ready()
    p.finish(t.key, result(t, Conclusion.FAILURE))
    assert p.job_results()["t"].conclusion is Conclusion.FAILURE
    assert p.conclusion() is Conclusion.SUCCESS


def test_a_job_calling_a_reusable_workflow_runs_the_called_jobs_not_itself():
    """A ``uses:`` job is never handed to a runner; its called workflow's jobs are."""
    called = load_workflow(".github/workflows/c.yml", "on: workflow_call\njobs:\n"
                           "  inner: {runs-on: x, steps: [{run: 'true'}]}\n")
    p = plan("""\
        on: push
        jobs:
          call: {uses: ./.github/workflows/c.yml}
        """, load_workflow=lambda uses: called)
    [req] = p.ready()
    assert (req.key, req.job.id, len(req.job.steps)) == ("call / inner", "inner", 1)
