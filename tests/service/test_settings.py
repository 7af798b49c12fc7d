"""Settings: defaults < file < environment < flags, and clear errors for bad values."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shipyard.errors import ConfigError
from shipyard.service import load_settings


class TestPrecedence:
    """Each source overrides the one below it."""

    def test_file_overrides_defaults(self, tmp_path: Path) -> None:
        """A value in <data-dir>/shipyard.toml wins over the built-in default."""
        (tmp_path / "shipyard.toml").write_text("port = 9000\nrunners = 5\n")
        s = load_settings({"data_dir": tmp_path}, environ={})
        assert (s.port, s.runners) == (9000, 5)

    def test_env_overrides_file(self, tmp_path: Path) -> None:
        """SHIPYARD_PORT wins over the file."""
        (tmp_path / "shipyard.toml").write_text("port = 9000\n")
        s = load_settings({"data_dir": tmp_path}, environ={"SHIPYARD_PORT": "9100"})
        assert s.port == 9100

    def test_flags_override_env(self, tmp_path: Path) -> None:
        """A flag wins over the environment; a flag left None does not count."""
        s = load_settings(
            {"data_dir": tmp_path, "port": 9200, "runners": None},
            environ={"SHIPYARD_PORT": "9100", "SHIPYARD_RUNNERS": "7"},
        )
        assert (s.port, s.runners) == (9200, 7)

    def test_data_dir_from_env_locates_the_file(self, tmp_path: Path) -> None:
        """SHIPYARD_DATA_DIR decides where shipyard.toml is read from."""
        (tmp_path / "shipyard.toml").write_text('log_level = "debug"\n')
        s = load_settings(environ={"SHIPYARD_DATA_DIR": str(tmp_path)})
        assert s.data_dir == tmp_path and s.log_level == "debug"

    def test_config_file_named_explicitly(self, tmp_path: Path) -> None:
        """SHIPYARD_CONFIG names another file."""
        other = tmp_path / "other.toml"
        other.write_text("runners = 0\n")
        s = load_settings({"data_dir": tmp_path}, environ={"SHIPYARD_CONFIG": str(other)})
        assert s.runners == 0


class TestErrors:
    """Bad settings say which one and why."""

    def test_unknown_key_in_file(self, tmp_path: Path) -> None:
        (tmp_path / "shipyard.toml").write_text("prot = 1\n")
        with pytest.raises(ConfigError, match=r"unknown setting.*prot"):
            load_settings({"data_dir": tmp_path}, environ={})

    def test_bad_toml(self, tmp_path: Path) -> None:
        (tmp_path / "shipyard.toml").write_text("port = \n")
        with pytest.raises(ConfigError, match=r"shipyard\.toml"):
            load_settings({"data_dir": tmp_path}, environ={})

    def test_bad_value_from_env(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="port"):
            load_settings({"data_dir": tmp_path}, environ={"SHIPYARD_PORT": "eighty"})


class TestDatabases:
    """Each service gets its own database."""

    def test_sqlite_file_per_service(self, tmp_path: Path) -> None:
        s = load_settings({"data_dir": tmp_path}, environ={})
        assert s.database_for("ci") == (f"sqlite:///{tmp_path / 'ci.db'}", None)

    def test_postgres_schema_per_service(self, tmp_path: Path) -> None:
        s = load_settings(
            {"data_dir": tmp_path, "database_url": "postgresql://u@h/db"}, environ={}
        )
        assert s.database_for("git") == ("postgresql+psycopg://u@h/db", "shipyard_git")


class TestSecret:
    """The signing secret is made once and kept private."""

    def test_created_once_with_mode_0600(self, tmp_path: Path) -> None:
        s = load_settings({"data_dir": tmp_path}, environ={})
        first = s.ensure_signing_key()
        assert s.ensure_signing_key() == first
        mode = stat.S_IMODE((tmp_path / "secret.key").stat().st_mode)
        assert mode == 0o600

    def test_missing_secret_is_a_clear_error(self, tmp_path: Path) -> None:
        s = load_settings({"data_dir": tmp_path}, environ={})
        with pytest.raises(ConfigError, match="SHIPYARD_SECRET"):
            s.signing_key()
