"""The environment git's programs run with."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_git_programs_get_no_service_setting_but_the_mark_of_up() -> None:
    """The signing secret and the database URL stay in the service; up's mark goes along."""
    code = (
        "from shipyard.git._gitexec import git_env; import json; print(json.dumps(git_env()))"
    )
    env = {**os.environ, "SHIPYARD_SECRET": "s3cret-s3cret-s3cret",
           "SHIPYARD_DATABASE_URL": "postgresql://u:pw@h/db",
           "SHIPYARD_CHILD_OF": "/srv/shipyard/git", "GIT_DIR": "/elsewhere"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    got = json.loads(out)
    assert "SHIPYARD_SECRET" not in got and "SHIPYARD_DATABASE_URL" not in got
    assert "GIT_DIR" not in got
    assert got["SHIPYARD_CHILD_OF"] == "/srv/shipyard/git"
    assert got["PATH"] == os.environ["PATH"]
