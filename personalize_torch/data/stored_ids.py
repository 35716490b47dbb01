"""Ids and histories as a solution version stores them, loaded without a Python object per id.

`StoredIds` is a vocabulary (`Vocab`'s interface) over one Arrow string array, looked up through a
vectorized hash of the ids' bytes (`hash_strings`, which also assigns users to the buckets of a dataset
group, data/group_store.py); `StoredSequences` are histories that are never changed once loaded.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from personalize_torch.data.constants import PADDING_IDX
from personalize_torch.data.sequences import UserSequences
from personalize_torch.data.vocab import Vocab

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_FNV_OFFSET_INT, _FNV_PRIME_INT, _MASK64 = int(_FNV_OFFSET), int(_FNV_PRIME), (1 << 64) - 1   # the same, in Python


def _string_buffers(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (n + 1,) int64, bytes uint8) of an Arrow string array without nulls."""
    offset_type = np.int32 if pa.types.is_string(ids.type) else np.int64
    _, offsets_buf, data_buf = ids.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=offset_type, count=len(ids) + 1, offset=ids.offset *
                            np.dtype(offset_type).itemsize).astype(np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def _as_arrow_strings(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks() if ids.num_chunks else pa.array([], type=pa.string())
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        ids = ids.cast(pa.large_string())
    return ids


def hash_strings(ids: pa.Array) -> np.ndarray:
    """(n,) uint64 FNV-1a hash of each string's UTF-8 bytes (nulls hash as empty strings), vectorized: one
    numpy pass per byte position, over the strings that are that long."""
    offsets, data = _string_buffers(ids)
    starts, lengths = offsets[:-1], np.diff(offsets)
    h = np.full(len(lengths), _FNV_OFFSET, dtype=np.uint64)
    common = int(lengths.min()) if len(lengths) else 0
    for j in range(common):                        # every string has byte j: whole-array passes
        h ^= data[starts + j]
        h *= _FNV_PRIME
    rows, j = np.flatnonzero(lengths > common), common
    while len(rows):
        h[rows] = (h[rows] ^ data[starts[rows] + j]) * _FNV_PRIME
        j += 1
        rows = rows[lengths[rows] > j]
    return h


class StoredIds:
    """A solution version's user or item ids as loaded: id i (0-based) has index i + 1, with `Vocab`'s
    interface (`to_idx`, `to_id`, `ids`, `len`, `size_with_padding`, `extended`).

    The ids stay one Arrow string array. Lookups hash the asked ids (`hash_strings`), binary-search a sorted
    array of the ids' hashes and compare the strings of the candidates, so loading builds no Python string
    per id and no dict: 10M user ids cost ~1 s and ~250 MB instead of ~1.5 GB of Python objects and a
    dict built by the first request. `ids`, a pandas Index of Python strings as `Vocab.ids`, is built the
    first time something asks for it (UPDATE, user-segment jobs); serving does not.
    """

    def __init__(self, ids: pa.Array | pa.ChunkedArray):
        ids = _as_arrow_strings(ids)
        if ids.null_count:
            raise ValueError("vocabulary ids must not be missing")
        self._arrow = ids
        self._offsets, self._bytes = _string_buffers(ids)
        hashes = hash_strings(ids)
        self._order = np.argsort(hashes, kind="stable").astype(np.int64 if len(ids) >= 2**31 else np.int32)
        self._sorted_hashes = hashes[self._order]
        same = np.flatnonzero(self._sorted_hashes[1:] == self._sorted_hashes[:-1])
        if len(same):   # equal hashes: the same id twice, or (rarely) two ids with one hash
            a, b = self._order[same], self._order[same + 1]
            if pc.any(pc.equal(ids.take(pa.array(a)), ids.take(pa.array(b)))).as_py():
                raise ValueError("vocabulary ids must be unique")

    def __len__(self) -> int:
        return len(self._arrow)

    @property
    def size_with_padding(self) -> int:
        return len(self._arrow) + 1

    @property
    def arrow(self) -> pa.Array:
        """The ids in index order (id of index i at position i - 1)."""
        return self._arrow

    @cached_property
    def ids(self) -> pd.Index:
        """The ids as a pandas Index of Python strings (as `Vocab.ids`); built on first use."""
        return pd.Index(self._arrow.to_numpy(zero_copy_only=False), dtype=object)

    def to_idx(self, ids, unknown: int = PADDING_IDX) -> np.ndarray:
        """Indices of `ids`; ids not in the vocabulary, and values that are not strings, get `unknown`."""
        if not isinstance(ids, (pa.Array, pa.ChunkedArray)) and len(ids) <= 64:
            # A request's few ids: hashed and compared in Python (~2 us each), where the vectorized path
            # costs ~0.3 ms in numpy and Arrow calls whatever the count
            found = [self._index_of(i) if isinstance(i, str) else PADDING_IDX for i in ids]
            return np.array([i if i != PADDING_IDX else unknown for i in found], dtype=np.int64)
        if isinstance(ids, (pa.Array, pa.ChunkedArray)):
            queries = _as_arrow_strings(ids)
        else:
            queries = pa.array([i if isinstance(i, str) else None for i in ids], type=pa.large_string())
        n = len(queries)
        out = np.full(n, unknown, dtype=np.int64)
        if not n or not len(self._arrow):
            return out
        hashes = hash_strings(queries)
        pos = np.minimum(np.searchsorted(self._sorted_hashes, hashes), len(self._sorted_hashes) - 1)
        hit = (self._sorted_hashes[pos] == hashes) & queries.is_valid().to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(hit)
        if not len(rows):
            return out
        candidates = self._order[pos[rows]].astype(np.int64)
        same = pc.equal(queries.take(pa.array(rows)).cast(pa.large_string()),
                        self._arrow.take(pa.array(candidates)).cast(pa.large_string()))
        same = same.to_numpy(zero_copy_only=False)
        out[rows[same]] = candidates[same] + 1
        for r in rows[~same]:   # a hash shared by several ids: the next candidates
            found = self._index_of(queries[int(r)].as_py())
            out[r] = found if found != PADDING_IDX else unknown
        return out

    def _index_of(self, id_: str) -> int:
        """Index of one id, 0 when unknown."""
        key = id_.encode()
        h = _FNV_OFFSET_INT
        for byte in key:
            h = ((h ^ byte) * _FNV_PRIME_INT) & _MASK64
        p = int(np.searchsorted(self._sorted_hashes, np.uint64(h)))
        while p < len(self._sorted_hashes) and int(self._sorted_hashes[p]) == h:
            c = int(self._order[p])
            if self._bytes[self._offsets[c]:self._offsets[c + 1]].tobytes() == key:
                return c + 1
            p += 1
        return PADDING_IDX

    def to_id(self, idx) -> np.ndarray:
        """Ids (object array of str, the shape of `idx`) of indices `idx`."""
        idx = np.asarray(idx, dtype=np.int64)
        if (idx <= PADDING_IDX).any():
            raise ValueError("index 0 is padding and has no id")
        return self.take(idx.ravel()).to_numpy(zero_copy_only=False).reshape(idx.shape)

    def take(self, idx: np.ndarray) -> pa.Array:
        """The ids of indices `idx` (1-based) as an Arrow array."""
        return self._arrow.take(pa.array(np.asarray(idx, dtype=np.int64) - 1))

    def extended(self, new_ids) -> Vocab:
        """This vocabulary plus ids it lacks, appended (a `Vocab`, as `Vocab.extended`)."""
        return Vocab(self.ids).extended(new_ids)


class StoredSequences(UserSequences):
    """The histories as loaded, never changed afterwards: `lengths` is computed once (a server reads it at
    every request; `np.diff` over the offsets of 1M users is ~3 ms)."""

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)
