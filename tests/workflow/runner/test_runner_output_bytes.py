"""Output that needs nothing done goes to a bytes reporter undecoded, and the log is the
same, byte for byte, as when every chunk is decoded, masked and encoded again."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.workflow._runtime import BytesReporter
from shipyard.workflow.executors import LocalExecutor
from shipyard.workflow.runner import JobRunner
from shipyard.workflow.runner._masking import Masker
from shipyard.workflow.runner._output import MAX_LINE, JobLog, OutputProcessor
from tests.helpers.jobrun import RecordingReporter, request, workflow

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TextSink:
    """Stores what it is given as a runner's log would: text encoded, a newline per line."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.calls: dict[str, int] = {"log": 0, "log_block": 0, "log_bytes": 0}

    def log(self, key: str, index: int, line: str) -> None:
        self.calls["log"] += 1
        self.out += line.encode("utf-8", "replace") + b"\n"

    def log_block(self, key: str, index: int, text: str) -> None:
        self.calls["log_block"] += 1
        self.out += text.encode("utf-8", "replace") + b"\n"


class BytesSink(TextSink):
    """...and takes untouched output as bytes."""

    def log_bytes(self, key: str, index: int, data: bytes) -> None:
        self.calls["log_bytes"] += 1
        assert data.endswith(b"\n")
        self.out += data


def process(chunks: list[bytes], secrets: list[str], sink: TextSink) -> tuple[Any, ...]:
    """Feed chunks through an OutputProcessor; (log bytes, command effects, annotations)."""
    job = JobLog("k", sink.log, Masker(secrets), block=sink.log_block)
    output = OutputProcessor(job, 0)
    for chunk in chunks:
        output.feed(chunk)
    output.finish()
    effects = output.effects
    return (bytes(sink.out), (effects.outputs, effects.state, effects.errors),
            [(a.level, a.message, a.title) for a in job.annotations])


# Pieces that matter: multibyte characters (cut anywhere by the chunking), invalid
# UTF-8, CR and CRLF, commands and "::" that are not commands, a secret and an
# ::add-mask:: of another, stopped commands.
PIECES = [
    b"a", b"plain text ", b"\n", b"\r\n", b"\r", b"\xc3\xa9", b"\xe2\x82\xac",
    b"\xf0\x9f\x98\x80", b"\xe2\x82", b"\xff", b"\xc3", b"\x80", b"std::vector ",
    b"::error title=T::went wrong\n", b"::warning::careful\n", b"  ::notice::indented\n",
    b"::set-output name=out::value\n", b"::add-mask::m@sk\n", b"m@sk", b"s3cr3t", b"s3c",
    b"r3t", b"::stop-commands::halt\n", b"::error::while stopped\n", b"::halt::\n",
    b"::debug::dbg\n", b"\t", b"caf\xc3\xa9 \xe2\x82\xac\n",
]

