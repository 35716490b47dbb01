"""The work directory of a resumable batch job, `<output>.parts/` next to its output:

    job.json               what the job is (solution, input digest and line count, options, chunk size), so a
                           run with other arguments never mixes its lines in
    chunk-00000000.jsonl   the output lines of input chunk 0 (jsonlines_job.py), in input order
    chunk-00000001.jsonl   ...

A chunk file is written under a temporary name, fsynced and renamed, so it exists only when complete: a
process killed at any point (SIGKILL included) leaves whole chunks and temporary files. A run skips the
chunks that exist; `merge` concatenates chunks 0, 1, ... into the output the same way (temporary name,
fsync, rename), then removes the directory. Which process scores which chunk (shards.py) does not matter
here, so a job may be resumed with another number of workers.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from personalize_torch.errors import InputError
from personalize_torch.serving.jobs.jsonlines_job import is_error_line, write_results

PARTS_SUFFIX = ".parts"
JOB_FILE = "job.json"
_CHUNK = re.compile(r"chunk-(\d{8,})\.jsonl")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The keys (dotted) whose values differ between two job descriptions."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += differences(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(prefix + key)
    return out


class JobParts:
    """The chunks of one output file's job, finished or not."""

    def __init__(self, output: str | Path):
        self.output = Path(output)
        self.dir = self.output.with_name(self.output.name + PARTS_SUFFIX)

    def chunk_path(self, k: int) -> Path:
        return self.dir / f"chunk-{k:08d}.jsonl"

    def done(self) -> set[int]:
        """The chunks written so far."""
        if not self.dir.is_dir():
            return set()
        return {int(m.group(1)) for e in os.scandir(self.dir) if (m := _CHUNK.fullmatch(e.name))}

    def missing(self, n_chunks: int) -> list[int]:
        done = self.done()
        return [k for k in range(n_chunks) if k not in done]

    def saved_job(self) -> dict | None:
        try:
            return json.loads((self.dir / JOB_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def check(self, job: dict, restart: bool = False) -> set[int]:
        """The chunks already written for `job` (empty for a new job). Work for another job is an InputError
        naming what differs, unless `restart`, which discards it; a directory with no chunks is no work."""
        if restart:
            self.discard()
            return set()
        done, saved = self.done(), self.saved_job()
        if saved == job:
            return done
        if not done:
            return set()
        differs = ", ".join(differences(saved or {}, job)) or "job.json"
        raise InputError(f"holds an unfinished job for {self.output.name} with other arguments or input "
                         f"(differs in: {differs}); run the same command as before to resume it, or add --restart "
                         f"to discard its {len(done)} finished chunk(s)", file=str(self.dir))

    def start(self, job: dict) -> None:
        """Create the directory for `job`, or keep it when it is already this job's (see `check`)."""
        self.check(job)
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.saved_job() == job:
            return
        tmp = self.dir / f"{JOB_FILE}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(job, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.dir / JOB_FILE)   # workers starting together write the same description

    def write_chunk(self, k: int, results: Iterable[dict]) -> dict[str, int]:
        """Write chunk k's results as they come; the chunk file appears, durable, only once all are written."""
        path = self.chunk_path(k)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            counts = write_results(results, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.dir)
        return counts

    def merge(self, n_chunks: int) -> dict[str, int]:
        """Concatenate chunks 0 .. n_chunks-1 into the output (replacing it) and remove the directory;
        returns {"lines": n, "errors": n}. A missing chunk is an InputError naming it."""
        missing = self.missing(n_chunks)
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
            raise InputError(f"{len(missing)} of {n_chunks} chunks not written yet (chunk {shown}); run the "
                             f"workers that score them (chunk k belongs to shard k % n) or run the command "
                             f"without --shard/--merge to score them here", file=str(self.dir))
        self.dir.mkdir(parents=True, exist_ok=True)
        counts = {"lines": 0, "errors": 0}
        tmp = self.dir / f"merged.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as out:
            for k in range(n_chunks):
                with open(self.chunk_path(k), encoding="utf-8") as chunk:
                    for line in chunk:
                        out.write(line)
                        counts["lines"] += 1
                        counts["errors"] += is_error_line(line)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.output)
        _fsync_dir(self.output.parent)
        self.discard()
        return counts

    def discard(self) -> None:
        """Remove the directory: renamed away first (atomic), so a process killed while removing it leaves
        either the whole directory or none; leftovers of such a kill are removed too."""
        trash = self.dir.with_name(f".{self.dir.name}-removing-{os.getpid()}")
        if self.dir.exists():
            os.replace(self.dir, trash)
        for leftover in self.dir.parent.glob(f".{glob.escape(self.dir.name)}-removing-*"):
            shutil.rmtree(leftover, ignore_errors=True)
