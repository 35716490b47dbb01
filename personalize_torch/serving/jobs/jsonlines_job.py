"""The streaming loop every batch job shares: JSON lines in, one JSON line out per input line, in order.

Non-blank input lines are gathered into chunks of `chunk_size`; `results(chunk)` turns a chunk into one
result dict per line (each with an "error" key, None when the line succeeded); results are written as
they come, so memory stays bounded by one chunk whatever the input size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from tqdm import tqdm


def run_jsonlines_job(lines: Iterable[str], out: IO[str], chunk_size: int,
                      results: Callable[[list[str]], Iterator[dict]], progress: tqdm | None = None) -> dict[str, int]:
    """Run `results` over chunks of `lines`, writing each result; returns {"lines": n, "errors": n}."""
    counts = {"lines": 0, "errors": 0}
    chunk: list[str] = []

    def flush() -> None:
        for result in results(chunk):
            out.write(json.dumps(result) + "\n")
            counts["lines"] += 1
            counts["errors"] += result.get("error") is not None
        if progress is not None:
            progress.update(sum(len(line.encode()) for line in chunk))
        chunk.clear()

    for line in lines:
        if not line.strip():
            continue
        chunk.append(line)
        if len(chunk) >= chunk_size:
            flush()
    if chunk:
        flush()
    return counts
