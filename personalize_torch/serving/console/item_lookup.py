"""An item as a solution version knows it: its metadata, how many users have it in their stored histories,
and the items most often in the same users' histories (counted over at most `MAX_USERS_COUNTED` of them)."""

from __future__ import annotations

import numpy as np

from personalize_torch.serving.console.campaign_overview import item_columns
from personalize_torch.serving.inference.predictor import Predictor

MAX_USERS_COUNTED = 50_000


def item_metadata(predictor: Predictor, item_idx: np.ndarray) -> list[dict[str, str]]:
    """Each item index's metadata {column: text} (index 0, an unknown item: {})."""
    idx = np.asarray(item_idx, dtype=np.int64)
    known = idx > 0
    out: list[dict[str, str]] = [{} for _ in range(len(idx))]
    if known.any():
        found = predictor.item_metadata.lookup(idx[known], item_columns(predictor.solution))
        for j, metadata in zip(np.flatnonzero(known), found):
            out[j] = metadata
    return out


def item_ids_metadata(predictor: Predictor, item_ids: list[str | None]) -> list[dict[str, str]]:
    """Each item id's metadata ({} for None or an item the solution version does not know)."""
    idx = predictor.solution.item_vocab.to_idx([i if isinstance(i, str) else "" for i in item_ids])
    return item_metadata(predictor, idx)


def co_occurring(predictor: Predictor, item_idx: int, limit: int) -> tuple[int, int, list[tuple[int, int]]]:
    """(users with the item, its stored events, [(item index, users with both), ...] most first, `limit` of them).
    Vectorized over the histories of the users who have the item."""
    histories = predictor.solution.histories
    events = np.flatnonzero(histories.item_idx == item_idx)
    rows = np.unique(np.searchsorted(histories.offsets, events, side="right") - 1)
    counted = rows[:MAX_USERS_COUNTED]
    starts, ends = histories.offsets[counted], histories.offsets[counted + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return len(rows), len(events), []
    # every event of the counted users: a range per user, laid end to end
    event_idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(total)
    user_of_event = np.repeat(np.arange(len(counted)), lengths)
    n_items = max(int(histories.item_idx.max()), item_idx) + 1
    pairs = np.unique(user_of_event.astype(np.int64) * n_items + histories.item_idx[event_idx])
    counts = np.bincount(pairs % n_items, minlength=n_items)
    counts[[0, item_idx]] = 0
    order = np.argsort(-counts, kind="stable")[:limit]
    return len(rows), len(events), [(int(i), int(counts[i])) for i in order if counts[i] > 0]
