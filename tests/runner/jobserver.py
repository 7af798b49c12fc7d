"""A minimal real HTTP app with the job endpoints of the runner protocol (docs/api.md).

It implements the log append semantics exactly (overlap skipped, 409 with the size
past the end), and the completion's ``log_size``: beyond what it holds, the log stays
open for appends up to that size (bytes past it are refused) and closes there; with
``wants_whole_log`` set it answers such a completion 409, as a ci that predates it did.
It records step updates and completions, and counts every request. Tests steer faults
through ``faults``: a queue of statuses to answer the next requests of a kind with (a
log append stores its bytes first, like a server whose answer was lost).
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response


@dataclass
class JobRecord:
    log: bytearray = field(default_factory=bytearray)
    steps: dict[int, dict[str, Any]] = field(default_factory=dict)
    completions: list[dict[str, Any]] = field(default_factory=list)
    cancel: bool = False
    end: int | None = None  # log_size of the completion: the log takes bytes up to it

    @property
    def log_complete(self) -> bool:
        return self.end is not None and len(self.log) >= self.end


class JobServer:
    """State of the double, shared with the test."""

    def __init__(self) -> None:
        self.jobs: dict[int, JobRecord] = defaultdict(JobRecord)
        self.requests: list[tuple[str, int]] = []  # (kind, job id) in arrival order
        self.faults: dict[str, list[int]] = defaultdict(list)
        self.max_body: int | None = None
        self.wants_whole_log = False
        self.log_delay = 0.0  # seconds each log append waits before it is handled
        self.gone: set[int] = set()
        self.lock = threading.Lock()
        self.app = self._build()

    def count(self, kind: str, job_id: int | None = None) -> int:
        with self.lock:
            return sum(1 for k, j in self.requests if k == kind and (job_id is None or j == job_id))

    def _fault(self, kind: str) -> int | None:
        queue = self.faults.get(kind)
        return queue.pop(0) if queue else None

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/jobs/{job_id}/log")
        async def append(job_id: int, offset: int, request: Request) -> Response:
            data = await request.body()
            if self.log_delay:
                await asyncio.sleep(self.log_delay)
            with self.lock:
                self.requests.append(("log", job_id))
                if job_id in self.gone:
                    return JSONResponse({"error": "no such job"}, 404)
                if self.max_body is not None and len(data) > self.max_body:
                    return JSONResponse({"error": "too large"}, 413)
                job = self.jobs[job_id]
                size = len(job.log)
                if offset > size:
                    return JSONResponse({"error": "offset past the end", "size": size}, 409)
                if job.end is not None and offset + len(data) > max(job.end, size):
                    return JSONResponse({"error": "past the end of the job's log"}, 409)
                skip = size - offset
                if skip < len(data):
                    job.log += data[skip:]
                status = self._fault("log")
                if status is not None:
                    return JSONResponse({"error": "injected"}, status)
                return JSONResponse({"size": len(job.log)})

        @app.post("/jobs/{job_id}/steps")
        async def steps(job_id: int, request: Request) -> Response:
            body = await request.json()
            with self.lock:
                self.requests.append(("steps", job_id))
                status = self._fault("steps")
                if status is not None:
                    return JSONResponse({"error": "injected"}, status)
                for step in body["steps"]:
                    self.jobs[job_id].steps[step["number"]] = step
            return Response(status_code=204)

        @app.post("/jobs/{job_id}/complete")
        async def complete(job_id: int, request: Request) -> Response:
            body = await request.json()
            with self.lock:
                self.requests.append(("complete", job_id))
                status = self._fault("complete")
                if status is not None:
                    return JSONResponse({"error": "injected"}, status)
                job = self.jobs[job_id]
                if self.wants_whole_log and body["log_size"] > len(job.log):
                    return JSONResponse({"error": "log_size is more than the log holds"}, 409)
                if not job.completions:
                    job.completions.append({**body, "held": len(job.log)})
                    job.end = body["log_size"]
            return JSONResponse({"id": job_id})

        @app.post("/jobs/{job_id}/heartbeat")
        async def heartbeat(job_id: int) -> Response:
            with self.lock:
                self.requests.append(("heartbeat", job_id))
                if job_id in self.gone:
                    return JSONResponse({"error": "no such job"}, 404)
                return JSONResponse({"cancel": self.jobs[job_id].cancel})

        return app
