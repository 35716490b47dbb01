"""Several server processes on one port: `serve.py workers=N`.

One Python process serves GetRecommendations on one core (the GIL: request parsing, the predictor's
Python and most of the model's small operations run one at a time). With N processes the kernel spreads
connections across them, and each has its own models, micro-batcher and SQLite connections; PutEvents
from any of them are in the shared events database before the call returns, so every process reads them
at the next request (see `events/deployment_log.py` for deploys and auto-updates).

The parent checks that the port is free, forks the workers (each inherits the campaigns the parent
loaded, and binds its own socket on the port, see `bind_socket`) and watches them: a worker that dies is
started again (with the startup campaigns; it catches up on later deploys from the deployment log);
SIGTERM or SIGINT stops them all gracefully. POSIX only (fork).

Stopping (`exit_on_stop_signals`, in each worker and in a single-process server): on SIGTERM or SIGINT a
server stops accepting connections (its listening socket is closed, so the port is free again once every
process has ended), lets the requests in flight finish and answers them (a PutEvents is committed before it
is answered, so every acknowledged event is stored), runs the app's shutdown and returns; the process exits
with 0. The parent of several workers passes the signal on to each and returns once all have exited.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

QUICK_EXIT_SECONDS = 10.0   # a worker exiting with an error this soon after starting: a setup error, stop
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def exit_on_stop_signals() -> Iterator[None]:
    """Around a uvicorn server's run (`uvicorn.run`, `Server.run`): while it serves, uvicorn handles SIGTERM
    and SIGINT itself (the graceful stop; in-flight requests get its config's `timeout_graceful_shutdown`
    seconds); once stopped, it raises the signal again with the handlers it found, meaning the process to die
    of it. The handlers installed here turn that signal into SystemExit(0): the process ends as a program that
    has finished, `finally` blocks run (the event store is closed) and the exit code is 0. A signal that comes
    before uvicorn handles them (while the app starts) ends the process the same way."""

    def stop(_signum, _frame) -> None:
        raise SystemExit(0)

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def bind_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening socket with SO_REUSEPORT: each worker binds its own on the same port and the kernel
    spreads new connections over them by a hash of the addresses (a socket shared by all workers goes to
    whichever wakes first: 8 connections opened together landed 8/0 as often as 4/4)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def serve_in_processes(run_worker: Callable[[int, socket.socket], None], workers: int, host: str, port: int,
                       pin_cores: bool = True, on_worker_exit: Callable[[int], None] | None = None) -> int:
    """Fork `workers` processes that each call `run_worker(index, listening_socket)` (which serves until
    it is told to stop); restart any that dies; return the exit code once all have stopped. An OSError
    if the port is taken. `pin_cores`: worker i runs on the i-th CPU this process may use (modulo their
    number; Linux): a lower p99 and more requests/s than letting the kernel move them (bench/RESULTS.md,
    "Workers pinned to cores"). `on_worker_exit(pid)`: called in this process for each worker that has
    exited, before it is started again (the metrics' bookkeeping, see `metrics_directory`)."""
    cpus = sorted(os.sched_getaffinity(0)) if pin_cores and hasattr(os, "sched_getaffinity") else []
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    bind_socket(host, port).close()   # the port is free (else OSError here, not in every worker)
    children: dict[int, tuple[int, float]] = {}   # pid -> (worker index, start time)
    stopping = False
    exit_code = 0

    def start(index: int) -> None:
        # SIGTERM / SIGINT wait while a worker is forked: one handled between fork() and `children[pid] = ...`
        # would not reach the new worker (left serving), and the worker must not run the parent's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:  # the worker
                code = 1
                try:
                    for s in STOP_SIGNALS:
                        signal.signal(s, signal.SIG_DFL)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                    if len(cpus) > 1:
                        os.sched_setaffinity(0, {cpus[index % len(cpus)]})
                    run_worker(index, bind_socket(host, port))
                    code = 0
                except SystemExit as err:
                    code = err.code if isinstance(err.code, int) else 1
                except BaseException:  # noqa: BLE001 - report, then leave without running the parent's cleanup
                    traceback.print_exc()
                finally:
                    os._exit(code)
            children[pid] = (index, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        for i in range(workers):
            if not stopping:   # stopped while starting: no more workers
                start(i)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in children:
                continue
            index, started = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if on_worker_exit is not None:
                try:
                    on_worker_exit(pid)
                except Exception:  # bookkeeping must not stop the server
                    log.exception("after worker %d (pid %d) exited", index, pid)
            if stopping:
                continue
            if code > 0 and time.monotonic() - started < QUICK_EXIT_SECONDS:   # not killed by a signal
                log.error("worker %d exited with %d right after starting; stopping the server", index, code)
                exit_code = code
                stop(signal.SIGTERM, None)
                continue
            log.warning("worker %d (pid %d) exited with %d; starting it again", index, pid, code)
            start(index)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return exit_code


def wait_until_serving(url: str, timeout: float = 60.0) -> bool:
    """Poll `GET {url}/ping` until the server answers 200 (True) or `timeout` seconds pass (False): for
    scripts and tests that start `serve.py` in a subprocess."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False
