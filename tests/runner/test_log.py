"""JobStream: the log byte stream, its uploads, step states and the completion."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from shipyard.runner import JobStream, RunnerApi
from shipyard.workflow._runtime import Conclusion, JobResult, StepResult
from shipyard.workflow.executors import LocalExecutor
from shipyard.workflow.runner import JobRunner
from tests.helpers.jobrun import request, workflow
from tests.runner.jobserver import JobServer

_ids = itertools.count(1)


def run_job(api: RunnerApi, tmp_path: Path, text: str, **kwargs: Any) -> tuple[int, JobStream, JobResult]:
    job_id = next(_ids)
    stream = JobStream(api, job_id, "job-token", **kwargs).start()
    runner = JobRunner(LocalExecutor(), stream, work_root=tmp_path / "work")
    result = runner.run(request(workflow(text)))
    assert stream.wait(60)
    return job_id, stream, result


def one_step(script: str) -> str:
    lines = "\n".join(f"          {line}" for line in script.splitlines())
    return f"""
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: Work
        run: |
{lines}
"""


def log_text(server: JobServer, job_id: int) -> str:
    return server.jobs[job_id].log.decode()


class TestFormat:
    def test_each_step_is_a_group_headed_by_its_name(self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path) -> None:
        """Each step's lines sit between ##[group]Run <name> and ##[endgroup]."""
        server, api = jobserver
        job_id, _, result = run_job(api, tmp_path, """
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: Greet
        run: echo hello; echo world
      - run: echo second
""")
        assert result.conclusion is Conclusion.SUCCESS
        assert log_text(server, job_id) == (
            "##[group]Run Greet\nhello\nworld\n##[endgroup]\n"
            "##[group]Run echo second\nsecond\n##[endgroup]\n"
        )

    def test_a_failed_step_ends_with_its_error_and_the_job_error_is_not_repeated(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        server, api = jobserver
        job_id, _, result = run_job(api, tmp_path, one_step("echo before\nexit 3"))
        assert result.conclusion is Conclusion.FAILURE
        assert log_text(server, job_id) == (
            "##[group]Run Work\nbefore\n##[error]Process completed with exit code 3.\n##[endgroup]\n"
        )

    def test_a_job_error_outside_any_step_is_the_last_line(
        self, jobserver: tuple[JobServer, RunnerApi]
    ) -> None:
        server, api = jobserver
        stream = JobStream(api, 9001, "t").start()
        stream.write("##[group]Set up job", "##[endgroup]")
        stream.fail("k", "name", "the workflow has no job 'x'")
        assert stream.wait(10)
        assert log_text(server, 9001) == (
            "##[group]Set up job\n##[endgroup]\n##[error]the workflow has no job 'x'\n"
        )
        done = server.jobs[9001].completions[0]
        assert done["conclusion"] == "failure"
        assert done["error"] == "the workflow has no job 'x'"
        assert done["log_size"] == len(server.jobs[9001].log)

    def test_secrets_are_masked_in_the_uploaded_log(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        server, api = jobserver
        job_id = next(_ids)
        stream = JobStream(api, job_id, "t").start()
        wf = workflow(one_step("echo token=${{ secrets.TOKEN }}"))
        JobRunner(LocalExecutor(), stream, work_root=tmp_path).run(
            request(wf, secrets={"TOKEN": "hunter2-secret"})
        )
        assert stream.wait(30)
        text = log_text(server, job_id)
        assert "token=***" in text and "hunter2" not in text


class TestRequests:
    def test_a_trivial_job_costs_one_log_upload_and_one_completion(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        server, api = jobserver
        job_id, stream, _ = run_job(api, tmp_path, one_step("echo hi"))
        assert server.count("log", job_id) == 1
        assert server.count("steps", job_id) == 0
        assert server.count("complete", job_id) == 1
        steps = server.jobs[job_id].completions[0]["steps"]
        assert [(s["number"], s["name"], s["status"], s["conclusion"]) for s in steps] == [
            (1, "Work", "completed", "success")
        ]
        assert steps[0]["finished_at"] >= steps[0]["started_at"] > 0
        assert stream.stats.completed

    def test_a_quiet_job_sends_nothing_while_nothing_is_new(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        """A step sleeping 1.5 s: its header and state go once, then nothing until it ends."""
        server, api = jobserver
        job_id, _, _ = run_job(api, tmp_path, one_step("sleep 1.5"))
        assert server.count("log", job_id) == 2  # the header at the first flush, then the end
        assert server.count("steps", job_id) == 1  # in_progress; completed rides in complete
        assert server.count("complete", job_id) == 1

    def test_lines_appear_on_the_server_while_the_step_runs(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        server, api = jobserver
        job_id = next(_ids)
        stream = JobStream(api, job_id, "t").start()
        runner = JobRunner(LocalExecutor(), stream, work_root=tmp_path)
        thread = threading.Thread(
            target=runner.run, args=(request(workflow(one_step("echo early\nsleep 3\necho late"))),)
        )
        started = time.monotonic()
        thread.start()
        while b"early" not in server.jobs[job_id].log or 1 not in server.jobs[job_id].steps:
            assert time.monotonic() - started < 2.0, "the first line did not arrive in time"
            time.sleep(0.02)
        assert b"late" not in server.jobs[job_id].log
        assert server.jobs[job_id].steps[1]["status"] == "in_progress"
        thread.join(20)
        assert stream.wait(10)
        assert b"late" in server.jobs[job_id].log

    def test_large_output_arrives_whole_in_order_in_chunks_of_at_most_1_mib(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        server, api = jobserver
        server.max_body = 1 << 20
        job_id, _, result = run_job(api, tmp_path, one_step("seq 1 1500000"))
        assert result.conclusion is Conclusion.SUCCESS
        lines = log_text(server, job_id).split("\n")
        assert lines[0] == "##[group]Run Work"
        assert lines[1:-2] == [str(i) for i in range(1, 1500001)]
        assert lines[-2:] == ["##[endgroup]", ""]
        size = len(server.jobs[job_id].log)
        assert server.count("log", job_id) >= size // (1 << 20)
        assert server.jobs[job_id].completions[0]["log_size"] == size


class TestRecovery:
    def test_an_upload_whose_answer_was_lost_is_resent_without_duplicating(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        server, api = jobserver
        server.faults["log"] = [503, 502]  # stored, but the runner hears a failure
        job_id, stream, _ = run_job(api, tmp_path, one_step("seq 1 5"))
        assert log_text(server, job_id) == (
            "##[group]Run Work\n1\n2\n3\n4\n5\n##[endgroup]\n"
        )
        assert stream.stats.retries == 2
        assert server.jobs[job_id].completions[0]["log_size"] == len(server.jobs[job_id].log)

    def test_an_offset_past_the_server_log_resyncs_to_its_size(
        self, jobserver: tuple[JobServer, RunnerApi]
    ) -> None:
        server, api = jobserver
        stream = JobStream(api, 9002, "t", flush_interval=0.05).start()
        stream.write("first line")
        deadline = time.monotonic() + 5
        while server.jobs[9002].log != b"first line\n":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with server.lock:  # the server lost the end of the log
            del server.jobs[9002].log[5:]
        stream.write("second line")
        stream.job_finished("k", JobResult(key="k", job_id="k", name="n", conclusion=Conclusion.SUCCESS))
        assert stream.wait(10)
        assert bytes(server.jobs[9002].log) == b"firstsecond line\n"
        assert stream.stats.resyncs == 1
        assert server.jobs[9002].completions[0]["log_size"] == len(b"firstsecond line\n")

    def test_a_completion_is_retried_until_acknowledged(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        server, api = jobserver
        server.faults["complete"] = [503, 500, 502]
        job_id, stream, _ = run_job(api, tmp_path, one_step("echo done"))
        assert server.count("complete", job_id) == 4
        assert server.jobs[job_id].completions[0]["conclusion"] == "success"
        assert stream.stats.completed

    def test_a_too_large_chunk_is_split(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        server, api = jobserver
        server.max_body = 100_000
        job_id, _, _ = run_job(api, tmp_path, one_step("seq 1 200000"))
        lines = log_text(server, job_id).split("\n")
        assert lines[1:-2] == [str(i) for i in range(1, 200001)]

    def test_a_job_the_server_forgot_is_cancelled_and_its_stream_ends(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        server, api = jobserver
        job_id = next(_ids)
        server.gone.add(job_id)
        cancel = threading.Event()
        stream = JobStream(api, job_id, "t", cancel=cancel).start()
        result = JobRunner(LocalExecutor(), stream, work_root=tmp_path).run(
            request(workflow(one_step("echo x\nsleep 30"))), cancel
        )
        assert stream.wait(10)
        assert cancel.is_set()
        assert result.conclusion is Conclusion.CANCELLED
        assert server.count("complete", job_id) == 0

    def test_uploads_wait_for_a_server_that_is_down_and_deliver_when_it_is_back(
        self, tmp_path: Path
    ) -> None:
        server = JobServer()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with httpx.Client() as http:
            stream = JobStream(RunnerApi(http, url), 9003, "t", flush_interval=0.05).start()
            stream.write("while the server is down")
            time.sleep(0.5)
            assert stream.stats.retries >= 1
            with _serve_on(server, sock):
                stream.job_finished(
                    "k", JobResult(key="k", job_id="k", name="n", conclusion=Conclusion.SUCCESS)
                )
                assert stream.wait(20)
        assert bytes(server.jobs[9003].log) == b"while the server is down\n"
        assert server.jobs[9003].completions[0]["log_size"] == 25

    def test_output_waits_when_the_backlog_is_full_and_resumes_on_cancel(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        with httpx.Client() as http:
            api = RunnerApi(http, f"http://127.0.0.1:{sock.getsockname()[1]}")
            cancel = threading.Event()
            stream = JobStream(api, 9004, "t", cancel=cancel, max_backlog=64 * 1024).start()
            written = [0]
            stop = threading.Event()

            def produce() -> None:
                while not stop.is_set():
                    stream.log("k", 0, "a line of output")
                    written[0] += 1

            producer = threading.Thread(target=produce, daemon=True)
            producer.start()
            deadline = time.monotonic() + 10
            while True:  # held: the count stops moving
                before = written[0]
                time.sleep(0.3)
                if written[0] == before:
                    break
                assert time.monotonic() < deadline, "the output was never held"
            held = written[0]
            cancel.set()
            deadline = time.monotonic() + 5
            while written[0] == held:  # a cancelled job's output is never held
                assert time.monotonic() < deadline, "the output stayed held after cancel"
                time.sleep(0.02)
            stop.set()
            producer.join(10)
            stream.abort.set()
            stream.job_finished(
                "k", JobResult(key="k", job_id="k", name="n", conclusion=Conclusion.CANCELLED)
            )
            assert stream.wait(10)
        sock.close()

    def test_step_states_of_a_long_step_are_sent_between_flushes(
        self, jobserver: tuple[JobServer, RunnerApi]
    ) -> None:
        server, api = jobserver
        stream = JobStream(api, 9005, "t", flush_interval=0.05).start()
        stream.step_started("k", 0, "Build")
        deadline = time.monotonic() + 5
        while 1 not in server.jobs[9005].steps:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert server.jobs[9005].steps[1]["status"] == "in_progress"
        step = StepResult(index=0, id=None, name="Build", outcome=Conclusion.FAILURE,
                          conclusion=Conclusion.FAILURE, started_at=time.time(), duration=1.0,
                          error="boom")
        stream.step_finished("k", step)
        stream.job_finished("k", JobResult(key="k", job_id="k", name="n",
                                           conclusion=Conclusion.FAILURE, steps=[step],
                                           error="step 'Build': boom"))
        assert stream.wait(10)
        done = server.jobs[9005].completions[0]
        assert done["steps"][0]["conclusion"] == "failure"
        assert done["error"] == "step 'Build': boom"
        assert log_text(server, 9005) == "##[group]Run Build\n##[error]boom\n##[endgroup]\n"


def _big_job(stream: JobStream, lines: int) -> bytes:
    """A job whose one step printed ``lines`` lines (as bytes); the log it makes."""
    out = b"".join(b"line %07d of the output\n" % i for i in range(lines))
    stream.step_started("k", 0, "Print")
    for start in range(0, len(out), 1 << 16):
        stream.log_bytes("k", 0, out[start : start + (1 << 16)])
    step = StepResult(index=0, id=None, name="Print", outcome=Conclusion.SUCCESS,
                      conclusion=Conclusion.SUCCESS, started_at=time.time(), duration=0.1)
    stream.step_finished("k", step)
    stream.job_finished("k", JobResult(key="k", job_id="k", name="n",
                                       conclusion=Conclusion.SUCCESS, steps=[step]))
    return b"##[group]Run Print\n" + out + b"##[endgroup]\n"


class TestCompletionBeforeTheLog:
    """A long rest of the log at the job's end goes after the completion."""

    def test_the_completion_goes_first_with_the_size_the_log_will_have(
        self, jobserver: tuple[JobServer, RunnerApi]
    ) -> None:
        server, api = jobserver
        server.log_delay = 0.2  # a slow server: the log takes a while to send
        # No flush before the job ends: all of its 3 MB are left to send then.
        stream = JobStream(api, 9101, "t", flush_interval=30, flush_bytes=1 << 30,
                           max_chunk=1 << 20).start()
        want = _big_job(stream, 100_000)
        assert stream.wait(30)
        job = server.jobs[9101]
        assert bytes(job.log) == want
        assert job.completions[0]["log_size"] == len(want)
        assert job.completions[0]["held"] < len(want)  # it came before the log's end
        assert job.log_complete
        kinds = [k for k, j in server.requests if j == 9101]
        assert kinds.count("complete") == 1
        assert kinds.count("log") >= len(want) // (1 << 20)
        assert stream.stats.early and stream.stats.completed
        assert stream.stats.completed_at is not None and stream.stats.shipped_at is not None
        assert stream.stats.completed_at <= stream.stats.shipped_at

    def test_a_short_rest_goes_first_so_the_completion_closes_the_log(
        self, jobserver: tuple[JobServer, RunnerApi]
    ) -> None:
        server, api = jobserver
        stream = JobStream(api, 9102, "t", flush_interval=30, flush_bytes=1 << 30).start()
        want = _big_job(stream, 1000)  # 26 KB
        assert stream.wait(30)
        assert [k for k, j in server.requests if j == 9102] == ["log", "complete"]
        assert server.jobs[9102].completions[0]["log_size"] == len(want)
        assert not stream.stats.early

    def test_a_ci_that_wants_the_whole_log_first_gets_it_then_the_completion(
        self, jobserver: tuple[JobServer, RunnerApi]
    ) -> None:
        server, api = jobserver
        server.wants_whole_log = True
        server.log_delay = 0.2
        stream = JobStream(api, 9103, "t", flush_interval=30, flush_bytes=1 << 30).start()
        want = _big_job(stream, 50_000)
        assert stream.wait(30)
        job = server.jobs[9103]
        assert bytes(job.log) == want
        assert job.completions[0]["log_size"] == len(want)
        assert job.completions[0]["held"] == len(want)
        kinds = [k for k, j in server.requests if j == 9103]
        assert kinds[-1] == "complete" and kinds.count("complete") == 2  # refused, then taken
        assert stream.stats.completed

    def test_output_from_bytes_blocks_and_lines_keeps_its_order(
        self, jobserver: tuple[JobServer, RunnerApi]
    ) -> None:
        server, api = jobserver
        stream = JobStream(api, 9104, "t", flush_interval=0.01).start()
        stream.log("k", 0, "one line é")
        stream.log_bytes("k", 0, b"raw \xc3\xa9\nbytes\n")
        stream.log_block("k", 0, "a block\nof two \ud800")
        stream.write("##[error]last")
        stream.job_finished("k", JobResult(key="k", job_id="k", name="n",
                                           conclusion=Conclusion.SUCCESS))
        assert stream.wait(10)
        assert bytes(server.jobs[9104].log) == (
            "one line é\nraw é\nbytes\na block\nof two ?\n##[error]last\n".encode()
        )

    def test_a_real_job_s_big_output_arrives_whole_after_its_completion(
        self, jobserver: tuple[JobServer, RunnerApi], tmp_path: Path
    ) -> None:
        """The workflow library hands plain output over as bytes; the log is what it printed."""
        server, api = jobserver
        job_id, stream, result = run_job(
            api, tmp_path, one_step("seq 1 2000000"), flush_interval=30, flush_bytes=1 << 30,
        )
        assert result.conclusion is Conclusion.SUCCESS
        text = log_text(server, job_id)
        assert text == (
            "##[group]Run Work\n" + "".join(f"{i}\n" for i in range(1, 2000001))
            + "##[endgroup]\n"
        )
        assert stream.stats.early
        assert server.jobs[job_id].log_complete


@contextmanager
def _serve_on(server: JobServer, sock: socket.socket) -> Iterator[None]:
    config = uvicorn.Config(server.app, log_level="warning", access_log=False)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()
