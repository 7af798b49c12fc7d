"""The command provider: resources made by real scripts in real processes."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import ProviderError
from shipyard.infra._registry import Registry
from shipyard.infra._types import parse_type
from shipyard.infra.provider import REQUIRED, Context
from shipyard.infra.providers.command import Command, CommandProvider, decode_output

COMMAND = Command()


@pytest.fixture
def logs() -> list[str]:
    return []


@pytest.fixture
def ctx(tmp_path: Path, logs: list[str]) -> Context:
    stack = tmp_path / "stack"
    stack.mkdir()
    return Context(config={}, stack_dir=stack, data_dir=tmp_path / "data", log=logs.append)


def props(**values: Any) -> dict[str, Any]:
    """Every property, as the engine passes them: defaults filled in."""
    full = {k: p.default for k, p in COMMAND.properties.items() if p.default is not REQUIRED}
    full.update(values)
    return full


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


class TestSchema:
    def test_registered_under_its_type_name(self) -> None:
        """`command` resolves through the registry to this type."""
        assert isinstance(Registry.default().resource_type("command"), Command)
        assert CommandProvider.resource_types == (Command,)

    def test_schema(self) -> None:
        """Types parse, defaults type-check, triggers replace, secrets are sensitive."""
        for prop in COMMAND.properties.values():
            spec = parse_type(prop.type)
            if prop.default is not REQUIRED and prop.default is not None:
                assert spec.check(prop.default) is None
        assert COMMAND.properties["create"].required
        assert COMMAND.properties["triggers"].replace
        assert COMMAND.properties["sensitive_environment"].sensitive


class TestOutput:
    @pytest.mark.parametrize(
        ("stdout", "expected"),
        [
            (b'{"url": "http://x"}\n', {"url": "http://x"}),
            (b"42\n", 42),
            (b"hello\n\n", "hello"),
            (b"", ""),
            (b"[1, 2", "[1, 2"),
            (b"caf\xc3\xa9\r\n", "café"),
        ],
    )
    def test_decoding(self, stdout: bytes, expected: Any) -> None:
        """JSON becomes its value, anything else the text without trailing newlines."""
        assert decode_output(stdout) == expected


class TestCreate:
    def test_output_and_environment(self, ctx: Context) -> None:
        """create's stdout (JSON) is `output`; the script sees its id, properties and env."""
        script = (
            'printf \'{"id": "%s", "op": "%s", "triggers": %s, "dir": "%s", "greeting": "%s", '
            '"pwd": "%s", "props": %s}\' "$SHIPYARD_ID" "$SHIPYARD_OPERATION" '
            '"$SHIPYARD_TRIGGERS" "$SHIPYARD_STACK_DIR" "$GREETING" "$PWD" "$SHIPYARD_PROPERTIES"'
        )
        values = props(create=script, environment={"GREETING": "hi"}, triggers={"v": 1})
        created = COMMAND.create(ctx, values)
        output = created.attributes["output"]
        assert created.attributes["exit_code"] == 0
        assert uuid.UUID(created.id).version == 4
        assert output["id"] == created.id
        assert output["op"] == "create"
        assert output["triggers"] == {"v": 1}
        assert output["dir"] == str(ctx.stack_dir)
        assert output["greeting"] == "hi"
        assert output["pwd"] == str(ctx.stack_dir)
        assert output["props"]["environment"] == {"GREETING": "hi"}

    def test_sensitive_environment_reaches_the_script_only(self, ctx: Context) -> None:
        """Secret variables are set for the script but left out of SHIPYARD_PROPERTIES."""
        values = props(
            create='echo "$TOKEN"; echo "$SHIPYARD_PROPERTIES"',
            sensitive_environment={"TOKEN": "s3cret"},
        )
        output = COMMAND.create(ctx, values).attributes["output"]
        first, second = output.split("\n")
        assert first == "s3cret"
        assert "s3cret" not in second and "sensitive_environment" not in second

    def test_working_dir_and_interpreter(self, ctx: Context) -> None:
        """Scripts run in working_dir (relative to the stack) with the given interpreter."""
        (ctx.stack_dir / "sub").mkdir()
        values = props(
            create="import os, json; print(json.dumps(os.getcwd()))",
            interpreter=[sys.executable, "-c"],
            working_dir="sub",
        )
        assert COMMAND.create(ctx, values).attributes["output"] == str(ctx.stack_dir / "sub")

    def test_stderr_goes_to_the_log(self, ctx: Context, logs: list[str]) -> None:
        """Standard error lines are passed to the log, standard output is not."""
        COMMAND.create(ctx, props(create="echo out; echo one >&2; printf two >&2"))
        assert logs == ["one", "two"]

    def test_failure_names_status_and_last_stderr_lines(self, ctx: Context) -> None:
        """A non-zero exit is an error with the status and the last 20 stderr lines."""
        script = 'for i in $(seq 1 30); do echo "line $i" >&2; done; exit 3'
        with pytest.raises(ProviderError) as caught:
            COMMAND.create(ctx, props(create=script))
        message = str(caught.value)
        assert message.startswith(
            "create script exited with status 3; last lines of standard error:"
        )
        assert "line 30" in message and "line 11" in message
        assert "line 10\n" not in message

    def test_failure_without_stderr(self, ctx: Context) -> None:
        """An error without stderr says so."""
        with pytest.raises(ProviderError, match=r"status 1 \(no standard error\)"):
            COMMAND.create(ctx, props(create="exit 1"))

    def test_killed_by_a_signal(self, ctx: Context) -> None:
        """A script killed by a signal is reported with the signal's name."""
        with pytest.raises(ProviderError, match="create script was killed by SIGKILL"):
            COMMAND.create(ctx, props(create="kill -9 $$"))

    def test_timeout_kills_the_whole_process_group(self, ctx: Context, tmp_path: Path) -> None:
        """After timeout the script and what it started are killed, and the error says so."""
        pidfile = tmp_path / "child.pid"
        script = f"sleep 30 & echo $! > {pidfile}; sleep 30"
        start = time.monotonic()
        with pytest.raises(
            ProviderError, match=r"did not finish within 0.5 s; its process group was killed"
        ):
            COMMAND.create(ctx, props(create=script, timeout=0.5))
        assert time.monotonic() - start < 4
        child = int(pidfile.read_text())
        deadline = time.monotonic() + 2
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not alive(child)

    def test_background_process_holding_output_does_not_hang(
        self, ctx: Context, tmp_path: Path
    ) -> None:
        """A process left running with the script's stdout open is not waited for."""
        pidfile = tmp_path / "bg.pid"
        start = time.monotonic()
        created = COMMAND.create(ctx, props(create=f"sleep 20 & echo $! > {pidfile}; echo done"))
        try:
            assert created.attributes["output"] == "done"
            assert time.monotonic() - start < 3
        finally:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)

    def test_output_over_the_limit_is_an_error(self, ctx: Context) -> None:
        """More than 1 MiB of stdout is refused rather than stored in the state."""
        with pytest.raises(ProviderError, match="more than 1 MiB"):
            COMMAND.create(ctx, props(create="head -c 1100000 /dev/zero"))

    def test_missing_interpreter(self, ctx: Context) -> None:
        """An interpreter that does not exist is named."""
        with pytest.raises(ProviderError, match="interpreter '/no/such/sh' not found"):
            COMMAND.create(ctx, props(create="true", interpreter=["/no/such/sh", "-c"]))

    def test_missing_working_dir(self, ctx: Context) -> None:
        """A working_dir that is not a folder is named."""
        with pytest.raises(ProviderError, match=r"working_dir .*/nope is not a folder"):
            COMMAND.create(ctx, props(create="true", working_dir="nope"))


