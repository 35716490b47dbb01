"""Splitting a chunked batch job (job_parts.py) between processes and machines.

Shard i of n scores the chunks k with k % n == i: chunk k is input lines k*size+1 .. (k+1)*size, so every
chunk is scored in the same batches whichever shard scores it and the merged output is the same bytes as one
process writes. Every shard reads the whole input (reading is cheap next to scoring) and skips other
shards' chunks and chunks already written. A shard comes from `--shard i/n`, or from torchrun's RANK and
WORLD_SIZE environment variables (one machine or several: `torchrun --nnodes ... -m personalize_torch.batch`).

Why not Lightning's Trainer.predict under DDP: its DistributedSampler pads the last batches with repeated
rows, its writers have no notion of work already done, and the work here is parsing, model calls and file
writes that need no process group; chunk files on a shared directory are the whole coordination.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tqdm import tqdm

from personalize_torch.errors import InputError
from personalize_torch.serving.jobs.job_parts import JobParts
from personalize_torch.serving.jobs.jsonlines_job import Results, line_chunks, nonblank


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise InputError(f"shard {self.index}/{self.count}: expected i/n with 0 <= i < n", column="--shard")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'i/n' (i counted from 0)."""
        index, sep, count = text.partition("/")
        if not (sep and index.strip().isdigit() and count.strip().isdigit()):
            raise InputError(f"expected i/n such as 0/4, got {text!r}", column="--shard")
        return cls(int(index), int(count))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Shard | None:
        """The shard torchrun (or any launcher setting RANK and WORLD_SIZE) gives this process; None when
        there is no such launcher or it runs a single process."""
        rank, world = environ.get("RANK"), environ.get("WORLD_SIZE")
        if rank is None or world is None:
            return None
        if not (rank.isdigit() and world.isdigit()):
            raise InputError(f"RANK={rank!r} and WORLD_SIZE={world!r} must be whole numbers", column="environment")
        return cls(int(rank), int(world)) if int(world) > 1 else None

    def owns(self, chunk: int) -> bool:
        return chunk % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


ALL = Shard(0, 1)


def chunk_lines_total(chunks: Iterable[int], chunk_size: int, n_lines: int) -> int:
    """How many input lines the given chunks cover."""
    return sum(min(chunk_size, n_lines - k * chunk_size) for k in chunks)


def todo(parts: JobParts, n_chunks: int, shard: Shard = ALL) -> list[int]:
    """The chunks this shard still has to write."""
    return [k for k in parts.missing(n_chunks) if shard.owns(k)]


def run_shard(lines: Iterable[str], chunk_size: int, parts: JobParts, results: Results, shard: Shard = ALL,
              progress: tqdm | None = None) -> dict[str, int]:
    """Write every chunk of `lines` that `shard` owns and `parts` lacks, one chunk in memory at a time;
    returns {"lines", "errors", "chunks"} written by this call. `progress` advances by input lines."""
    counts = {"lines": 0, "errors": 0, "chunks": 0}
    done = parts.done()
    for k, chunk in enumerate(line_chunks(lines, chunk_size)):
        if not shard.owns(k) or k in done:
            continue
        written = parts.write_chunk(k, results(nonblank(chunk)))
        counts = {"lines": counts["lines"] + written["lines"], "errors": counts["errors"] + written["errors"],
                  "chunks": counts["chunks"] + 1}
        if progress is not None:
            progress.update(len(chunk))
    return counts


def wait_for_chunks(parts: JobParts, n_chunks: int, interval_s: float = 1.0) -> None:
    """Return once every chunk is written (by the other shards)."""
    while parts.missing(n_chunks):
        time.sleep(interval_s)
