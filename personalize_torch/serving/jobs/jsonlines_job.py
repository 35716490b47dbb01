"""What every batch job shares: JSON lines in, one JSON line out per non-blank input line, in input order.

Input is cut into chunks by position: chunk k is input lines k*size+1 .. (k+1)*size (blank lines count
and get no output line), so a chunk holds the same lines whoever scores it. `results(lines)` turns a
chunk's non-blank lines into one result dict each ({"input", "output", "error"}, error None when the line
succeeded); jobs score a chunk in fixed sub-batches (`in_batches`). A model scores a row the same way in the
same batch but only up to float rounding in another, so fixed chunks are what let a resumed or sharded job
(job_parts.py, shards.py) write the same bytes as one uninterrupted run. Results are written as they come:
memory stays bounded by one chunk whatever the input size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO

from tqdm import tqdm

from personalize_torch.errors import InputError

Results = Callable[[list[str]], Iterator[dict]]   # a chunk's non-blank lines -> one result dict per line

_GOOD_END = ', "error": null}\n'


def result_line(result: dict) -> str:
    """One output line (newline included), "error" always last so `is_error_line` can read it back."""
    return json.dumps({**{k: v for k, v in result.items() if k != "error"}, "error": result["error"]}) + "\n"


def is_error_line(line: str) -> bool:
    """Whether an output line written by `result_line` carries an error (no JSON parsing)."""
    return not line.endswith(_GOOD_END)


def write_results(results: Iterable[dict], out: IO[str]) -> dict[str, int]:
    """Write each result as it comes; returns {"lines": n, "errors": n}."""
    counts = {"lines": 0, "errors": 0}
    for result in results:
        out.write(result_line(result))
        counts["lines"] += 1
        counts["errors"] += result["error"] is not None
    return counts


def line_chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive groups of `size` input lines (blank ones included); the last may be shorter."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    it = iter(lines)
    while chunk := list(islice(it, size)):
        yield chunk


def nonblank(chunk: list[str]) -> list[str]:
    return [line for line in chunk if line.strip()]


def in_batches(results: Results, batch_size: int) -> Results:
    """`results` applied to consecutive slices of `batch_size` lines of a chunk (a job's model batch)."""
    def batched(lines: list[str]) -> Iterator[dict]:
        for start in range(0, len(lines), batch_size):
            yield from results(lines[start:start + batch_size])
    return batched


def run_jsonlines_job(lines: Iterable[str], out: IO[str], chunk_size: int, results: Results,
                      progress: tqdm | None = None) -> dict[str, int]:
    """Run `results` over chunks of `lines`, writing each result to `out`; returns {"lines": n, "errors": n}.
    `progress` advances by input lines."""
    counts = {"lines": 0, "errors": 0}
    for chunk in line_chunks(lines, chunk_size):
        done = write_results(results(nonblank(chunk)), out)
        counts = {key: counts[key] + done[key] for key in counts}
        if progress is not None:
            progress.update(len(chunk))
    return counts


def read_lines(path: str | Path) -> Iterator[str]:
    """The lines of a UTF-8 file without their line ends ("\\n" or "\\r\\n"), one at a time. Only "\\n" ends
    a line, so `scan_input` counts the same lines; a line that is not UTF-8 is an InputError naming it."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"not UTF-8 text (byte {err.start + 1} of the line)", file=str(path),
                                 line=number) from None
            yield line.removesuffix("\n").removesuffix("\r")


def scan_input(path: str | Path, block_size: int = 1 << 20) -> tuple[str, int]:
    """(sha256 hex digest, number of lines) of a file, read in blocks: what a job's input is, for resuming."""
    digest, n_newlines, last = hashlib.sha256(), 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(block_size):
            digest.update(block)
            n_newlines += block.count(b"\n")
            last = block[-1:]
    return digest.hexdigest(), n_newlines + (last != b"\n")
