"""Batch inference in Personalize's JSON-lines format, streamed in chunks (bounded memory).

User input (USER_PERSONALIZATION-style):
    {"userId": "4638"}
    -> {"input": {"userId": "4638"}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null}
Related-items input (SIMS-style; every recipe answers it, see `Predictor.recommend_related`):
    {"itemId": "105"}
    -> {"input": {"itemId": "105"}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null}
Personalized-ranking input (PERSONALIZED_RANKING-style; every recipe answers it, see `Predictor.rank`):
    {"userId": "891", "itemList": ["27", "886", "101"]}
    -> {"input": {...}, "output": {"recommendedItems": ["886", "27", "101"], "scores": [0.48, 0.29, 0.23]},
        "error": null}
    the whole list re-ordered (up to 500 items; the user's own items included, the job's filter removes
    items), scores a softmax over the known items; items the solution does not know come last, score null.
Lines may carry Personalize's per-line `filterValues` (used with the job's filter) and `context`.
With popular back-fill (`backfill_popular`, `--backfill-popular`), lists that the filter leaves short are
filled with popular items that pass it: their score is null, and each output has a parallel `reasons`
list (null, or ["Popular item"] for a back-filled item).
The queried item is never recommended. A line with both is a related-items query for `itemId` that
also leaves out the user's own items. A bad line (not JSON, neither id, an id that is not a non-empty
string) gets {"input": <the line>, "output": null, "error": "<what is wrong>"}; other lines are unaffected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO

from tqdm import tqdm

from personalize_torch.errors import InputError
from personalize_torch.filters import Filter
from personalize_torch.serving.inference.personalized_ranking import MAX_INPUT_ITEMS
from personalize_torch.serving.inference.predictor import MAX_RESULTS, Predictor, RequestOptions
from personalize_torch.serving.jobs.jsonlines_job import Results, in_batches, run_jsonlines_job

CHUNK_LINES = 512   # lines scored in one model batch


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
    if obj.get("itemList") is not None:
        error = _item_list_error(obj)
        if error is not None:
            return obj, error
    for key in ("filterValues", "context"):
        value = obj.get(key)
        if value is not None and (not isinstance(value, dict) or
                                  not all(isinstance(v, str) for v in value.values())):
            return obj, f"{key} must be an object of strings"
    return obj, None


def _item_list_error(obj: dict) -> str | None:
    """What is wrong with a personalized-ranking line (userId + itemList), None when nothing is."""
    items = obj["itemList"]
    if obj.get("itemId") is not None:
        return "itemList and itemId cannot be combined: itemList ranks items for a userId"
    if obj.get("userId") is None:
        return "userId is required with itemList"
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        return "itemList must be a list of non-empty item id strings"
    if len(items) > MAX_INPUT_ITEMS:
        return f"itemList has {len(items)} items; at most {MAX_INPUT_ITEMS} can be ranked"
    return None


def _recommend(predictor: Predictor, objs: list[dict], num_results: int, exclude_seen: bool,
               job_filter: Filter | None, job_filter_values: dict | None, backfill_popular: bool = False) -> list:
    """Recommendations for valid input objects, in order (user, item and item-list lines batched apart)."""
    def options(group: list[dict]) -> RequestOptions:
        return RequestOptions(filter=job_filter,
                              filter_values=[{**(job_filter_values or {}), **(o.get("filterValues") or {})}
                                             for o in group],
                              context=[o.get("context") for o in group], backfill_popular=backfill_popular)

    by_item = [o for o in objs if o.get("itemId") is not None]
    by_list = [o for o in objs if o.get("itemList") is not None]
    by_user = [o for o in objs if o.get("itemId") is None and o.get("itemList") is None]
    user_recs = iter(predictor.recommend([o["userId"] for o in by_user], num_results, exclude_seen,
                                         options(by_user)) if by_user else [])
    item_recs = iter(predictor.recommend_related([o["itemId"] for o in by_item], num_results,
                                                 [o.get("userId") for o in by_item], exclude_seen,
                                                 options(by_item)) if by_item else [])
    ranked = iter(predictor.rank([o["userId"] for o in by_list], [o["itemList"] for o in by_list],
                                 options(by_list)) if by_list else [])
    return [next(item_recs) if o.get("itemId") is not None else next(ranked) if o.get("itemList") is not None
            else next(user_recs) for o in objs]


def _results(predictor: Predictor, lines: list[str], num_results: int, exclude_seen: bool,
             job_filter: Filter | None = None, job_filter_values: dict | None = None,
             backfill_popular: bool = False) -> Iterator[dict]:
    parsed = [_parse(line) for line in lines]
    good = [obj for obj, err in parsed if err is None]
    args = (num_results, exclude_seen, job_filter, job_filter_values, backfill_popular)
    try:
        recs = iter(_recommend(predictor, good, *args))
    except InputError:
        # Some line's request is bad (e.g. a missing INCLUDE filter parameter): score line by line so
        # the error lands on that line only.
        recs = iter(_one_by_one(predictor, good, *args))
    for obj, err in parsed:
        if err is not None:
            yield {"input": obj, "output": None, "error": err}
            continue
        items = next(recs)
        if isinstance(items, InputError):
            yield {"input": obj, "output": None, "error": items.describe()}
            continue
        output = {"recommendedItems": [r.item_id for r in items],
                  "scores": [round(r.score, 8) if r.score is not None else None for r in items]}
        if backfill_popular:
            output["reasons"] = [list(r.reason) if r.reason else None for r in items]
        yield {"input": obj, "output": output, "error": None}


def _one_by_one(predictor, objs, num_results, exclude_seen, job_filter, job_filter_values,
                backfill_popular=False) -> list:
    out = []
    for obj in objs:
        try:
            out.append(_recommend(predictor, [obj], num_results, exclude_seen, job_filter, job_filter_values,
                                  backfill_popular)[0])
        except InputError as err:
            out.append(err)
    return out


def chunk_results(predictor: Predictor, num_results: int = 25, exclude_seen: bool = True,
                  job_filter: Filter | None = None, job_filter_values: dict | None = None,
                  backfill_popular: bool = False) -> Results:
    """The job as a function from a chunk's lines to their results (see jsonlines_job.py), scoring
    CHUNK_LINES lines at a time; with a filter (Personalize's batch job filterArn), its parameters come from
    `job_filter_values` and each line's `filterValues`; `backfill_popular` fills short lists with popular
    items (see the module docstring)."""
    if not 1 <= num_results <= MAX_RESULTS:
        raise ValueError(f"num_results must be between 1 and {MAX_RESULTS}")
    return in_batches(lambda lines: _results(predictor, lines, num_results, exclude_seen, job_filter,
                                             job_filter_values, backfill_popular), CHUNK_LINES)


def run_batch_inference(predictor: Predictor, lines: Iterable[str], out: IO[str], num_results: int = 25,
                        exclude_seen: bool = True, progress: tqdm | None = None, job_filter: Filter | None = None,
                        job_filter_values: dict | None = None, backfill_popular: bool = False) -> dict[str, int]:
    """Score every non-blank input line and write one output line each to `out`, in input order (the
    arguments as in `chunk_results`); returns {"lines": n, "errors": n}."""
    return run_jsonlines_job(lines, out, CHUNK_LINES, chunk_results(
        predictor, num_results, exclude_seen, job_filter, job_filter_values, backfill_popular), progress)
