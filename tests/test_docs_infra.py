"""docs/infra.md stays true to the providers it documents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_provider_reference_matches_the_providers_schemas() -> None:
    """The generated tables of docs/infra.md are what scripts/infra-reference writes today."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "infra-reference"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_resource_type_has_a_section_on_its_behaviour() -> None:
    """Each built-in provider is described in prose, not only in the generated tables."""
    text = (ROOT / "docs" / "infra.md").read_text()
    prose = text.split("<!-- providers:begin")[0]
    for name in ("null", "random", "file", "template", "command", "process", "loadbalancer",
                 "postgres", "docker"):
        assert f"### `{name}`" in prose, name
