"""Which items are cold (new), by Amazon Personalize's HRNN-Coldstart rule.

An item is cold when both hold:
- it has at most `max_interactions` events (`cold_start_max_interactions`, default 15), and
- its CREATION_TIMESTAMP is at most `max_duration_days` (`cold_start_max_duration`, default 5.0) days
  before the reference time (`cold_start_relative_from`): `latestItem`, the newest CREATION_TIMESTAMP
  in the catalogue, or `currentTime`, the time of training.
An item whose age is unknown (no CREATION_TIMESTAMP, or a value <= 0, as for items added by UPDATE) is
treated as created at the reference time: with so few interactions it is new to the model. Index 0
(padding) is never cold. Pure numpy, no loops over items.

`hold_out_newest_items` makes the evaluation split for it: the newest items get no training events.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.errors import InputError

RELATIVE_FROM = ("latestItem", "currentTime")
DAY = 86400.0


def known_creation(created: np.ndarray) -> np.ndarray:
    """True where a creation timestamp is known (finite and > 0)."""
    created = np.asarray(created, dtype=float)
    return np.isfinite(created) & (created > 0)


def cold_reference_time(created: np.ndarray, relative_from: str, now: float) -> float:
    """The time item ages are measured from: the newest known creation time (`latestItem`) or `now`."""
    if relative_from == "currentTime":
        return float(now)
    known = known_creation(created)
    return float(np.asarray(created, dtype=float)[known].max()) if known.any() else float(now)


def cold_item_mask(counts: np.ndarray, created: np.ndarray, max_interactions: float, max_duration_days: float,
                   reference_time: float) -> np.ndarray:
    """(n_items,) True for cold items; `counts` and `created` (epoch seconds) are per item index."""
    counts = np.asarray(counts, dtype=float)
    created = np.asarray(created, dtype=float)
    age_days = np.where(known_creation(created), (reference_time - np.nan_to_num(created)) / DAY, 0.0)
    cold = (counts <= max_interactions) & (age_days <= max_duration_days)
    cold[:1] = False
    return cold


def hold_out_newest_items(interactions: pd.DataFrame, items: pd.DataFrame, n_newest: int
                          ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """A cold-start evaluation split: the `n_newest` items by CREATION_TIMESTAMP get no training events.

    The cut is the creation time of the oldest of them; training keeps the events before it. Returns
    (training events, every event at or after the cut, the newest items' ids): the later events hold what
    users went on to choose among the new items, and the other items' events a served model reads as
    the users' recent events at request time."""
    if C.CREATION_TIMESTAMP not in items.columns:
        raise InputError("a cold-start split needs CREATION_TIMESTAMP in the Items dataset", column=C.CREATION_TIMESTAMP)
    if not 1 <= n_newest < len(items):
        raise InputError(f"expected 1 <= n_newest < {len(items)} items, got {n_newest}", column="n_newest")
    newest = items.sort_values(C.CREATION_TIMESTAMP, kind="stable").tail(n_newest)
    before = interactions[C.TIMESTAMP] < float(newest[C.CREATION_TIMESTAMP].min())
    return (interactions[before].reset_index(drop=True), interactions[~before].reset_index(drop=True),
            newest[C.ITEM_ID].astype(str).tolist())
