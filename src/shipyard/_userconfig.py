"""The CLI's config file: the server and token ``shipyard login`` and ``shipyard up`` write.

``$SHIPYARD_HOME/config.toml`` (default ``~/.shipyard/config.toml``)::

    server = "http://127.0.0.1:8080"
    token = "sy_..."

Kept outside the ``shipyard.cli`` package so that ``shipyard up``'s long-lived
supervisor can write it without loading the HTTP client.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError

__all__ = ["config_path", "read_config", "write_config"]


def config_path() -> Path:
    """``$SHIPYARD_HOME/config.toml``, or ``~/.shipyard/config.toml``."""
    home = os.environ.get("SHIPYARD_HOME")
    return (Path(home) if home else Path.home() / ".shipyard") / "config.toml"


def read_config(path: Path | None = None) -> dict[str, Any]:
    """The config file's settings (empty when there is none)."""
    path = path or config_path()
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, OSError) as err:
        raise ConfigError(f"{path}: {err}") from None


def write_config(server: str, token: str, path: Path | None = None) -> Path:
    """Write the server and token to the config file (mode 0600), keeping other keys."""
    from shipyard.supervisor import write_private

    path = path or config_path()
    data = read_config(path) if path.exists() else {}
    data.update(server=server, token=token)
    lines = []
    for key, value in data.items():
        if isinstance(value, str):
            # A JSON string is a valid TOML basic string.
            lines.append(f"{key} = {json.dumps(value)}")
        elif isinstance(value, bool | int | float):
            lines.append(f"{key} = {json.dumps(value)}")
    write_private(path, "\n".join(lines) + "\n")
    return path
