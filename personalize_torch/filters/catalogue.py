"""What filters read: the catalogue's items and their metadata, users and their metadata, and each
user's recent interactions, in array form built once (vectorized) so evaluation is array work.

Indices follow the project's conventions: item index i+1 is `item_ids[i]`, index 0 is padding (every
mask has `n_items = len(item_ids) + 1` columns, column 0 always False); user *rows* are positions in
`user_ids` (0-based), -1 for a user the catalogue does not know (no metadata, no interactions).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.vocab import Vocab
from personalize_torch.errors import InputError

MAX_INTERACTIONS_PER_EVENT_TYPE = 100  # Personalize's (adjustable) quota for interactions filters


def csr_gather(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the entries of `rows` in CSR data (`offsets`), and for each, its index in `rows`.

    Row -1 has no entries. Vectorized: no loop over rows.
    """
    rows = np.asarray(rows, dtype=np.int64)
    known = rows >= 0
    safe = np.where(known, rows, 0)
    starts = offsets[safe]
    lengths = np.where(known, offsets[safe + 1] - starts, 0)
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    if owner.size == 0:
        return owner, owner
    first = np.cumsum(lengths) - lengths                     # where each row's run starts in the output
    pos = np.arange(owner.size, dtype=np.int64) - first[owner] + starts[owner]
    return pos, owner


class Column:
    """One metadata field over rows 0..n-1, ready for IN / comparisons.

    - numeric (int/float dtype): `numbers` (float, NaN = missing).
    - categorical (strings): values split on `|` into tokens, kept as CSR (`offsets`, `codes`) over a
      token vocabulary `tokens`; `numbers` holds a row's value as a number when it has exactly one value
      and that value reads as a number (else NaN), for comparisons such as `CurrentUser.AGE > 18` on a
      string field.
    - boolean: kept only to be refused (Personalize can't filter boolean fields).
    """

    def __init__(self, name: str, values: pd.Series):
        self.name = name
        self.n = len(values)
        if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.infer_dtype(values, skipna=True) == "boolean":
            self.kind = "boolean"
            return
        if pd.api.types.is_numeric_dtype(values.dtype):
            self.kind = "numeric"
            self.numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            return
        self.kind = "categorical"
        arr = values.to_numpy(dtype=object)
        present = np.flatnonzero(~pd.isna(arr))
        texts = arr[present].astype(str)                      # (n_present,) numpy strings
        if texts.size:
            # one split of all values joined by the separator: C-level, no per-row Python loop
            sep = C.MULTI_VALUE_SEPARATOR
            pieces = np.asarray(sep.join(texts.tolist()).split(sep), dtype=object)
            rows = np.repeat(present, np.char.count(texts, sep) + 1)
            nonempty = pieces != ""
            pieces, rows = pieces[nonempty], rows[nonempty]
        else:
            pieces, rows = np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
        codes, uniques = pd.factorize(pieces)
        self.tokens = pd.Index(uniques, dtype=object)
        self.codes = codes.astype(np.int64)                   # sorted by row, as the pieces are
        self.offsets = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=self.n), out=self.offsets[1:])
        counts = np.diff(self.offsets)
        token_numbers = pd.to_numeric(pd.Series(self.tokens, dtype=object), errors="coerce").to_numpy(np.float64)
        self.numbers = np.full(self.n, np.nan)
        single = counts == 1
        self.numbers[single] = token_numbers[self.codes[self.offsets[:-1][single]]]
        self._inverse: tuple[np.ndarray, np.ndarray] | None = None
        self._code_of: dict[str, int] | None = None

    def token_codes(self, texts: Iterable[str]) -> np.ndarray:
        """Codes of the given values that occur in the column (unknown values are dropped)."""
        if self._code_of is None:
            self._code_of = {tok: i for i, tok in enumerate(self.tokens)}
        codes = [self._code_of.get(t) for t in texts]
        return np.asarray([c for c in codes if c is not None], dtype=np.int64)

    def rows_with_codes(self, codes: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Bool over all rows (rows=None) or over `rows` (-1 = missing): has a token in `codes`."""
        if rows is None:  # the rows holding each wanted token, from the inverse index
            inv_offsets, inv_rows = self.inverse()
            pos, _ = csr_gather(inv_offsets, codes)
            out = np.zeros(self.n, dtype=bool)
            out[inv_rows[pos]] = True
            return out
        wanted = np.zeros(len(self.tokens), dtype=bool)
        wanted[codes] = True
        pos, owner = csr_gather(self.offsets, rows)
        out = np.zeros(len(rows), dtype=bool)
        out[owner[wanted[self.codes[pos]]]] = True
        return out

    def inverse(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR from token code to the rows that have it: (offsets over codes, rows)."""
        if self._inverse is None:
            owner = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self.offsets))
            order = np.argsort(self.codes, kind="stable")
            offsets = np.zeros(len(self.tokens) + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.codes, minlength=len(self.tokens)), out=offsets[1:])
            self._inverse = (offsets, owner[order])
        return self._inverse


