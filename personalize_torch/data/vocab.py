"""Mapping between external string ids (`*_id`) and internal integer indices (`*_idx`, 0 = padding)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from personalize_torch.data.constants import PADDING_IDX


class Vocab:
    """Ids in a fixed order; id number i (0-based) has index i + 1, index 0 is padding."""

    def __init__(self, ids: Iterable[str]):
        self.ids = pd.Index(pd.Series(list(ids), dtype="string").to_numpy(dtype=object))
        if not self.ids.is_unique:
            raise ValueError("vocabulary ids must be unique")
        # Looked up on every served request: converting the (possibly Arrow-backed) Index each time cost
        # ~1 ms per request on a 12,000-item catalogue.
        self._id_array = self.ids.to_numpy(dtype=object)

    @classmethod
    def sorted_from(cls, ids: Iterable[str]) -> Vocab:
        return cls(pd.Index(pd.unique(pd.Series(list(ids), dtype="string"))).sort_values())

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def size_with_padding(self) -> int:
        return len(self.ids) + 1

    def to_idx(self, ids, unknown: int = PADDING_IDX) -> np.ndarray:
        """Indices of `ids`; ids not in the vocabulary get `unknown`."""
        if isinstance(ids, (list, tuple)) and len(ids) <= 16:
            # A served request looks up one or a few ids: the Index's hash table answers each directly,
            # where building an Index for get_indexer cost ~1-3 ms per call (measured on 22,363 users).
            pos = np.array([self._position(i) for i in ids], dtype=np.int64)
            return np.where(pos >= 0, pos + 1, unknown).astype(np.int64)
        pos = self.ids.get_indexer(pd.Index(np.asarray(ids, dtype=object)))
        return np.where(pos >= 0, pos + 1, unknown).astype(np.int64)

    def _position(self, id_) -> int:
        """0-based position of one id, -1 when absent (or not an id at all: None, NaN, a list)."""
        try:
            pos = self.ids.get_loc(id_)
        except (KeyError, TypeError, pd.errors.InvalidIndexError):
            return -1
        return pos if isinstance(pos, int) else -1

    def to_id(self, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if (idx <= PADDING_IDX).any():
            raise ValueError("index 0 is padding and has no id")
        return self._id_array[idx - 1]

    def extended(self, new_ids: Iterable[str]) -> Vocab:
        """This vocabulary plus ids it lacks, appended so existing indices keep their meaning."""
        new = pd.Index(pd.unique(pd.Series(list(new_ids), dtype="string").to_numpy(dtype=object)))
        return Vocab(list(self.ids) + list(new.difference(self.ids, sort=False)))
