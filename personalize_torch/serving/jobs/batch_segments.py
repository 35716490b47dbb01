"""Batch segment jobs in Personalize's JSON-lines format, streamed in chunks of queries.

    {"itemId": "105"}
    -> {"input": {"itemId": "105"}, "output": {"recommendedUsers": ["106", "107", "49"], "scores": [...]}, "error": null}
    {"itemAttributes": "ITEMS.GENRES = \\"Comedy\\" AND ITEMS.GENRES = \\"Action\\""}
    -> {"input": {"itemAttributes": "..."}, "output": {"recommendedUsers": [...], "scores": [...]}, "error": null}

Users come in descending probability (see `user_segments`); users who already have a queried item are left out
of its segment unless the job keeps them (`--include-seen`). A bad line (not JSON, neither key, an unknown item,
an expression that does not parse or matches no item) gets {"input": ..., "output": null, "error": "..."};
other lines are unaffected. Each chunk of up to CHUNK_QUERIES queries is one pass over the users.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import IO

import torch
from tqdm import tqdm

from personalize_torch.errors import InputError
from personalize_torch.filters import Filter
from personalize_torch.serving.jobs.jsonlines_job import Results, in_batches, run_jsonlines_job
from personalize_torch.serving.jobs.user_segments import UserSegmenter

CHUNK_QUERIES = 256   # queries scored in one pass over the users


def _query(segmenter: UserSegmenter, line: str) -> tuple[object, torch.Tensor | None, str | None]:
    """(input, item mask, error) of one line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        return line.rstrip("\n"), None, f"invalid JSON: {err.msg} at character {err.pos}"
    if not isinstance(obj, dict) or ("itemId" in obj) == ("itemAttributes" in obj):
        return obj, None, ("each line must be a JSON object with one of itemId or itemAttributes, such as "
                           "{\"itemId\": \"105\"}")
    try:
        if "itemId" in obj:
            if not isinstance(obj["itemId"], str) or not obj["itemId"]:
                raise InputError("must be a non-empty string", column="itemId")
            return obj, segmenter.item_query(obj["itemId"]), None
        return obj, segmenter.attribute_query(obj["itemAttributes"]), None
    except InputError as err:
        return obj, None, err.describe()


def segment_results(segmenter: UserSegmenter, num_results: int = 25, exclude_seen: bool = True,
                    user_filter: Filter | None = None, filter_values: Mapping[str, str] | None = None) -> Results:
    """The job as a function from a chunk's lines to their results (see jsonlines_job.py), CHUNK_QUERIES
    queries per pass over the users."""
    if user_filter is not None and user_filter.target != "UserID":
        raise InputError("a batch segment job takes a UserID filter, such as 'INCLUDE UserID WHERE Users.AGE >= 30'",
                         column="--filter")

    def results(chunk: list[str]):
        parsed = [_query(segmenter, line) for line in chunk]
        masks = [m for _, m, err in parsed if err is None]
        by_item = torch.tensor([exclude_seen and "itemId" in obj for obj, _, err in parsed if err is None])
        segments = iter(segmenter.segments(torch.stack(masks), num_results, by_item, user_filter, filter_values)
                        if masks else [])
        for obj, _, err in parsed:
            if err is not None:
                yield {"input": obj, "output": None, "error": err}
                continue
            members = next(segments)
            yield {"input": obj, "output": {"recommendedUsers": [m.user_id for m in members],
                                            "scores": [round(m.score, 8) for m in members]}, "error": None}

    return in_batches(results, CHUNK_QUERIES)


def run_batch_segments(segmenter: UserSegmenter, lines: Iterable[str], out: IO[str], num_results: int = 25,
                       exclude_seen: bool = True, user_filter: Filter | None = None,
                       filter_values: Mapping[str, str] | None = None, progress: tqdm | None = None
                       ) -> dict[str, int]:
    """Write one output line per non-blank input line to `out`, in input order."""
    return run_jsonlines_job(lines, out, CHUNK_QUERIES, segment_results(
        segmenter, num_results, exclude_seen, user_filter, filter_values), progress)
