"""``options:`` strings and ``ports:`` entries of containers and services."""

from __future__ import annotations

import pytest

from shipyard.errors import ExecutorError
from shipyard.workflow.executors._container_options import parse_duration, parse_options, parse_port


class TestOptions:
    """The docker create flags Shipyard understands."""

    def test_health_check_flags(self) -> None:
        opts = parse_options(
            '--health-cmd "pg_isready -U postgres" --health-interval 10s '
            "--health-timeout=5s --health-retries 5 --health-start-period 1m30s"
        )
        assert opts.healthcheck == {
            "test": ["CMD-SHELL", "pg_isready -U postgres"],
            "interval": 10 * 10**9,
            "timeout": 5 * 10**9,
            "retries": 5,
            "start_period": 90 * 10**9,
        }

    def test_other_common_flags(self) -> None:
        opts = parse_options(
            "-e A=1 --env B=two --user 1000:1000 --hostname db --network-alias database "
            "--cpus 1.5 --memory 512m --shm-size 1g --privileged --add-host h:10.0.0.1 "
            "--no-healthcheck --entrypoint /bin/sh -w /srv --tmpfs /run:size=10m"
        )
        assert opts.env == {"A": "1", "B": "two"}
        assert opts.user == "1000:1000" and opts.hostname == "db"
        assert opts.aliases == ["database"]
        assert opts.no_healthcheck and opts.entrypoint == ["/bin/sh"] and opts.workdir == "/srv"
        assert opts.host_config == {
            "nano_cpus": 1_500_000_000, "mem_limit": "512m", "shm_size": "1g",
            "privileged": True, "extra_hosts": {"h": "10.0.0.1"}, "tmpfs": {"/run": "size=10m"},
        }

    def test_unknown_flags_are_refused_with_the_supported_list(self) -> None:
        with pytest.raises(ExecutorError, match=r"unsupported container option '--gpus'; supported: .*--health-cmd"):
            parse_options("--gpus all")

    def test_bad_values_are_explained(self) -> None:
        with pytest.raises(ExecutorError, match="'soon' is not a duration like 10s"):
            parse_options("--health-interval soon")
        with pytest.raises(ExecutorError, match="--health-retries needs a value"):
            parse_options("--health-retries")
        with pytest.raises(ExecutorError, match="No closing quotation"):
            parse_options('--health-cmd "unterminated')

    def test_durations(self) -> None:
        assert parse_duration("500ms", "--x") == 500_000_000
        assert parse_duration("1h2m3s", "--x") == 3723 * 10**9


class TestPorts:
    """ports: entries."""

    def test_forms(self) -> None:
        assert parse_port("8080:80") == ("80/tcp", 8080)
        assert parse_port("5432") == ("5432/tcp", None)
        assert parse_port("127.0.0.1:9000:90/udp") == ("90/udp", ("127.0.0.1", 9000))
        assert parse_port("127.0.0.1::90") == ("90/tcp", ("127.0.0.1", None))

    def test_bad_port(self) -> None:
        with pytest.raises(ExecutorError, match="port 'http' is not like 8080:80"):
            parse_port("http")
