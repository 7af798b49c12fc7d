"""Health checks of a replica on 127.0.0.1: a TCP connect, or an HTTP GET answered 2xx/3xx."""

from __future__ import annotations

import http.client
import socket

from shipyard.infra.providers._supervisor_spec import HealthCheck

__all__ = ["check"]


def check(health: HealthCheck, port: int) -> str | None:
    """None when the replica on ``port`` is healthy, else what went wrong (for people)."""
    try:
        if health.type == "tcp":
            with socket.create_connection(("127.0.0.1", port), timeout=health.timeout):
                return None
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=health.timeout)
        try:
            conn.request("GET", health.path, headers={"User-Agent": "shipyard-health-check"})
            response = conn.getresponse()
            response.read(64 * 1024)
        finally:
            conn.close()
    except ConnectionRefusedError:
        return f"connection to port {port} refused"
    except TimeoutError:
        return f"no answer on port {port} within {health.timeout:g} s"
    except (OSError, http.client.HTTPException) as err:
        return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    if 200 <= response.status < 400:
        return None
    return f"GET {health.path} answered {response.status} {response.reason}".rstrip()
