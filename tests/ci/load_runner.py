"""A runner process for the throughput test: ``slots`` threads claiming and finishing jobs.

Run as ``python -m tests.ci.load_runner URL TOKEN SLOTS STOP_FILE``; each job costs the
three requests of the protocol (claim, log, complete). When ``STOP_FILE`` exists it
prints the ids of the jobs it ran, one JSON list, and exits.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import httpx


def main(url: str, token: str, slots: int, stop_file: Path) -> None:
    done: list[int] = []
    lock = threading.Lock()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                      timeout=90) as http:

        def slot() -> None:
            while not stop_file.exists():
                response = http.post("/runners/claim", json={"wait": 1, "slots": 1})
                if response.status_code != 200:
                    continue
                a = response.json()
                auth = {"Authorization": f"Bearer {a['token']}"}
                log = f"ran {a['key']}\n".encode()
                http.post(f"/jobs/{a['job_id']}/log", params={"offset": 0}, content=log,
                          headers=auth).raise_for_status()
                http.post(f"/jobs/{a['job_id']}/complete", headers=auth, json={
                    "conclusion": "success", "log_size": len(log),
                    "steps": [{"number": 1, "name": "run", "status": "completed",
                               "conclusion": "success"}],
                }).raise_for_status()
                with lock:
                    done.append(a["job_id"])

        threads = [threading.Thread(target=slot) for _ in range(slots)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print(json.dumps(done))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
