"""Batch inference in Personalize's JSON-lines format, streamed in chunks (bounded memory).

Input line:  {"userId": "4638"}
Output line: {"input": {"userId": "4638"}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null}
A bad line gets {"input": <the line>, "output": null, "error": "<what is wrong>"}; other lines are unaffected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO

from tqdm import tqdm

from personalize_torch.serving.predictor import MAX_RESULTS, Predictor

CHUNK_LINES = 512


def _parse(line: str) -> tuple[object, str | None]:
    """(input, error) for one line: the parsed object, or the raw text with an error message."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        return line.rstrip("\n"), f"invalid JSON: {err.msg} at character {err.pos}"
    if not isinstance(obj, dict):
        return obj, "each line must be a JSON object such as {\"userId\": \"42\"}"
    user_id = obj.get("userId")
    if not isinstance(user_id, str) or not user_id:
        return obj, "userId is required and must be a non-empty string"
    return obj, None


def _results(predictor: Predictor, lines: list[str], num_results: int, exclude_seen: bool) -> Iterator[dict]:
    parsed = [_parse(line) for line in lines]
    valid = [obj["userId"] for obj, err in parsed if err is None]
    recs = iter(predictor.recommend(valid, num_results, exclude_seen) if valid else [])
    for obj, err in parsed:
        if err is not None:
            yield {"input": obj, "output": None, "error": err}
            continue
        items = next(recs)
        yield {"input": obj, "output": {"recommendedItems": [r.item_id for r in items],
                                        "scores": [round(r.score, 8) for r in items]}, "error": None}


def run_batch_inference(predictor: Predictor, lines: Iterable[str], out: IO[str], num_results: int = 25,
                        exclude_seen: bool = True, progress: tqdm | None = None) -> dict[str, int]:
    """Score every non-blank input line and write one output line each, in input order."""
    if not 1 <= num_results <= MAX_RESULTS:
        raise ValueError(f"num_results must be between 1 and {MAX_RESULTS}")
    counts = {"lines": 0, "errors": 0}
    chunk: list[str] = []

    def flush() -> None:
        for result in _results(predictor, chunk, num_results, exclude_seen):
            out.write(json.dumps(result) + "\n")
            counts["lines"] += 1
            counts["errors"] += result["error"] is not None
        if progress is not None:
            progress.update(sum(len(line.encode()) for line in chunk))
        chunk.clear()

    for line in lines:
        if not line.strip():
            continue
        chunk.append(line)
        if len(chunk) >= CHUNK_LINES:
            flush()
    if chunk:
        flush()
    return counts