@dataclass
class Events:
    """Each user row's kept interactions (the most recent per event type), oldest first, as CSR."""

    offsets: np.ndarray      # (n_users + 1,)
    item_idx: np.ndarray     # (E,) item indices
    type_code: np.ndarray    # (E,) index into event_types
    event_types: tuple[str, ...]  # lower-cased event types ("" where the data has none)

    def type_mask(self, event_types: Iterable[str]) -> np.ndarray:
        """Bool over event type codes: the type is one of `event_types` (case-insensitive)."""
        wanted = {str(t).lower() for t in event_types}
        return np.fromiter((t in wanted for t in self.event_types), dtype=bool, count=len(self.event_types))


class Catalogue:
    """Items, users and recent interactions as filters need them. Build with `Catalogue.build`."""

    def __init__(self, item_ids: Sequence[str], items: pd.DataFrame | None, user_ids: Sequence[str],
                 users: pd.DataFrame | None, events: Events | None, textual_fields: Iterable[str] = (),
                 max_interactions_per_event_type: int = MAX_INTERACTIONS_PER_EVENT_TYPE):
        """Low-level: `items` has n_items rows (row 0 padding), `users` len(user_ids) rows, both RangeIndex."""
        self.item_ids = _object_index(item_ids)
        self.n_items = len(self.item_ids) + 1
        self.user_ids = _object_index(user_ids)
        self.n_users = len(self.user_ids)
        if items is not None and len(items) != self.n_items:
            raise ValueError(f"items must have n_items = {self.n_items} rows (row 0 padding), got {len(items)}")
        if users is not None and len(users) != self.n_users:
            raise ValueError(f"users must have {self.n_users} rows (one per user id), got {len(users)}")
        self.items = None if items is None else items.reset_index(drop=True)
        self.users = None if users is None else users.reset_index(drop=True)
        self.events = events
        self.textual_fields = frozenset(textual_fields)
        self.max_interactions_per_event_type = max_interactions_per_event_type
        self._columns: dict[tuple[str, str], Column] = {}
        self.item_condition_cache: dict = {}  # evaluate.py: Items conditions with fixed values -> (n_items,)

    # ---- building
    @classmethod
    def build(cls, item_ids: Vocab | Sequence[str], items: pd.DataFrame | None = None,
              users: pd.DataFrame | None = None, interactions: pd.DataFrame | None = None,
              user_ids: Vocab | Sequence[str] | None = None, textual_fields: Iterable[str] = (),
              max_interactions_per_event_type: int = MAX_INTERACTIONS_PER_EVENT_TYPE) -> Catalogue:
        """A catalogue from Personalize-shaped tables.

        - `item_ids`: the item vocabulary (a `Vocab`, or ids where id i has index i + 1).
        - `items`: Items metadata with an ITEM_ID column (matched by id; catalogue items it lacks get
          missing values), or without one, one row per item in index order (optionally with the
          padding row first).
        - `users`: Users metadata with a USER_ID column.
        - `interactions`: USER_ID, ITEM_ID and optional TIMESTAMP (else file order is time order) and
          EVENT_TYPE; only each user's `max_interactions_per_event_type` most recent events per event
          type (case-insensitive) are kept, as Personalize does. Items not in `item_ids` are dropped.
        - `user_ids`: the user rows' order (e.g. the solution's user vocabulary); by default the Users
          table's ids, then ids found only in `interactions`, in order of appearance.
        - `textual_fields`: Items fields that hold free text (Personalize can't filter on them).
        """
        ids = [str(i) for i in (item_ids.ids if isinstance(item_ids, Vocab) else item_ids)]
        item_index = _object_index(ids)
        if not item_index.is_unique:
            raise ValueError("item ids must be unique")
        items_frame = _align_items(items, item_index) if items is not None else None

        if user_ids is not None:
            uids = [str(u) for u in (user_ids.ids if isinstance(user_ids, Vocab) else user_ids)]
        else:
            found: list = []
            if users is not None:
                found.extend(users[C.USER_ID].astype(str).tolist())
            if interactions is not None:
                found.extend(interactions[C.USER_ID].astype(str).tolist())
            uids = list(pd.unique(pd.Series(found, dtype=object)))
        user_index = _object_index(uids)
        if not user_index.is_unique:
            raise ValueError("user ids must be unique")
        users_frame = None
        if users is not None:
            if C.USER_ID not in users.columns:
                raise InputError(f"the Users table needs a {C.USER_ID} column")
            meta = users.drop_duplicates(C.USER_ID, keep="last").copy()
            meta.index = _object_index(meta[C.USER_ID].astype(str))
            users_frame = meta.reindex(user_index).reset_index(drop=True)
        events = None
        if interactions is not None:
            events = _recent_events(interactions, item_index, user_index, max_interactions_per_event_type)
        return cls(ids, items_frame, uids, users_frame, events, textual_fields, max_interactions_per_event_type)

    def with_recent_events(self, user_ids: Sequence[str], recent: pd.DataFrame) -> Catalogue:
        """A catalogue for just these users (rows in this order), whose interactions are their stored
        ones followed by `recent` (USER_ID, ITEM_ID, EVENT_TYPE, TIMESTAMP rows, e.g. events streamed
        since training), the most recent per event type kept as usual. Items, and what was computed for
        them, are shared with this catalogue, so this is cheap enough to do per request."""
        ids = [str(u) for u in user_ids]
        rows = self.user_rows(ids)
        frames = [recent]
        if self.events is not None:
            known = rows[rows >= 0]
            lengths = self.events.offsets[known + 1] - self.events.offsets[known]
            flat = np.concatenate([np.arange(self.events.offsets[r], self.events.offsets[r + 1]) for r in known]
                                  ) if len(known) else np.zeros(0, dtype=np.int64)
            names = np.asarray(self.events.event_types, dtype=object)
            frames.insert(0, pd.DataFrame({
                C.USER_ID: np.repeat(np.asarray(ids, dtype=object)[rows >= 0], lengths),
                C.ITEM_ID: self.item_ids.to_numpy()[self.events.item_idx[flat] - 1],
                C.EVENT_TYPE: names[self.events.type_code[flat]] if len(names) else np.array([], dtype=object),
                C.TIMESTAMP: np.full(len(flat), np.iinfo(np.int64).min // 2, dtype=np.int64)}))  # older than any
        interactions = pd.concat(frames, ignore_index=True)
        users = None
        if self.users is not None:
            users = self.users.reindex(np.where(rows >= 0, rows, len(self.users))).reset_index(drop=True)
        view = Catalogue.__new__(Catalogue)
        view.__dict__.update(self.__dict__)
        view.user_ids = _object_index(ids)
        view.n_users = len(ids)
        view.users = users
        view.events = _recent_events(interactions, self.item_ids, view.user_ids, self.max_interactions_per_event_type)
        view._columns = {k: v for k, v in self._columns.items() if k[0] == "Items"}
        return view

    # ---- lookups
    def user_rows(self, user_ids: Iterable) -> np.ndarray:
        """Row of each user id, -1 for ids the catalogue doesn't know (or None)."""
        ids = [("" if u is None else str(u)) for u in user_ids]
        return self.user_ids.get_indexer(_object_index(ids)).astype(np.int64)

    def item_index(self, item_ids: Iterable) -> np.ndarray:
        """Index of each item id, 0 (padding) for unknown ids."""
        pos = self.item_ids.get_indexer(_object_index([str(i) for i in item_ids]))
        return np.where(pos >= 0, pos + 1, 0).astype(np.int64)

    def frame(self, dataset: str) -> pd.DataFrame | None:
        return self.items if dataset == "Items" else self.users

    def column(self, dataset: str, name: str) -> Column:
        """The named Items or Users column (built on first use); the caller has checked it exists."""
        key = (dataset, name)
        if key not in self._columns:
            self._columns[key] = Column(name, self.frame(dataset)[name])
        return self._columns[key]


def _object_index(values) -> pd.Index:
    """An object-dtype Index (plain hash lookups; pandas would otherwise pick its Arrow string dtype)."""
    if isinstance(values, (pd.Series, pd.Index)):
        return pd.Index(values.to_numpy(dtype=object), dtype=object)
    arr = np.asarray(list(values), dtype=object)
    return pd.Index(arr, dtype=object)


def _align_items(items: pd.DataFrame, item_index: pd.Index) -> pd.DataFrame:
    n_items = len(item_index) + 1
    if C.ITEM_ID in items.columns:
        meta = items.drop_duplicates(C.ITEM_ID, keep="last").copy()
        meta.index = _object_index(meta[C.ITEM_ID].astype(str))
        aligned = meta.reindex(pd.Index([None], dtype=object).append(item_index))
        aligned[C.ITEM_ID] = np.concatenate([[None], item_index.to_numpy()])
        return aligned.reset_index(drop=True)
    if len(items) == n_items:
        return items.reset_index(drop=True)
    if len(items) == n_items - 1:  # add the padding row (missing values) in front
        shifted = items.reset_index(drop=True)
        shifted.index = shifted.index + 1
        return shifted.reindex(pd.RangeIndex(n_items))
    raise ValueError(f"items without an {C.ITEM_ID} column must have one row per item "
                     f"({n_items - 1}, or {n_items} with the padding row), got {len(items)}")


def _recent_events(interactions: pd.DataFrame, item_index: pd.Index, user_index: pd.Index,
                   max_per_type: int) -> Events:
    for col in (C.USER_ID, C.ITEM_ID):
        if col not in interactions.columns:
            raise InputError(f"the Interactions table needs a {col} column")
    n = len(interactions)
    user = user_index.get_indexer(_object_index(interactions[C.USER_ID].astype(str)))
    item = item_index.get_indexer(_object_index(interactions[C.ITEM_ID].astype(str))) + 1
    if C.EVENT_TYPE in interactions.columns:
        etype = interactions[C.EVENT_TYPE].astype("string").fillna("").str.lower().to_numpy(dtype=object)
    else:
        etype = np.full(n, "", dtype=object)
    ts = (interactions[C.TIMESTAMP].to_numpy(dtype=np.int64) if C.TIMESTAMP in interactions.columns
          else np.zeros(n, dtype=np.int64))
    keep = (user >= 0) & (item > 0)
    user, item, etype, ts = user[keep], item[keep], etype[keep], ts[keep]
    order_in_file = np.arange(len(user))
    type_code, event_types = pd.factorize(etype)
    # newest first within (user, type): sort by user, type, time desc, file order desc
    order = np.lexsort((-order_in_file, -ts, type_code, user))
    u, t = user[order], type_code[order]
    group_start = np.r_[True, (u[1:] != u[:-1]) | (t[1:] != t[:-1])] if len(u) else np.zeros(0, bool)
    start_pos = np.maximum.accumulate(np.where(group_start, np.arange(len(u)), 0)) if len(u) else np.zeros(0, int)
    rank = np.arange(len(u)) - start_pos                      # 0 = the newest of its (user, type)
    kept = order[rank < max_per_type]
    kept = kept[np.lexsort((order_in_file[kept], ts[kept], user[kept]))]  # per user, oldest first
    offsets = np.zeros(len(user_index) + 1, dtype=np.int64)
    np.cumsum(np.bincount(user[kept], minlength=len(user_index)), out=offsets[1:])
    return Events(offsets, item[kept].astype(np.int64), type_code[kept].astype(np.int64),
                  tuple(str(t) for t in event_types))
