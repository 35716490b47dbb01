"""Filters for a served solution version: its catalogue (items, users, interactions) built once.

Built from the solution's encoded arrays, not from id strings: the Interactions are the stored histories
themselves (each user's most recent events per event type, as `Catalogue` keeps them; when no user has more
than that, the histories' arrays are used as they are), the Items table is the solution's in index order, and
user rows are history rows, looked up with the solution's id index (`SolutionCatalogue`). A solution version
of 200k users and 2M events took ~10 s and ~350 MB to build the catalogue from a table of id strings; 10M
users would have needed a Python string per user and per event.

When training selected some event types, filters read the stored filter interactions (every type), whose
users include some with no event of the trained types: that catalogue is built from its table as before.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.schema import parse_schema
from personalize_torch.filters import Catalogue
from personalize_torch.filters.catalogue import MAX_INTERACTIONS_PER_EVENT_TYPE, Events, csr_gather
from personalize_torch.solution_version import SolutionVersion


class SolutionCatalogue(Catalogue):
    """A `Catalogue` whose user rows are the solution's history rows: `user_rows` looks ids up with the
    solution's id index, so no Index of every user id is built."""

    def __init__(self, solution: SolutionVersion, items: pd.DataFrame | None, users: pd.DataFrame | None,
                 events: Events, textual_fields: Iterable[str] = ()):
        super().__init__(solution.item_vocab.ids, items, [], None, events, textual_fields)
        self.solution = solution
        self.n_users = len(solution.histories)
        self.users = users

    def user_rows(self, user_ids: Iterable) -> np.ndarray:
        """Row of each user id, -1 for ids the solution doesn't know (or None)."""
        return self.solution.history_rows(["" if u is None else str(u) for u in user_ids])


def stored_events(solution: SolutionVersion, max_per_type: int = MAX_INTERACTIONS_PER_EVENT_TYPE) -> Events:
    """The stored histories as the filters' Interactions: per history row, the `max_per_type` most recent
    events of each event type (case-insensitive), oldest first."""
    h = solution.histories
    if h.event_type is not None and solution.event_type_vocab is not None:
        names = np.array([""] + [str(t).lower() for t in solution.event_type_vocab.ids], dtype=object)
        event_types, code_of = np.unique(names, return_inverse=True)
        same = np.array_equal(code_of, np.arange(len(names)))
        type_code = h.event_type if same else code_of[h.event_type]
    else:
        event_types, type_code = np.array([""], dtype=object), np.zeros(len(h.item_idx), dtype=np.int64)
    offsets, item_idx = h.offsets, h.item_idx
    long_rows = np.flatnonzero(h.lengths > max_per_type)
    if len(long_rows):   # users with more events than are kept: drop their older events beyond the quota
        pos, owner = csr_gather(h.offsets, long_rows)
        key = owner * len(event_types) + type_code[pos]
        order = np.argsort(key, kind="stable")                    # by (user, type), oldest first
        sorted_key = key[order]
        starts = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
        group = np.cumsum(starts) - 1
        sizes = np.bincount(group)
        from_end = sizes[group] - 1 - (np.arange(len(order)) - np.flatnonzero(starts)[group])
        keep = np.ones(len(item_idx), dtype=bool)
        keep[pos[order][from_end >= max_per_type]] = False
        counts = np.bincount(np.repeat(np.arange(len(h)), h.lengths)[keep], minlength=len(h))
        offsets = np.zeros(len(h) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        item_idx, type_code = item_idx[keep], type_code[keep]
    return Events(offsets, item_idx.astype(np.int64, copy=False), type_code.astype(np.int64, copy=False),
                  tuple(str(t) for t in event_types))


def _items_with_padding(items: pd.DataFrame) -> pd.DataFrame:
    """The solution's Items table (row i = item index i + 1) with a row of missing values in front."""
    aligned = items.reset_index(drop=True).reindex(np.arange(-1, len(items))).reset_index(drop=True)
    aligned.loc[0, C.ITEM_ID] = None
    return aligned


def _users_by_row(solution: SolutionVersion) -> pd.DataFrame:
    """The Users table aligned with the history rows (missing values for users it lacks)."""
    meta = solution.users.drop_duplicates(C.USER_ID, keep="last").reset_index(drop=True)
    rows = solution.history_rows(meta[C.USER_ID].astype(str).tolist())
    position = np.full(len(solution.histories), -1, dtype=np.int64)
    position[rows[rows >= 0]] = np.flatnonzero(rows >= 0)
    return meta.reindex(position).reset_index(drop=True)


def history_table(solution: SolutionVersion) -> pd.DataFrame:
    """Every stored event as USER_ID, ITEM_ID, TIMESTAMP[, EVENT_TYPE] rows."""
    h = solution.histories
    table = pd.DataFrame({
        C.USER_ID: np.repeat(solution.user_vocab.to_id(h.user_idx), h.lengths),
        C.ITEM_ID: solution.item_vocab.to_id(h.item_idx) if len(h.item_idx) else np.array([], dtype=object),
        C.TIMESTAMP: h.timestamp,
    })
    if h.event_type is not None and solution.event_type_vocab is not None:
        names = np.concatenate([[None], np.asarray(solution.event_type_vocab.ids, dtype=object)])
        table[C.EVENT_TYPE] = names[h.event_type]
    return table


def build_catalogue(solution: SolutionVersion) -> Catalogue:
    """The filter catalogue of a solution version, over the model's item indices. Its Interactions are the
    stored histories, or, when training selected some event types, the stored filter interactions (every
    type), whose users include those with no event of the trained types."""
    schemas = solution.info.get("schemas", {})
    textual = []
    if C.ITEMS in schemas:
        textual = [f.name for f in parse_schema(schemas[C.ITEMS], C.ITEMS).fields if f.textual]
    if solution.filter_interactions is not None:  # trained on some event types: filters see all of them
        interactions = solution.filter_interactions
        others = pd.Index(interactions[C.USER_ID].unique()).difference(solution.user_vocab.ids, sort=False)
        return Catalogue.build(solution.item_vocab.ids, items=solution.items, users=solution.users,
                               interactions=interactions, user_ids=[*solution.user_vocab.ids, *others],
                               textual_fields=textual)
    items = solution.items
    if items is not None and (C.ITEM_ID not in items.columns or len(items) != len(solution.item_vocab)):
        return Catalogue.build(solution.item_vocab.ids, items=items, users=solution.users,
                               interactions=history_table(solution), user_ids=solution.user_vocab.ids,
                               textual_fields=textual)
    return SolutionCatalogue(solution, _items_with_padding(items) if items is not None else None,
                             _users_by_row(solution) if solution.users is not None else None,
                             stored_events(solution), textual)
