"""``python -m shipyard.supervisor``: the long-lived process of ``shipyard up``.

``shipyard up`` parses its flags, then replaces itself (``exec``, same pid) with this
module, so that the process supervising the server for days holds neither the command
line's modules nor the HTTP client: about 15 MB less. The options come in the
``SHIPYARD_UP_OPTIONS`` environment variable, as JSON, which is removed before any
child starts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from shipyard.supervisor._main import run_up


def main() -> int:
    raw = os.environ.pop("SHIPYARD_UP_OPTIONS", None)
    if raw is None:
        print("error: run `shipyard up`, which starts this module", file=sys.stderr)
        return 2
    options = json.loads(raw)
    config = options.get("config")
    return run_up(options.get("flags", {}), Path(config) if config else None,
                  verbose=bool(options.get("verbose")))


if __name__ == "__main__":
    sys.exit(main())
