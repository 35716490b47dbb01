"""Batch inference in Personalize's JSON-lines format, streamed in chunks (bounded memory).

User input (USER_PERSONALIZATION-style):
    {"userId": "4638"}
    -> {"input": {"userId": "4638"}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null}
Related-items input (SIMS-style; every recipe answers it, see `Predictor.recommend_related`):
    {"itemId": "105"}
    -> {"input": {"itemId": "105"}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null}
The queried item is never recommended. A line with both is a related-items query for `itemId` that
also leaves out the user's own items. A bad line (not JSON, neither id, an id that is not a non-empty
string) gets {"input": <the line>, "output": null, "error": "<what is wrong>"}; other lines are unaffected.
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
        return obj, "each line must be a JSON object such as {\"userId\": \"42\"} or {\"itemId\": \"105\"}"
    given = [key for key in ("userId", "itemId") if obj.get(key) is not None]  # null counts as absent
    if not given:
        return obj, "userId or itemId is required"
    for key in given:
        if not isinstance(obj[key], str) or not obj[key]:
            return obj, f"{key} must be a non-empty string"
    return obj, None


def _results(predictor: Predictor, lines: list[str], num_results: int, exclude_seen: bool) -> Iterator[dict]:
    parsed = [_parse(line) for line in lines]
    good = [obj for obj, err in parsed if err is None]
    by_item = [obj for obj in good if obj.get("itemId") is not None]
    by_user = [obj["userId"] for obj in good if obj.get("itemId") is None]
    user_recs = iter(predictor.recommend(by_user, num_results, exclude_seen) if by_user else [])
    item_recs = iter(predictor.recommend_related([o["itemId"] for o in by_item], num_results,
                                                 [o.get("userId") for o in by_item], exclude_seen)
                     if by_item else [])
    for obj, err in parsed:
        if err is not None:
            yield {"input": obj, "output": None, "error": err}
            continue
        items = next(item_recs) if obj.get("itemId") is not None else next(user_recs)
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
