"""Interactions encoded as per-user chronological sequences in CSR form.

`UserSequences` holds, for users u = 0..n-1 of its own, the items of user u at
`item_idx[offsets[u]:offsets[u + 1]]`, oldest first, with matching timestamps. Built once with
vectorized numpy: no Python loops over interactions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.ragged import Ragged
from personalize_torch.data.vocab import Vocab


@dataclass
class UserSequences:
    user_idx: np.ndarray   # (n_users,) index in the user vocabulary
    offsets: np.ndarray    # (n_users + 1,)
    item_idx: np.ndarray   # (n_events,)
    timestamp: np.ndarray  # (n_events,)
    impressions: Ragged | None = None  # per event: the slate shown (item indices), when the data has one
    context: np.ndarray | None = None  # (n_events, F) per event: contextual field values (index, 0 = none)
    event_type: np.ndarray | None = None  # (n_events,) per event: EVENT_TYPE index (0 = none)

    def __len__(self) -> int:
        return len(self.user_idx)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def items_of(self, row: int) -> np.ndarray:
        return self.item_idx[self.offsets[row]:self.offsets[row + 1]]

    def timestamps_of(self, row: int) -> np.ndarray:
        return self.timestamp[self.offsets[row]:self.offsets[row + 1]]

    def impressions_of_events(self) -> tuple[np.ndarray, np.ndarray]:
        """(impression of each event, index of each impression's first event): one impression can give several
        rows (MIND: a row per click in it, at the impression's time; a purchase row repeating its click's item
        and slate), so a user's consecutive events with the same slate and the same time or the same item are
        one impression. Events without a slate are impressions of their own, with an empty slate."""
        slates = self.impressions
        lengths = slates.lengths
        event = np.repeat(np.arange(len(slates)), lengths)
        # two position-weighted sums identify a slate (its items and their order) with its length
        weight = np.arange(len(slates.values)) - slates.offsets[event]
        keys = np.stack([lengths, np.bincount(event, slates.values * (weight + 1), len(slates)),
                         np.bincount(event, slates.values * (2 * weight + 7) ** 2, len(slates))], axis=1)
        owner = np.repeat(np.arange(len(self)), self.lengths)
        same_moment = (self.timestamp[1:] == self.timestamp[:-1]) | (self.item_idx[1:] == self.item_idx[:-1])
        new = np.ones(len(slates), dtype=bool)
        new[1:] = (owner[1:] != owner[:-1]) | (keys[1:] != keys[:-1]).any(1) | ~same_moment
        return np.cumsum(new) - 1, np.flatnonzero(new)

    def times_shown(self, n_items: int) -> np.ndarray:
        """(n_items,) how many impressions showed each item; all 0 without impressions."""
        if self.impressions is None or not len(self.impressions.values):
            return np.zeros(n_items, dtype=np.int64)
        _, first = self.impressions_of_events()
        return np.bincount(self.impressions.take(first).values, minlength=n_items)[:n_items]

    def shown_not_chosen(self, n_items: int) -> np.ndarray:
        """(n_items,) how many impressions showed each item without it being chosen (what any row of the
        impression chose counts as chosen); all 0 without impressions."""
        if self.impressions is None or not len(self.impressions.values):
            return np.zeros(n_items, dtype=np.int64)
        impression, first = self.impressions_of_events()
        chosen = np.unique(impression * n_items + self.item_idx)      # (impression, item) pairs chosen
        shown_event = np.repeat(first, self.impressions.lengths[first])
        shown = self.impressions.take(first).values
        skipped = shown[~np.isin(impression[shown_event] * n_items + shown, chosen)]
        return np.bincount(skipped, minlength=n_items)[:n_items]

    @classmethod
    def from_sorted_events(cls, user_idx: np.ndarray, item_idx: np.ndarray, timestamp: np.ndarray,
                           impressions: Ragged | None = None, context: np.ndarray | None = None,
                           event_type: np.ndarray | None = None) -> UserSequences:
        """Build from events already sorted by (user, time); users with no events are absent."""
        starts = np.flatnonzero(np.r_[True, user_idx[1:] != user_idx[:-1]]) if len(user_idx) else \
            np.zeros(0, dtype=np.int64)
        offsets = np.append(starts, len(user_idx)).astype(np.int64)
        return cls(np.asarray(user_idx)[starts].astype(np.int64), offsets, item_idx.astype(np.int64), timestamp.astype(np.int64),
                   impressions, context, event_type)

    def select_events(self, keep: np.ndarray) -> UserSequences:
        """Keep the events where `keep` is True (users left with none disappear)."""
        owner = np.repeat(self.user_idx, self.lengths)
        impressions = self.impressions.take(np.flatnonzero(keep)) if self.impressions is not None else None
        context = self.context[keep] if self.context is not None else None
        event_type = self.event_type[keep] if self.event_type is not None else None
        return UserSequences.from_sorted_events(owner[keep], self.item_idx[keep], self.timestamp[keep], impressions,
                                                context, event_type)

    def select_users(self, rows: np.ndarray) -> UserSequences:
        chosen = np.zeros(len(self), dtype=bool)
        chosen[np.asarray(rows, dtype=np.int64)] = True
        return self.select_events(np.repeat(chosen, self.lengths))

    def position_from_end(self) -> np.ndarray:
        """For each event, 0 for a user's newest event, 1 for the one before, ..."""
        ends = np.repeat(self.offsets[1:], self.lengths)
        return ends - 1 - np.arange(len(self.item_idx))


def encode_interactions(interactions: pd.DataFrame, user_vocab: Vocab, item_vocab: Vocab,
                        context_vocabs: dict[str, Vocab] | None = None, event_type_vocab: Vocab | None = None
                        ) -> UserSequences:
    """Sort events by user and time (ties keep file order) and encode ids as indices; with
    `context_vocabs`, also each contextual column (values not in its vocabulary become 0), and with
    `event_type_vocab` the EVENT_TYPE column."""
    user_idx = user_vocab.to_idx(interactions[C.USER_ID])
    item_idx = item_vocab.to_idx(interactions[C.ITEM_ID])
    timestamp = interactions[C.TIMESTAMP].to_numpy(dtype=np.int64)
    rows = np.flatnonzero((user_idx > 0) & (item_idx > 0))
    user_idx, item_idx, timestamp = user_idx[rows], item_idx[rows], timestamp[rows]
    order = sort_by_user_and_time(user_idx, timestamp)
    rows = rows[order]
    impressions = None
    if C.IMPRESSION in interactions.columns:
        impressions = Ragged.from_delimited(interactions[C.IMPRESSION], item_vocab, C.MULTI_VALUE_SEPARATOR)
        impressions = impressions.take(rows)
    context = None
    if context_vocabs:
        context = np.stack([vocab.to_idx(interactions[name])[rows] for name, vocab in context_vocabs.items()], axis=1)
    event_type = None
    if event_type_vocab is not None and C.EVENT_TYPE in interactions.columns:
        event_type = event_type_vocab.to_idx(interactions[C.EVENT_TYPE])[rows]
    return UserSequences.from_sorted_events(user_idx[order], item_idx[order], timestamp[order], impressions,
                                            context, event_type)


def sort_by_user_and_time(user_idx: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """The order that sorts events by user, then time, ties kept in their given order: one stable radix
    sort of a combined int64 key when users and the time span fit in it, else numpy's lexsort."""
    if not len(user_idx):
        return np.zeros(0, dtype=np.int64)
    span = int(timestamp.max()) - int(timestamp.min())
    time_bits = max(span, 1).bit_length()
    if int(user_idx.max()).bit_length() + time_bits <= 62:
        key = (user_idx.astype(np.int64) << time_bits) | (timestamp - timestamp.min())
        return np.argsort(key, kind="stable")
    return np.lexsort((np.arange(len(user_idx)), timestamp, user_idx))


def context_fields(interactions: pd.DataFrame, schema=None) -> list[str]:
    """Contextual columns of an Interactions dataset: non-reserved string fields (e.g. DEVICE)."""
    if schema is not None:
        return [f.name for f in schema.metadata_fields if f.type == "string" and not f.textual]
    reserved = set(C.REQUIRED_FIELDS[C.INTERACTIONS]) | set(C.RESERVED_OPTIONAL_FIELDS[C.INTERACTIONS])
    return [c for c in interactions.columns if c not in reserved and not pd.api.types.is_numeric_dtype(interactions[c])]


def build_context_vocabs(interactions: pd.DataFrame, fields: list[str]) -> dict[str, Vocab]:
    return {name: Vocab.sorted_from(interactions[name]) for name in fields}