class TestUpdate:
    def test_update_script_gets_prior_output_and_properties(self, ctx: Context) -> None:
        """update runs with the previous output and properties; its stdout is the new output."""
        prior = props(create="echo '{\"n\": 1}'", update="x", environment={"N": "1"})
        created = COMMAND.create(ctx, prior)
        desired = {
            **prior,
            "environment": {"N": "2"},
            "update": 'echo "{\\"n\\": $N, \\"was\\": $SHIPYARD_OUTPUT, \\"op\\": \\"$SHIPYARD_OPERATION\\", '
            '\\"before\\": $SHIPYARD_PRIOR_PROPERTIES}"',
        }
        assert COMMAND.requires_replace(prior, desired) == []
        attributes = COMMAND.update(ctx, created.id, prior, desired, created.attributes)
        assert attributes["output"]["n"] == 2
        assert attributes["output"]["was"] == {"n": 1}
        assert attributes["output"]["op"] == "update"
        assert attributes["output"]["before"]["environment"] == {"N": "1"}

    def test_without_update_script_changes_replace(self) -> None:
        """Without update, a change of what the thing is made from replaces it."""
        prior = props(create="a", environment={"X": "1"})
        desired = props(create="b", environment={"X": "2"}, working_dir=".")
        assert COMMAND.requires_replace(prior, desired) == ["create", "environment", "working_dir"]

    def test_bookkeeping_changes_run_nothing(self, ctx: Context, tmp_path: Path) -> None:
        """A new delete/read script or timeout is recorded without running any script."""
        marker = tmp_path / "ran"
        prior = props(create="echo made", update=f"touch {marker}")
        created = COMMAND.create(ctx, prior)
        desired = {**prior, "delete": "echo bye", "read": "echo made", "timeout": 5}
        assert COMMAND.requires_replace(prior, desired) == []
        attributes = COMMAND.update(ctx, created.id, prior, desired, created.attributes)
        assert attributes == created.attributes
        assert not marker.exists()
        no_update = props(create="echo made")
        assert COMMAND.requires_replace(no_update, {**no_update, "delete": "x", "timeout": 3}) == []

    def test_failing_update(self, ctx: Context) -> None:
        """A failing update script is an error naming the operation."""
        prior = props(create="true", update="echo nope >&2; exit 4")
        created = COMMAND.create(ctx, prior)
        with pytest.raises(ProviderError, match=r"update script exited with status 4.*\nnope"):
            COMMAND.update(ctx, created.id, prior, {**prior, "create": "true "}, created.attributes)


