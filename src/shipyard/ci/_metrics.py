"""The ci service's Prometheus metrics (on the service's own registry)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["CiMetrics"]


class CiMetrics:
    """Queue depth, jobs started and finished, claim latency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queued_gauge = Gauge(
            "shipyard_ci_jobs_queued", "Jobs waiting for a runner", registry=registry
        )
        self.queued_total = Counter(
            "shipyard_ci_jobs_enqueued", "Jobs put in the queue (retries included)",
            registry=registry,
        )
        self.started_total = Counter(
            "shipyard_ci_jobs_started", "Jobs handed to a runner", registry=registry
        )
        self.finished_total = Counter(
            "shipyard_ci_jobs_finished", "Jobs that ended", ["conclusion"], registry=registry
        )
        self.pipelines_total = Counter(
            "shipyard_ci_pipelines_created", "Pipelines created", registry=registry
        )
        self.claim_latency = Histogram(
            "shipyard_ci_claim_latency_seconds", "Time from a job being queued to its claim",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
        )

    def watch_queue(self, count: Callable[[], int]) -> None:
        """Read the queue depth from the database at each scrape (right across replicas)."""
        self.queued_gauge.set_function(lambda: float(count()))

    def queued(self, n: int) -> None:
        self.queued_total.inc(n)

    def started(self, waited: float) -> None:
        self.started_total.inc()
        self.claim_latency.observe(max(0.0, waited))

    def finished(self, conclusion: str) -> None:
        self.finished_total.labels(conclusion).inc()

    def pipeline_created(self) -> None:
        self.pipelines_total.inc()
