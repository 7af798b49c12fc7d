"""The service of the infra-demo stack: a tiny HTTP/JSON server backed by PostgreSQL.

Run by the stack's ``process`` resources, which set ``PORT``, ``SERVICE_NAME`` and
``DATABASE_URL``. ``GET /`` records a hit in the ``hits`` table and answers with the
service's name and what the database holds; ``GET /health`` answers 200 while the
database answers (the supervisor's and HAProxy's health checks use it).
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

SERVICE = os.environ["SERVICE_NAME"]
DATABASE_URL = os.environ["DATABASE_URL"]
PORT = int(os.environ["PORT"])
# Both services create the table at start: the lock lets one do it while the other waits.
SCHEMA_LOCK = 7_301_001
SCHEMA = """
CREATE TABLE IF NOT EXISTS hits (
    id bigserial PRIMARY KEY,
    service text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
)
"""


def connect() -> psycopg.Connection[Any]:
    return psycopg.connect(DATABASE_URL, connect_timeout=5)


def create_schema() -> None:
    with connect() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(SCHEMA)


def hit() -> dict[str, Any]:
    """Record this request and read back what the database knows."""
    with connect() as conn:
        row = conn.execute(
            "INSERT INTO hits (service) VALUES (%s) RETURNING id", (SERVICE,)
        ).fetchone()
        counts = conn.execute(
            "SELECT service, count(*) FROM hits GROUP BY service ORDER BY service"
        ).fetchall()
        who = conn.execute("SELECT current_database(), current_user").fetchone()
    assert row is not None and who is not None
    return {
        "service": SERVICE,
        "port": PORT,
        "pid": os.getpid(),
        "database": who[0],
        "user": who[1],
        "hit": row[0],
        "hits": {service: count for service, count in counts},
    }


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        try:
            if self.path == "/health":
                with connect() as conn:
                    conn.execute("SELECT 1")
                self.reply(200, {"service": SERVICE, "status": "ok"})
            elif self.path == "/":
                self.reply(200, hit())
            else:
                self.reply(404, {"error": f"no such page: {self.path}"})
        except psycopg.Error as err:
            self.reply(503, {"service": SERVICE, "error": str(err).strip()})

    def reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode() + b"\n"
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except ConnectionError:
            pass  # HAProxy's health checks hang up once they have read the status line

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would fill the replica's log


def main() -> None:
    create_schema()
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.daemon_threads = True
    print(f"{SERVICE} serving on 127.0.0.1:{PORT}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