class TestRead:
    def test_without_read_script_the_state_stands(self, ctx: Context) -> None:
        """No read script: nothing can be observed, the state is reported."""
        values = props(create="echo x")
        created = COMMAND.create(ctx, values)
        observed = COMMAND.read(ctx, created.id, values, created.attributes)
        assert observed is not None
        assert (observed.properties, observed.attributes) == (values, created.attributes)

    def test_read_output_is_observed_and_drift_is_noted(self, ctx: Context, tmp_path: Path) -> None:
        """The read script's stdout is the observed output; a difference has a note."""
        thing = tmp_path / "thing.json"
        values = props(
            create=f"echo '{{\"size\": 1}}' > {thing}; cat {thing}",
            read=f'[ -f {thing} ] && cat {thing}; test "$SHIPYARD_OPERATION" = read',
        )
        created = COMMAND.create(ctx, values)
        observed = COMMAND.read(ctx, created.id, values, created.attributes)
        assert observed is not None
        assert observed.attributes["output"] == {"size": 1}
        assert observed.notes == ()
        thing.write_text('{"size": 2}')
        observed = COMMAND.read(ctx, created.id, values, created.attributes)
        assert observed is not None
        assert observed.attributes["output"] == {"size": 2}
        assert observed.notes == ('the read script reports {"size": 2}, not {"size": 1}',)

    def test_empty_read_output_means_gone(self, ctx: Context, tmp_path: Path) -> None:
        """A read script printing nothing reports the thing gone."""
        thing = tmp_path / "thing"
        values = props(create=f"echo v > {thing}; echo v", read=f"cat {thing} 2>/dev/null || true")
        created = COMMAND.create(ctx, values)
        thing.unlink()
        assert COMMAND.read(ctx, created.id, values, created.attributes) is None

    def test_failing_read(self, ctx: Context) -> None:
        """A read script that fails is an error, not a silent 'gone'."""
        values = props(create="true", read="echo broken >&2; exit 2")
        created = COMMAND.create(ctx, values)
        with pytest.raises(ProviderError, match="read script exited with status 2"):
            COMMAND.read(ctx, created.id, values, created.attributes)


