"""Worker processes on one machine: start the commands, wait for all, stop the rest when one fails.

Each worker is the same command a user would run on another machine (`--shard i/n`), so the single-machine
launcher is the several-machine recipe, minus the machines.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence


def worker_env(n_workers: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment for one of `n_workers` workers: the machine's cores shared between them (unless
    OMP_NUM_THREADS is set), so N workers do not each start a thread per core."""
    env = dict(environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n_workers)))
    return env


def run_workers(commands: Sequence[Sequence[str]], env: Mapping[str, str] | None = None,
                on_tick: Callable[[], None] | None = None, interval_s: float = 0.5) -> tuple[int, int | None]:
    """Run the commands at once; returns (exit status, index of the failed worker or None). When one exits
    with an error the others are stopped (SIGTERM); `on_tick` runs every `interval_s` while they work."""
    procs = [subprocess.Popen(list(cmd), env=dict(env) if env is not None else None) for cmd in commands]
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = next((i for i, c in enumerate(codes) if c not in (None, 0)), None)
            if failed is not None:
                return codes[failed], failed
            if all(c == 0 for c in codes):
                return 0, None
            if on_tick is not None:
                on_tick()
            time.sleep(interval_s)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
