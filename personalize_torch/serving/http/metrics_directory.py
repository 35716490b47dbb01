"""Metrics summed over the server's worker processes: prometheus-client's multiprocess mode.

serve.py with `workers=N` forks N processes; each counts its own requests. So that one scrape of `GET /metrics`,
answered by any worker, reports them all, the parent (before it imports prometheus-client, which chooses its
mode from the environment once, when imported) creates a fresh temporary directory and names it in
PROMETHEUS_MULTIPROC_DIR (`shared_metrics_directory`); the workers inherit it, each writes its values to its own
files there, and a scrape reads and sums every file (`ServerMetrics.exposition`). When a worker exits, the
parent marks it dead (`worker_exited`): its gauges leave the scrape, its counts stay in the totals. The
directory is removed when the server stops.

One process (workers=1) keeps its values in memory; `metrics_dir()` is then None, unless the environment
already names a directory.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def shared_metrics_directory() -> Iterator[str]:
    """A fresh directory named in PROMETHEUS_MULTIPROC_DIR for the duration of the block, then removed (and the
    variable restored). Enter it before prometheus-client is imported: a RuntimeError otherwise, as its
    metrics would then count each process apart."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the metrics directory was set: "
                           "worker processes would each count apart")
    path = tempfile.mkdtemp(prefix="personalize-torch-metrics-")
    previous = os.environ.get(ENVIRONMENT)
    os.environ[ENVIRONMENT] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(ENVIRONMENT, None)
        else:
            os.environ[ENVIRONMENT] = previous
        shutil.rmtree(path, ignore_errors=True)


def metrics_dir() -> str | None:
    """The multiprocess directory this process's metrics are written to, if any."""
    return os.environ.get(ENVIRONMENT) or None


def worker_exited(path: str, pid: int) -> None:
    """Worker `pid` is gone: its live gauges leave the scrape (its counters and histograms stay summed)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)
