"""Mapping between external string ids (`*_id`) and internal integer indices (`*_idx`, 0 = padding)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

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
        if len(ids) <= 64:
            # A served request looks up one or a few ids: a dict answers each directly, where building an
            # Index for get_indexer cost ~1-3 ms per call (measured on 22,363 users).
            lookup = self._lookup
            return np.array([lookup.get(i, unknown) if isinstance(i, str) else unknown for i in ids],
                            dtype=np.int64)
        pos = self.ids.get_indexer(pd.Index(np.asarray(ids, dtype=object)))
        return np.where(pos >= 0, pos + 1, unknown).astype(np.int64)

    @cached_property
    def _lookup(self) -> dict[str, int]:
        """id -> index, built on the first small lookup."""
        return {id_: n for n, id_ in enumerate(self._id_array.tolist(), start=1)}

    def to_id(self, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if (idx <= PADDING_IDX).any():
            raise ValueError("index 0 is padding and has no id")
        return self._id_array[idx - 1]

    def extended(self, new_ids: Iterable[str]) -> Vocab:
        """This vocabulary plus ids it lacks, appended so existing indices keep their meaning."""
        new = pd.Index(pd.unique(pd.Series(list(new_ids), dtype="string").to_numpy(dtype=object)))
        return Vocab(list(self.ids) + list(new.difference(self.ids, sort=False)))
