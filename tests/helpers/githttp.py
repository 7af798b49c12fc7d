"""Real git repositories over smart HTTP (``git http-backend`` as CGI), for client tests.

``failing`` answers the next requests with an HTTP status instead of serving them (a
server briefly unavailable), then serves again.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class GitHttp:
    url: str  # repositories are at <url>/<name relative to the root>
    failing: list[int] = field(default_factory=list)  # statuses for the next requests
    requests: int = 0


@contextmanager
def serve_git(root: Path) -> Iterator[GitHttp]:
    """Serve every repository under ``root`` over smart HTTP on loopback."""
    state = GitHttp("")
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with lock:
            state.requests += 1
            status = state.failing.pop(0) if state.failing else None
        if status is not None:
            start_response(f"{status} Injected", [("Content-Type", "text/plain")])
            return [b"unavailable\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        env = {
            "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": environ.get("PATH_INFO", ""),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)),
            "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""),
            "REMOTE_ADDR": "127.0.0.1",
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True, check=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        headers = [tuple(h.decode().split(": ", 1)) for h in head.splitlines() if b": " in h]
        code = next((v for k, v in headers if k.lower() == "status"), "200 OK")
        start_response(code, [(k, v) for k, v in headers if k.lower() != "status"])
        return [payload]

    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
