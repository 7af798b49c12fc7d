"""Workflow commands in step output, masking, and the runner-file format."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import WorkflowError
from shipyard.workflow._runtime import Annotation, Conclusion
from shipyard.workflow.runner import Masker, parse_command, parse_key_values
from tests.helpers.jobrun import run_job


def _job(script: str) -> str:
    body = "\n".join("          " + line for line in script.strip("\n").split("\n"))
    return f"""
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - id: s
        run: |
{body}
      - id: t
        if: always()
        run: echo "second ${{{{ secrets.TOKEN }}}}"
"""


class TestParseCommand:
    """The ``::name props::data`` syntax."""

    def test_properties_and_data_are_unescaped(self) -> None:
        cmd = parse_command("::error file=a%2Cb.py,line=3,title=T%3AX::first%0Asecond %25 done")
        assert cmd is not None
        assert cmd.name == "error"
        assert cmd.properties == {"file": "a,b.py", "line": "3", "title": "T:X"}
        assert cmd.data == "first\nsecond % done"

    def test_surrounding_whitespace_and_case_are_ignored(self) -> None:
        cmd = parse_command("   ::Warning::careful  ")
        assert cmd is not None and cmd.name == "warning" and cmd.data == "careful"

    def test_unknown_or_malformed_lines_are_not_commands(self) -> None:
        assert parse_command("::unknown-thing::x") is None
        assert parse_command("::error") is None
        assert parse_command("echo ::error::x") is None


class TestKeyValueFiles:
    """GITHUB_OUTPUT / GITHUB_ENV contents."""

    def test_both_forms_and_crlf(self) -> None:
        text = "a=1\r\nb<<X\r\nline1\r\nline2\r\nX\r\n\r\nc==2\n"
        assert parse_key_values(text, "GITHUB_OUTPUT") == [
            ("a", "1"), ("b", "line1\nline2"), ("c", "=2"),
        ]

    def test_errors_name_the_problem(self) -> None:
        with pytest.raises(WorkflowError, match="name must not be empty"):
            parse_key_values("=x\n", "GITHUB_ENV")
        with pytest.raises(WorkflowError, match="delimiter must not be empty"):
            parse_key_values("a<<\n", "GITHUB_ENV")
        with pytest.raises(WorkflowError, match="invalid format 'just text'"):
            parse_key_values("just text\n", "GITHUB_ENV")


class TestMasker:
    """Secret values become ***."""

    def test_longest_values_first_and_multiline_values_per_line(self) -> None:
        m = Masker(["abc", "abcdef", "one\ntwo", "  "])
        assert m.mask("xabcdefx abc one two") == "x***x *** *** ***"

    def test_many_values_use_one_pass(self) -> None:
        m = Masker([f"secret{i}" for i in range(20)])
        assert m.mask("secret19 secret1 secret10x") == "*** *** ***x"


class TestMaskingInJobs:
    """Masking applies to everything the job prints."""

    def test_secrets_are_masked_from_the_start(self, tmp_path: Path) -> None:
        _, rep = run_job(_job('echo "token is ${{ secrets.TOKEN }}"'), tmp_path,
                         secrets={"TOKEN": "s3cr3t-value"})
        assert rep.step_lines(0) == ["token is ***"]
        assert "s3cr3t" not in rep.text

    def test_add_mask_hides_the_value_in_all_later_output(self, tmp_path: Path) -> None:
        result, rep = run_job(_job("""
echo "before: generated-42"
echo "::add-mask::generated-42"
echo "after: generated-42"
echo "::add-mask::multi%0Aline-value"
echo "multi and line-value"
echo "::error title=generated-42::failed generated-42"
"""), tmp_path, secrets={"TOKEN": "generated-42x"})
        lines = rep.step_lines(0)
        assert lines[0] == "before: generated-42"
        assert lines[1] == "after: ***"
        assert lines[2] == "*** and ***"
        assert lines[3] == "::error title=***::failed ***"
        assert rep.step_lines(1) == ["second ***"]
        assert result.annotations[0].message == "failed ***"
        assert result.annotations[0].title == "***"

    def test_masking_holds_across_steps(self, tmp_path: Path) -> None:
        text = """
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo "::add-mask::p@ss w0rd"
      - run: echo "the password is p@ss w0rd!"