streams = st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join)
secret_sets = st.sampled_from(
    [[], ["s3cr3t"], ["s3cr3t", "caf\xe9"], [f"v{i}x" for i in range(9)] + ["s3cr3t"]]
)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A stream and the same stream cut into chunks at arbitrary places."""
    data = draw(streams)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return data, [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


class TestSameBytes:
    @SETTINGS
    @given(chunked(), secret_sets)
    def test_bytes_and_text_paths_give_the_same_log(
        self, stream: tuple[bytes, list[bytes]], secrets: list[str]
    ) -> None:
        """Same log bytes, outputs and annotations with or without log_bytes, however
        the output is cut into chunks (characters, secrets and CRLFs split)."""
        data, chunks = stream
        assert process(chunks, secrets, BytesSink()) == process(chunks, secrets, TextSink())
        if re.search(rb"\r[ \t]*::", data) is None:
            # Where a chunk ends does not matter either. (A lone CR before "::" is the
            # exception, from before bytes: a line walk strips it and finds a command,
            # the quick test for commands does not count it as leading whitespace.)
            assert process(chunks, secrets, BytesSink()) == process([data], secrets, TextSink())

    @SETTINGS
    @given(chunked())
    def test_a_secret_never_reaches_the_log_whatever_the_chunks(
        self, stream: tuple[bytes, list[bytes]]
    ) -> None:
        _, chunks = stream
        log = process(chunks, ["s3cr3t", "caf\xe9"], BytesSink())[0]
        assert b"s3cr3t" not in log and "caf\xe9".encode() not in log


class TestWhichPath:
    def test_plain_output_goes_as_bytes_only(self) -> None:
        sink = BytesSink()
        chunks = [b"line one\nline t", b"wo\ncaf\xc3", b"\xa9 std::string\n", b"no newline"]
        process(chunks, ["s3cr3t"], sink)
        assert sink.calls == {"log": 0, "log_block": 0, "log_bytes": 4}
        assert bytes(sink.out) == b"line one\nline two\ncaf\xc3\xa9 std::string\nno newline\n"

    def test_chunks_needing_work_go_as_text_and_the_rest_as_bytes(self) -> None:
        sink = BytesSink()
        chunks = [
            b"fine\n",
            b"has s3cr3t in it\n",  # masked
            b"fine again\n",
            b"crlf\r\n",  # CR stripped
            b"bad \xff byte\n",  # replaced
            b"::warning::a command\n",
            b"last\n",
        ]
        log = process(chunks, ["s3cr3t"], sink)[0]
        assert sink.calls["log_bytes"] == 3
        assert log == (
            b"fine\nhas *** in it\nfine again\ncrlf\nbad \xef\xbf\xbd byte\n"
            b"::warning::a command\nlast\n"
        )

    def test_while_commands_are_stopped_they_are_plain_output(self) -> None:
        sink = BytesSink()
        chunks = [b"::stop-commands::tok\n", b"::error::not a command\n", b"::tok::\n",
                  b"::error::a command\n"]
        _, _, annotations = process(chunks, [], sink)
        assert sink.calls["log_bytes"] == 1  # the stopped ::error:: line
        assert annotations == [("error", "a command", None)]

    def test_a_line_longer_than_the_limit_is_cut_between_characters(self) -> None:
        sink = BytesSink()
        euro = "\u20ac".encode()
        data = euro * (MAX_LINE // 3 + 5)  # no newline, a character across the limit
        process([data[: MAX_LINE - 1], data[MAX_LINE - 1 :]], [], sink)
        lines = bytes(sink.out).split(b"\n")
        assert b"".join(lines) == data
        assert all(line.decode() for line in lines if line)  # each whole characters


class BytesRecorder(RecordingReporter):
    """A recording reporter that also takes blocks and bytes, counting them."""

    def __init__(self) -> None:
        super().__init__()
        self.raw = bytearray()
        self.bytes_calls = 0

    def log_block(self, key: str, index: int, text: str) -> None:
        self.raw += text.encode() + b"\n"
        for line in text.split("\n"):
            self.log(key, index, line)

    def log_bytes(self, key: str, index: int, data: bytes) -> None:
        self.bytes_calls += 1
        self.raw += data
        for line in data.decode().split("\n")[:-1]:
            self.log(key, index, line)


def test_a_job_s_plain_output_reaches_a_bytes_reporter_undecoded(tmp_path: Path) -> None:
    reporter = BytesRecorder()
    _: BytesReporter = reporter  # what the runner looks for
    wf = workflow("""
        on: push
        jobs:
          j:
            runs-on: ubuntu-latest
            steps:
              - run: seq 1 50000
              - run: echo "token ${{ secrets.T }} hidden"
        """)
    result = JobRunner(LocalExecutor(), reporter, work_root=tmp_path / "w").run(
        request(wf, secrets={"T": "abc123secret"})
    )
    assert result.conclusion == "success"
    assert reporter.step_lines(0) == [str(i) for i in range(1, 50001)]
    assert reporter.step_lines(1) == ["token *** hidden"]
    assert reporter.bytes_calls >= 1
    assert b"abc123secret" not in reporter.raw
