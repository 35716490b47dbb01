"""Ragged lists (one variable-length list per row) in CSR form, with vectorized take / pad."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from personalize_torch.data.vocab import Vocab


@dataclass
class Ragged:
    offsets: np.ndarray  # (n_rows + 1,)
    values: np.ndarray   # (n_values,)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def take(self, rows: np.ndarray) -> Ragged:
        """The given rows, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
        return Ragged(offsets, self.values[np.repeat(self.offsets[rows], lengths) + within])

    def padded(self, rows: np.ndarray, width: int | None = None) -> np.ndarray:
        """rows.shape + (width,) array of each row's values, right-padded with 0; row -1 is empty."""
        flat = np.asarray(rows, dtype=np.int64).ravel()
        known = flat >= 0
        safe = np.where(known, flat, 0)
        lengths = np.where(known, self.lengths[safe] if len(self) else 0, 0)
        width = int(lengths.max(initial=0)) if width is None else width
        lengths = np.minimum(lengths, width)
        out = np.zeros((len(flat), width), dtype=self.values.dtype)
        col = np.arange(width)
        valid = col[None, :] < lengths[:, None]
        starts = self.offsets[safe] if len(self) else np.zeros_like(safe)
        out[valid] = self.values[(starts[:, None] + col[None, :])[valid]]
        return out.reshape(*np.shape(rows), width)

    @classmethod
    def from_delimited(cls, strings: pd.Series, vocab: Vocab, sep: str = "|") -> Ragged:
        """Parse `a|b|c` strings into vocabulary indices; empty cells and unknown ids are dropped."""
        n = len(strings)
        parts = strings.reset_index(drop=True).fillna("").astype(str).str.split(sep, regex=False).explode()
        idx = vocab.to_idx(parts.to_numpy(dtype=object))
        row = parts.index.to_numpy()  # explode repeats each row's index once per value
        keep = idx > 0
        counts = np.bincount(row[keep], minlength=n)
        return cls(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), idx[keep])