"""
        _, rep = run_job(text, tmp_path)
        assert rep.step_lines(1) == ["the password is ***!"]


class TestCommands:
    """Commands the runner acts on."""

    def test_group_lines_stay_in_the_log(self, tmp_path: Path) -> None:
        _, rep = run_job(_job("echo '::group::Compile'\necho work\necho '::endgroup::'"),
                         tmp_path)
        assert rep.step_lines(0) == ["::group::Compile", "work", "::endgroup::"]

    def test_annotations_are_collected_with_their_location(self, tmp_path: Path) -> None:
        result, rep = run_job(_job("""
echo "::error file=src/app.py,line=10,col=4,endLine=12,endColumn=8,title=Lint::bad name"
echo "::warning file=README.md::old"
echo "  ::notice::just saying"
"""), tmp_path)
        assert result.annotations == [
            Annotation("error", "bad name", "src/app.py", 10, 4, 12, 8, "Lint"),
            Annotation("warning", "old", "README.md"),
            Annotation("notice", "just saying"),
        ]
        assert rep.step_lines(0)[1] == "::warning file=README.md::old"
        # Annotations do not fail a step by themselves.
        assert result.conclusion is Conclusion.SUCCESS

    def test_debug_lines_show_only_with_step_debug(self, tmp_path: Path) -> None:
        script = "echo '::debug::details'\necho visible"
        _, quiet = run_job(_job(script), tmp_path)
        assert quiet.step_lines(0) == ["visible"]
        _, loud = run_job(_job(script), tmp_path, contexts={"vars": {"ACTIONS_STEP_DEBUG": "true"}})
        assert loud.step_lines(0) == ["::debug::details", "visible"]

    def test_stop_commands_suspends_processing_until_the_token(self, tmp_path: Path) -> None:
        result, rep = run_job(_job("""
echo "::stop-commands::pause-123"
echo "::add-mask::not-a-secret"
echo "::error::not an annotation"
echo "::pause-123::"
echo "::add-mask::real-secret"
echo "not-a-secret real-secret"
"""), tmp_path)
        assert rep.step_lines(0) == [
            "::add-mask::not-a-secret", "::error::not an annotation", "not-a-secret ***",
        ]
        assert result.annotations == []

    def test_deprecated_set_output_and_save_state_work_with_a_warning(self, tmp_path: Path) -> None:
        result, _ = run_job(_job("""
echo "::set-output name=color::green%0Ablue"
echo "::save-state name=pid::123"
"""), tmp_path)
        assert result.steps[0].outputs == {"color": "green\nblue"}
        warnings = [a.message for a in result.annotations if a.level == "warning"]
        assert len(warnings) == 2
        assert "`set-output` command is deprecated" in warnings[0]
        assert "`save-state` command is deprecated" in warnings[1]

    def test_set_env_command_is_disabled_and_fails_the_step(self, tmp_path: Path) -> None:
        result, _ = run_job(_job('echo "::set-env name=X::1"'), tmp_path)
        assert result.steps[0].conclusion is Conclusion.FAILURE
        assert "`set-env` command is disabled" in (result.steps[0].error or "")

    def test_echo_on_shows_command_lines(self, tmp_path: Path) -> None:
        _, rep = run_job(_job("echo '::echo::on'\necho '::add-mask::zz-top'\necho '::save-state name=a::b'"),
                         tmp_path)
        lines = rep.step_lines(0)
        assert lines[0] == "::add-mask::***"
        assert lines[1] == "::save-state name=a::b"
