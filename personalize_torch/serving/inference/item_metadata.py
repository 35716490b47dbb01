"""Item metadata in recommendations (GetRecommendations' `metadataColumns`).

A request asks for `{"ITEMS": ["GENRES", "PRICE"]}` (Personalize's one dataset key, at most 10 columns)
and each recommended item gets `metadata` {column: value as a string} from the solution's Items table.
Values are written as the dataset holds them: text as is (multi-values keep their `|`), whole numbers
without a decimal point, other numbers as Python writes them; a column the item has no value for is
left out of its map. An unknown dataset key or column is an InputError naming what exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from personalize_torch.errors import InputError

DATASET_KEY = "ITEMS"
MAX_COLUMNS = 10


def _as_text(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (np.integer, np.floating)):
        return str(value.item())
    return str(value)


class ItemMetadata:
    """String values of an Items table whose row i is item index i + 1 (the solution's `items`)."""

    def __init__(self, items: pd.DataFrame | None):
        self.items = items if items is not None else pd.DataFrame()
        self._text: dict[str, np.ndarray] = {}

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.items.columns]

    def check(self, metadata_columns: Mapping[str, Sequence[str]] | None) -> list[str]:
        """The requested Items columns, in order without repeats; InputError for anything else."""
        if not metadata_columns:
            return []
        unknown = [key for key in metadata_columns if key != DATASET_KEY]
        if unknown:
            raise InputError(f"metadataColumns: unknown dataset {unknown[0]!r}; the dataset key is {DATASET_KEY}")
        wanted = list(dict.fromkeys(metadata_columns.get(DATASET_KEY) or []))
        if len(wanted) > MAX_COLUMNS:
            raise InputError(f"metadataColumns.{DATASET_KEY}: at most {MAX_COLUMNS} columns, got {len(wanted)}")
        missing = [c for c in wanted if c not in self.items.columns]
        if missing:
            have = ", ".join(self.columns) or "none (this solution has no Items metadata)"
            raise InputError(f"metadataColumns.{DATASET_KEY}: unknown column {missing[0]!r}; "
                             f"the Items dataset's columns are {have}")
        return wanted

    def _column_text(self, name: str) -> np.ndarray:
        """(n_items + 1,) object array: each item index's value as text (None = missing; index 0 padding)."""
        if name not in self._text:
            values = [_as_text(v) for v in self.items[name].to_numpy(dtype=object)]
            self._text[name] = np.array([None] + values, dtype=object)
        return self._text[name]

    def lookup(self, item_idx: Sequence[int], columns: Sequence[str]) -> list[dict[str, str]]:
        """{column: text} for each item index (missing values left out)."""
        idx = np.asarray(item_idx, dtype=np.int64)
        texts = {c: self._column_text(c)[idx] for c in columns}
        return [{c: str(texts[c][j]) for c in columns if texts[c][j] is not None} for j in range(len(idx))]
