"""A user as a campaign sees them: their metadata (the Users table), and their newest events, those of the
solution version's stored history and those streamed with PutEvents (read from the event store as
GetRecommendations reads them), each with the item's metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.serving.console.item_lookup import item_ids_metadata, item_metadata
from personalize_torch.serving.events.event_store import EventStore
from personalize_torch.serving.inference.predictor import Predictor


def text(value) -> str | None:
    """A table value as text (None for a missing one); whole numbers without a decimal point."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def user_metadata(predictor: Predictor, user_id: str) -> dict[str, str]:
    users = predictor.solution.users
    if users is None or C.USER_ID not in users.columns:
        return {}
    rows = users[users[C.USER_ID].astype(str) == user_id]
    if rows.empty:
        return {}
    row = rows.iloc[-1]
    values = {str(c): text(row[c]) for c in users.columns if c != C.USER_ID}
    return {c: v for c, v in values.items() if v is not None}


def stored_history(predictor: Predictor, user_id: str, limit: int) -> tuple[bool, int, list[dict]]:
    """(known, stored history length, its newest `limit` events as `api_models.HistoryEvent`, newest first)."""
    solution = predictor.solution
    row = int(solution.history_rows([user_id])[0])
    if row < 0:
        return False, 0, []
    histories = solution.histories
    start, end = int(histories.offsets[row]), int(histories.offsets[row + 1])
    first = max(start, end - limit)
    items = histories.item_idx[first:end][::-1]
    stamps = histories.timestamp[first:end][::-1]
    types = [None] * len(items)
    if histories.event_type is not None and solution.event_type_vocab is not None:
        codes = histories.event_type[first:end][::-1]
        types = [str(solution.event_type_vocab.to_id(c)) if c > 0 else None for c in codes]
    ids = solution.item_vocab.to_id(items) if len(items) else []
    return True, end - start, [{"itemId": str(i), "timestamp": float(t), "eventType": e, "source": "stored",
                                "metadata": m}
                               for i, t, e, m in zip(ids, stamps, types, item_metadata(predictor, items))]


def streamed_history(predictor: Predictor, events: EventStore, user_id: str, limit: int) -> list[dict]:
    """The user's newest `limit` events in the event store, newest first, as `api_models.HistoryEvent`."""
    stored = events.user_events(user_id, limit)[::-1]
    metadata = item_ids_metadata(predictor, [e.item_id for e in stored])
    return [{"itemId": e.item_id, "timestamp": float(e.sent_at), "eventType": e.event_type, "source": "streamed",
             "metadata": m} for e, m in zip(stored, metadata)]


def user_lookup(predictor: Predictor, events: EventStore, user_id: str, limit: int) -> dict:
    """`api_models.UserLookup` without the campaign: the newest `limit` events of both kinds together."""
    known, n_stored, stored = stored_history(predictor, user_id, limit)
    streamed = streamed_history(predictor, events, user_id, limit)
    history = sorted(stored + streamed, key=lambda e: e["timestamp"], reverse=True)[:limit]
    return {"userId": user_id, "known": known, "metadata": user_metadata(predictor, user_id),
            "storedEvents": n_stored, "streamedEvents": len(streamed), "history": history}
