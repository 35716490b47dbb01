"""Concurrent requests scored together: one model pass for many users.

A model call for eight users costs far less than eight calls for one (most of a one-user forward pass
is per-operation overhead, not arithmetic; bench/RESULTS.md, "Serving with micro-batching"). Which
requests may share a call is `batched_recommendations`' business. `MicroBatcher` has one worker thread:
a request thread hands its row over and waits; the worker takes every row waiting at that moment (up to
`max_batch`), groups rows that can share one call (same `key`: campaign, filter, numResults, ...), runs
each group once and hands each row its own result. Nothing waits on purpose: under no load a request
is computed as soon as it arrives; under load, the rows that arrived while the previous batch was being
computed form the next batch. A group whose call fails is re-run row by row, so one bad request's error
reaches only that request. `on_batch(size, waits)`, when given, is told of every model call that succeeded:
its number of rows and how long each row waited in the queue for it (the server's metrics).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RunGroup = Callable[[Sequence[Any]], Sequence[Any]]  # rows -> one result per row, in order
BatchObserver = Callable[[int, Sequence[float]], None]  # (rows in the call, each row's seconds in the queue)


@dataclass
class _Job:
    key: Hashable
    row: Any
    run: RunGroup
    future: Future = field(default_factory=Future)
    submitted: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(self, max_batch: int = 32, on_batch: BatchObserver | None = None):
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.max_batch = max_batch
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batch_sizes: deque[int] = deque(maxlen=10_000)  # rows per model call (tests, benchmarks)

    def submit(self, key: Hashable, row: Any, run: RunGroup) -> Any:
        """`run([row])[0]`, computed together with other rows submitted under the same `key` meanwhile.
        `run` must give each row the answer it would get alone. Raises what `run` raised for this row."""
        return self.submit_future(key, row, run).result()

    def submit_future(self, key: Hashable, row: Any, run: RunGroup) -> Future:
        """`submit` without waiting: a Future of the row's result (`asyncio.wrap_future` it in a coroutine)."""
        job = _Job(key, row, run)
        self._ensure_worker()
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Stop the worker once the rows already submitted are done."""
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=30)
                self._thread = None

    def _ensure_worker(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, name="micro-batcher", daemon=True)
                    self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            stop = False
            while len(jobs) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
            groups: dict[Hashable, list[_Job]] = {}
            for j in jobs:
                groups.setdefault(j.key, []).append(j)
            for group in groups.values():
                self._run(group)
            if stop:
                return

    def _run(self, group: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            results = group[0].run([j.row for j in group])
            if len(results) != len(group):
                raise RuntimeError(f"{len(results)} results for {len(group)} rows")
        except Exception as err:  # noqa: BLE001 - re-run alone so the error reaches only its own request
            if len(group) == 1:
                group[0].future.set_exception(err)
                return
            for j in group:
                self._run([j])
            return
        self.batch_sizes.append(len(group))
        if self.on_batch is not None:   # before the results: a request answered has been counted
            try:
                self.on_batch(len(group), [started - j.submitted for j in group])
            except Exception:  # a failed report must not keep the rows from their results
                log.exception("reporting a micro-batch failed")
        for j, result in zip(group, results):
            j.future.set_result(result)
