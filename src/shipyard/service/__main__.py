"""``python -m shipyard.service SERVICE --port P --host H``: what ``shipyard up`` runs.

The same as ``shipyard serve``, without loading the command-line interface (Typer, Rich
and every command's modules) into a process that lives as long as the server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.service._serve import serve
from shipyard.service._settings import SERVICES, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shipyard.service", description=__doc__)
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--host", default=None)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--fd", type=int, default=None,
                        help="Serve on this inherited listening socket (--port, --host then "
                             "only say where it listens).")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(config_file=args.config)
        serve(args.service, settings, host=args.host or settings.host,
              port=settings.port if args.port is None else args.port, fd=args.fd)
    except ShipyardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
