"""Items metadata as model inputs: categorical values (with `|` multi-values) and standardized numbers.

`build_item_features` turns the Items dataset into two arrays aligned with the item vocabulary
(row i = item index i, row 0 = padding):
- `categorical` (n_items, S): indices of "FIELD=value" strings in one shared vocabulary (0 = none),
  every categorical / string field's values side by side (textual fields are left out);
- `numeric` (n_items, K): each numeric field (CREATION_TIMESTAMP included) standardized with the
  catalogue's mean and standard deviation, missing values 0.
Items the Items dataset lacks get all zeros. Vectorized with pandas; no loops over items.

`build_user_features` encodes the Users dataset the same way (rows = user indices), for recipes that
read user metadata (HRNN-Meta, User-Personalization).

`encode_metadata_rows` encodes rows the vocabulary does not hold (a user the solution does not know, described
in the Users dataset or sent with PutUsers) as a trained model expects, from what `MetadataFeatures.describe()`
kept: known values take their indices, values the model never saw the unknown slot (0), numbers the same
standardization.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.schema import Schema
from personalize_torch.data.vocab import Vocab


@dataclass
class MetadataFeatures:
    """Items (or Users) metadata encoded as model inputs; row i = item (user) index i, row 0 = padding."""

    categorical: np.ndarray                     # (n_items, S) int64
    numeric: np.ndarray                         # (n_items, K) float32
    value_vocab: Vocab = field(default_factory=lambda: Vocab([]))  # "FIELD=value" strings
    numeric_fields: list[str] = field(default_factory=list)
    numeric_stats: dict[str, tuple[float, float]] = field(default_factory=dict)  # field -> (mean, std)

    @property
    def vocab_size(self) -> int:
        return self.value_vocab.size_with_padding

    def sizes(self, prefix: str) -> dict[str, int]:
        """What a model's encoder is sized by, under the recipes' parameter names (`prefix` item / user):
        `{prefix}_value_vocab_size`, `{prefix}_value_slots`, `{prefix}_numeric_features`."""
        return {f"{prefix}_value_vocab_size": self.vocab_size, f"{prefix}_value_slots": int(self.categorical.shape[1]),
                f"{prefix}_numeric_features": int(self.numeric.shape[1])}

    def describe(self) -> dict:
        """What it takes to encode more items the same way (kept in solution.json for UPDATE)."""
        return {"values": [str(v) for v in self.value_vocab.ids], "numeric_stats": self.numeric_stats}


def no_features(n_rows: int) -> MetadataFeatures:
    """Empty metadata for `n_rows` rows (no fields)."""
    return MetadataFeatures(np.zeros((n_rows, 0), dtype=np.int64), np.zeros((n_rows, 0), dtype=np.float32))


def _field_kinds(items: pd.DataFrame, schema: Schema | None, id_column: str = C.ITEM_ID
                 ) -> tuple[list[str], list[str]]:
    if schema is not None:
        meta = [f for f in schema.metadata_fields if f.name in items.columns]
        categorical = [f.name for f in meta if f.type == "string" and not f.textual]
        numeric = [f.name for f in meta if f.is_numeric]
        if C.CREATION_TIMESTAMP in items.columns and C.CREATION_TIMESTAMP not in numeric:
            numeric.append(C.CREATION_TIMESTAMP)
        return categorical, numeric
    columns = [c for c in items.columns if c != id_column]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(items[c])]
    return [c for c in columns if c not in numeric], numeric


def build_item_features(items: pd.DataFrame | None, schema: Schema | None, item_vocab: Vocab,
                        previous: dict | None = None, id_column: str = C.ITEM_ID) -> MetadataFeatures:
    """`previous` (a `MetadataFeatures.describe()`): encode as a trained model expects — known values keep
    their indices (new ones are appended) and numbers use the same standardization. `id_column`: the
    id field of the rows (USER_ID for the Users dataset, see `build_user_features`)."""
    n = item_vocab.size_with_padding
    if items is None or not len(items):
        return no_features(n)
    items = items.drop_duplicates(id_column, keep="last")
    rows = item_vocab.to_idx(items[id_column].astype(str).to_numpy(dtype=object))
    known = rows > 0
    items, rows = items[known], rows[known]
    categorical_fields, numeric_fields = _field_kinds(items, schema, id_column)

    # Categorical: explode multi-values into (row, "FIELD=value") pairs, then pack each item's values.
    pairs = []
    for name in categorical_fields:
        values = items[name].astype("string").str.split(C.MULTI_VALUE_SEPARATOR, regex=False).explode()
        values = values[values.notna() & (values.str.len() > 0)]
        pos = items.index.get_indexer(values.index)
        tokens = (name + "=" + values.str.strip()).to_numpy(dtype=object)
        pairs.append(pd.DataFrame({"row": rows[pos], "token": tokens}))
    pairs = pd.concat(pairs, ignore_index=True).drop_duplicates() if pairs else pd.DataFrame({"row": [], "token": []})
    value_vocab = Vocab.sorted_from(pairs["token"])
    if previous is not None:
        value_vocab = Vocab(previous["values"]).extended(value_vocab.ids)
        numeric_fields = [f for f in previous["numeric_stats"] if f in items.columns]
    slot = pairs.groupby("row").cumcount().to_numpy()
    width = int(slot.max()) + 1 if len(slot) else 0
    categorical = np.zeros((n, width), dtype=np.int64)
    if len(slot):
        categorical[pairs["row"].to_numpy(dtype=np.int64), slot] = value_vocab.to_idx(pairs["token"].to_numpy())

    numeric = np.zeros((n, len(numeric_fields)), dtype=np.float32)
    stats = {}
    for k, name in enumerate(numeric_fields):
        x = pd.to_numeric(items[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if previous is not None:
            mean, std = previous["numeric_stats"][name]
        else:
            seen = x[np.isfinite(x)]
            mean, std = (float(seen.mean()), float(seen.std())) if len(seen) else (0.0, 1.0)
        stats[name] = (mean, std)
        numeric[rows, k] = np.nan_to_num((x - mean) / (std if std > 0 else 1.0))
    return MetadataFeatures(categorical, numeric, value_vocab, list(numeric_fields), stats)


def build_user_features(users: pd.DataFrame | None, schema: Schema | None, user_vocab: Vocab) -> MetadataFeatures:
    """The Users metadata as model inputs, aligned with the user vocabulary (row u = user index u, row 0 =
    padding / unknown users): categorical values (`|` multi-values) and standardized numbers, as for items.
    Users the Users dataset lacks, and users with no events (not in the vocabulary), are left out."""
    return build_item_features(users, schema, user_vocab, id_column=C.USER_ID)


def encode_metadata_rows(rows: pd.DataFrame, described: dict, slots: int, numeric_features: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(categorical (B, slots) int64, numeric (B, numeric_features) float32) of `rows` (one row each, columns
    named as the dataset's fields; `|` multi-values), encoded with a trained model's value vocabulary and
    numeric standardization (`described`: `MetadataFeatures.describe()`). Field names match case-insensitively
    (`segment` reads the SEGMENT field); values the vocabulary lacks, and missing fields, are 0; a row with more
    values than `slots` keeps its first `slots`."""
    B = len(rows)
    categorical = np.zeros((B, slots), dtype=np.int64)
    numeric = np.zeros((B, numeric_features), dtype=np.float32)
    if not B:
        return categorical, numeric
    rows = rows.reset_index(drop=True)
    columns = {str(c).upper(): c for c in rows.columns}
    values = [str(v) for v in described.get("values", [])]
    vocab = Vocab(values)
    categorical_fields = list(dict.fromkeys(v.split("=", 1)[0] for v in values))
    pairs = []
    for name in categorical_fields:
        column = columns.get(name.upper())
        if column is None:
            continue
        exploded = rows[column].astype("string").str.split(C.MULTI_VALUE_SEPARATOR, regex=False).explode()
        exploded = exploded[exploded.notna() & (exploded.str.len() > 0)]
        tokens = (name + "=" + exploded.str.strip()).to_numpy(dtype=object)
        pairs.append(pd.DataFrame({"row": rows.index.get_indexer(exploded.index), "idx": vocab.to_idx(tokens)}))
    if pairs and slots:
        pairs = pd.concat(pairs, ignore_index=True)
        pairs = pairs[pairs["idx"] > 0].drop_duplicates()
        slot = pairs.groupby("row").cumcount().to_numpy()
        keep = slot < slots
        categorical[pairs["row"].to_numpy()[keep], slot[keep]] = pairs["idx"].to_numpy()[keep]
    for k, (name, (mean, std)) in enumerate(list(described.get("numeric_stats", {}).items())[:numeric_features]):
        column = columns.get(name.upper())
        if column is None:
            continue
        x = pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        numeric[:, k] = np.nan_to_num((x - mean) / (std if std > 0 else 1.0))
    return categorical, numeric