class TestDelete:
    def test_delete_script_sees_the_output(self, ctx: Context, tmp_path: Path) -> None:
        """delete runs with the id and the recorded output."""
        record = tmp_path / "deleted"
        values = props(
            create='echo \'{"name": "db1"}\'',
            delete=f'echo "$SHIPYARD_ID $SHIPYARD_OUTPUT" > {record}',
        )
        created = COMMAND.create(ctx, values)
        COMMAND.delete(ctx, created.id, values, created.attributes)
        assert record.read_text() == f"{created.id} {json.dumps({'name': 'db1'})}\n"

    def test_delete_of_something_already_gone(self, ctx: Context, tmp_path: Path) -> None:
        """An idempotent delete script succeeds twice; no delete script is a no-op."""
        thing = tmp_path / "thing"
        values = props(create=f"touch {thing}", delete=f"rm -f {thing}")
        created = COMMAND.create(ctx, values)
        COMMAND.delete(ctx, created.id, values, created.attributes)
        COMMAND.delete(ctx, created.id, values, created.attributes)
        assert not thing.exists()
        COMMAND.delete(ctx, created.id, props(create="true"), created.attributes)

    def test_failing_delete(self, ctx: Context) -> None:
        """A failing delete script is an error (the engine keeps the resource)."""
        with pytest.raises(ProviderError, match="delete script exited with status 1"):
            COMMAND.delete(ctx, "x", props(create="true", delete="false"), {"output": ""})


class TestImport:
    def test_import_adopts_the_id_without_running_anything(self, ctx: Context) -> None:
        """Import records the id; the output is unknown until a read script fills it."""
        observed = COMMAND.import_(ctx, "existing-1")
        assert observed.properties == {}
        assert observed.attributes == {"output": None, "exit_code": 0}
        values = props(create="exit 1", read='echo "$SHIPYARD_ID"')
        refreshed = COMMAND.read(ctx, "existing-1", values, observed.attributes)
        assert refreshed is not None and refreshed.attributes["output"] == "existing-1"

    def test_empty_id_is_refused(self, ctx: Context) -> None:
        """An empty id cannot be adopted."""
        with pytest.raises(ProviderError, match="must not be empty"):
            COMMAND.import_(ctx, "")


class TestValidate:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            (props(create="true"), []),
            (props(create=""), [("create", "must not be empty")]),
            (props(create="x", interpreter=[]), [("interpreter", "must name a program")]),
            (
                props(create="x", interpreter=["", "-c"]),
                [("interpreter[0]", "must name a program")],
            ),
            (
                props(create="x", environment={"SHIPYARD_ID": "1"}),
                [
                    (
                        "environment.SHIPYARD_ID",
                        "names starting with SHIPYARD_ are reserved for Shipyard",
                    )
                ],
            ),
            (
                props(create="x", sensitive_environment={"A=B": "1"}),
                [('sensitive_environment["A=B"]', "is not a valid variable name")],
            ),
            (props(create="x", timeout=0), [("timeout", "must be more than 0 seconds")]),
            (props(create="x", working_dir=""), [("working_dir", "must name a folder")]),
        ],
    )
    def test_problems_are_located(
        self, values: dict[str, Any], expected: list[tuple[str, str]]
    ) -> None:
        """Each problem names the property (and the key inside a map) at fault."""
        assert COMMAND.validate(values) == expected
