"""The real ``shipyard infra`` command in subprocesses: exit codes, output, locks."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.infra.test_engine_types import files, plugin_path

REPO = Path(__file__).resolve().parents[2]
SHIPYARD = str(Path(sys.executable).parent / "shipyard")
KEY = base64.b64encode(os.urandom(32)).decode()

NULLS = """\
variables:
  greeting: {type: string, default: hello}
  n: {type: integer, default: 2}
resources:
  first:
    type: "null"
    properties: {input: "${{ var.greeting }}"}
  more:
    type: "null"
    count: ${{ var.n }}
    properties: {input: "${{ resources.first.output }}-${{ count.index }}"}
outputs:
  greeting: {value: "${{ resources.first.output }}"}
  all: {value: "${{ resources.more.*.output }}"}
"""


def env(tmp_path: Path | None = None) -> dict[str, str]:
    out = {**os.environ, "SHIPYARD_INFRA_KEY": KEY, "NO_COLOR": "1"}
    if tmp_path is not None:
        out["PYTHONPATH"] = f"{plugin_path(tmp_path)}{os.pathsep}{REPO}"
    return out


def infra(cwd: Path, *args: str, environ: dict[str, str] | None = None,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHIPYARD, "infra", *args], cwd=cwd, env=environ or env(), input=stdin if stdin is not None else "",
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def nulls(tmp_path: Path) -> Path:
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "main.yaml").write_text(NULLS)
    return stack


def test_plan_apply_plan_exit_codes_and_output(nulls: Path) -> None:
    """plan exits 2 with changes, apply --yes applies with progress and a summary,
    then plan exits 0."""
    plan = infra(nulls, "plan")
    assert plan.returncode == 2, plan.stderr
    assert "+ first (null)" in plan.stdout
    assert "Plan: 3 to add, 0 to change, 0 to replace, 0 to destroy." in plan.stdout

    applied = infra(nulls, "apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    out = applied.stdout
    assert "first: creating..." in out
    assert "first: created in " in out and "[id=" in out
    assert out.index("first: created") < out.index("more[0]: creating...")
    assert "Apply complete: 3 added, 0 changed, 0 replaced, 0 destroyed" in out
    assert 'greeting = "hello"' in out

    again = infra(nulls, "plan")
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout


def test_apply_refuses_without_yes_when_stdin_is_not_a_terminal(nulls: Path) -> None:
    """Without --yes and no terminal to ask on, apply changes nothing and exits 1."""
    result = infra(nulls, "apply")
    assert result.returncode == 1
    assert "refusing to change anything without --yes" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (nulls / ".shipyard" / "state" / "versions").exists()


def test_errors_are_messages_with_exit_1(nulls: Path) -> None:
    """A broken stack, a bad -var and a missing folder print error: lines, never a traceback."""
    (nulls / "bad.yaml").write_text("resources:\n  x:\n    type: nope\n")
    broken = infra(nulls, "plan")
    assert broken.returncode == 1
    assert "bad.yaml:3:11: unknown resource type 'nope'" in broken.stderr
    assert "Traceback" not in broken.stderr
    (nulls / "bad.yaml").unlink()
    bad_var = infra(nulls, "plan", "-var", "n=many")
    assert bad_var.returncode == 1
    assert "variable 'n': expected integer" in bad_var.stderr
    missing = infra(nulls, "plan", "--dir", "nowhere")
    assert missing.returncode == 1 and "no such stack folder" in missing.stderr


def test_variables_from_options_files_and_environment(nulls: Path) -> None:
    """-var beats --var-file beats SHIPYARD_VAR_*; strings are read as the declared type."""
    (nulls / "vars.json").write_text('{"greeting": "from-file", "n": 1}')
    environ = {**env(), "SHIPYARD_VAR_n": "3", "SHIPYARD_VAR_greeting": "from-env"}
    result = infra(nulls, "plan", "--json", "--var-file", "vars.json", "-var", "greeting=from-option",
                   environ=environ)
    assert result.returncode == 2, result.stderr
    plan = json.loads(result.stdout)
    addresses = [c["address"] for c in plan["changes"]]
    assert addresses == ["first", "more[0]"]
    assert plan["changes"][0]["after"]["input"] == "from-option"
    only_env = json.loads(infra(nulls, "plan", "--json", environ=environ).stdout)
    assert len(only_env["changes"]) == 4


def test_saved_plan_applies_then_goes_stale(nulls: Path) -> None:
    """plan -out saves; apply PLAN applies it without asking; a second apply of it is
    refused because the state changed."""
    saved = infra(nulls, "plan", "-out", "tf.plan")
    assert saved.returncode == 2, saved.stderr
    assert "Saved the plan to tf.plan" in saved.stdout
    applied = infra(nulls, "apply", "tf.plan")
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete: 3 added" in applied.stdout
    stale = infra(nulls, "apply", "tf.plan")
    assert stale.returncode == 1
    assert "the state changed since the plan tf.plan was made" in stale.stderr


def test_destroy(nulls: Path) -> None:
    """destroy --yes removes everything and the outputs, and says so."""
    assert infra(nulls, "apply", "--yes").returncode == 0
    destroyed = infra(nulls, "destroy", "--yes")
    assert destroyed.returncode == 0, destroyed.stderr
    assert "first: destroying..." in destroyed.stdout
    assert "Destroy complete: 3 destroyed in " in destroyed.stdout
    assert infra(nulls, "state", "list").stdout == ""
    assert infra(nulls, "output", "--json").stdout.strip() == "{}"


def test_a_saved_destroy_plan_applied_says_destroy(nulls: Path) -> None:
    assert infra(nulls, "apply", "--yes").returncode == 0
    assert infra(nulls, "plan", "--destroy", "-out", "gone.plan").returncode == 2
    applied = infra(nulls, "apply", "gone.plan")
    assert applied.returncode == 0, applied.stderr
    assert "Destroy complete: 3 destroyed in " in applied.stdout
    assert "Outputs:" not in applied.stdout


FOLDER = """\
providers:
  folder: {root: world}
variables:
  fail: {type: boolean, default: false}
  delay: {type: number, default: 0}
resources:
  a:
    type: folder_item
    properties: {name: a, content: one, delay: "${{ var.delay }}"}
  b:
    type: folder_item
    properties: {name: b, fail: "${{ var.fail }}", content: "${{ resources.a.path }}"}
  c:
    type: folder_item
    properties: {name: c, content: "${{ resources.b.path }}"}
"""


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    stack = tmp_path / "stack"
    (stack / "world").mkdir(parents=True)
    (stack / "main.yaml").write_text(FOLDER)
    return stack, env(tmp_path)


def test_failure_exit_code_and_messages(folder: tuple[Path, dict[str, str]]) -> None:
    """A failed create exits 1 naming the resource and the cause, and what was not
    attempted; the rest is recorded."""
    stack, environ = folder
    result = infra(stack, "apply", "--yes", "-var", "fail=true", environ=environ)
    assert result.returncode == 1
    assert "error: b: create failed: create of b refused (fail is set)" in result.stdout
    assert "not attempted (1): c" in result.stdout
    assert "Apply failed (1 error): 1 added" in result.stdout
    assert files(stack / "world") == {"a": "one"}
    ok = infra(stack, "apply", "--yes", environ=environ)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 added" in ok.stdout


def test_drift_exit_codes_and_json(folder: tuple[Path, dict[str, str]]) -> None:
    """drift exits 0 when the world matches, 2 after an edit outside (naming it), and
    writes nothing."""
    stack, environ = folder
    assert infra(stack, "apply", "--yes", environ=environ).returncode == 0
    clean = infra(stack, "drift", environ=environ)
    assert clean.returncode == 0, clean.stderr
    assert "No drift." in clean.stdout
    (stack / "world" / "a").write_text("edited")
    (stack / "world" / "c").unlink()
    versions = sorted((stack / ".shipyard" / "state" / "versions").iterdir())
    drifted = infra(stack, "drift", environ=environ)
    assert drifted.returncode == 2, drifted.stderr
    assert "~ a (folder_item) changed outside this stack" in drifted.stdout
    assert 'content: state "one", real "edited"' in drifted.stdout
    assert "- c (folder_item) no longer exists" in drifted.stdout
    report = json.loads(infra(stack, "drift", "--json", environ=environ).stdout)
    assert report["drift"] is True
    assert report["resources"][0]["changes"] == [{"path": "content", "state": "one", "real": "edited"}]
    assert sorted((stack / ".shipyard" / "state" / "versions").iterdir()) == versions
    assert not (stack / ".shipyard" / "state" / "journal").exists()


def test_import_with_the_type_name_form(folder: tuple[Path, dict[str, str]]) -> None:
    """import TYPE.NAME ID records an existing thing; the plan then leaves it alone."""
    stack, environ = folder
    (stack / "world" / "a").write_text("one")
    result = infra(stack, "import", "folder_item.a", "a", environ=environ)
    assert result.returncode == 0, result.stderr
    assert "Imported a (folder_item) [id=a]." in result.stdout
    plan = json.loads(infra(stack, "plan", "--json", environ=environ).stdout)
    assert [c["address"] for c in plan["changes"]] == ["b", "c"]
    again = infra(stack, "import", "a", "a", environ=environ)
    assert again.returncode == 1 and "already managed" in again.stderr


def test_two_applies_at_once(folder: tuple[Path, dict[str, str]]) -> None:
    """While one apply runs, another is refused naming the holder; with --lock-timeout
    it waits for the first and then runs."""
    stack, environ = folder
    first = subprocess.Popen(
        [SHIPYARD, "infra", "apply", "--yes", "-var", "delay=1.5"], cwd=stack, env=environ,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        events = stack / "world" / ".events"
        deadline = time.monotonic() + 30
        while not events.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = infra(stack, "apply", "--yes", environ=environ)
        assert refused.returncode == 1
        assert "state is locked by" in refused.stderr
        assert f"(pid {first.pid}) running apply since" in refused.stderr
        waited = infra(stack, "apply", "--yes", "-var", "delay=1.5", "--lock-timeout", "60", environ=environ)
        assert waited.returncode == 0, waited.stderr
        assert "No changes." in waited.stdout
    finally:
        first.wait(timeout=60)
    assert first.returncode == 0


def test_ctrl_c_lets_running_changes_finish(folder: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """The first Ctrl-C starts nothing new, waits for what runs, records it and exits
    130; the next apply finishes the job."""
    stack, environ = folder
    lines = ["providers:", "  folder: {root: world}", "resources:"]
    for i in range(20):
        lines += [f"  i{i}:", "    type: folder_item", f"    properties: {{name: f{i}, delay: 0.2}}"]
    (stack / "main.yaml").write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [SHIPYARD, "infra", "apply", "--yes", "--parallelism", "2"], cwd=stack, env=environ,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    events = stack / "world" / ".events"
    deadline = time.monotonic() + 30
    while (not events.exists() or "create" not in events.read_text().replace("start create", "")) \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted: waiting for" in out
    assert "Apply interrupted:" in out
    made = files(stack / "world")
    assert 0 < len(made) < 20
    listed = infra(stack, "state", "list", environ=environ).stdout.split()
    assert len(listed) == len(made)
    again = infra(stack, "apply", "--yes", environ=environ)
    assert again.returncode == 0, again.stderr
    assert len(files(stack / "world")) == 20


def test_progress_lines_appear_while_the_change_runs(folder: tuple[Path, dict[str, str]]) -> None:
    """A start line is printed when a change starts, not when the apply ends."""
    import threading

    stack, environ = folder
    (stack / "main.yaml").write_text(
        "providers:\n  folder: {root: world}\nresources:\n  slow:\n    type: folder_item\n"
        "    properties: {name: slow, delay: 1.5}\n"
    )
    proc = subprocess.Popen([SHIPYARD, "infra", "apply", "--yes"], cwd=stack, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen: dict[str, float] = {}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.setdefault(line.split(" in ")[0].strip(), time.monotonic())

    reader = threading.Thread(target=read)
    reader.start()
    with proc:
        proc.wait(timeout=60)
        ended = time.monotonic()
        reader.join()
    assert proc.returncode == 0
    assert ended - seen["slow: creating..."] > 1.0
    assert "slow: created" in seen


def test_the_lease_of_a_killed_apply_is_taken_over_with_a_warning(nulls: Path) -> None:
    """An apply killed while holding the lease (30 s ttl) does not block the next one:
    its process is gone, so the lease is taken over at once, and the user is told."""
    from tests.infra.test_lock import kill9, start_holder

    holder = start_holder(nulls / ".shipyard" / "state", 30)
    kill9(holder)
    applied = infra(nulls, "apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert (f"warning: took over the lease of holder@test (pid {holder.pid}, no longer running),"
            " which was running apply since ") in applied.stderr
    assert "warning" not in infra(nulls, "plan").stderr
