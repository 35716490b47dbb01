"""The Items dataset's textual field (`"textual": true` in the schema, e.g. DESCRIPTION) as model input.

Each item's text becomes up to `max_tokens` hashed word ids (n_items, L), 0 = none: lower-cased words
of 2+ letters, each hashed with CRC32 into `buckets` ids (1..buckets), so no vocabulary has to be stored
and an UPDATE encodes new items the same way. Vectorized with pandas string methods.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.schema import Schema
from personalize_torch.data.vocab import Vocab

TEXT_BUCKETS = 16_384
MAX_TOKENS = 32


def textual_field(items: pd.DataFrame | None, schema: Schema | None) -> str | None:
    """The name of the Items dataset's textual field, when its schema declares one."""
    if items is None or schema is None:
        return None
    names = [f.name for f in schema.fields if f.textual and f.name in items.columns]
    return names[0] if names else None


def build_text_tokens(items: pd.DataFrame | None, schema: Schema | None, item_vocab: Vocab,
                      buckets: int = TEXT_BUCKETS, max_tokens: int = MAX_TOKENS) -> np.ndarray:
    """(n_items, L) hashed word ids of each item's textual field (L = 0 when there is none)."""
    n = item_vocab.size_with_padding
    name = textual_field(items, schema)
    if name is None:
        return np.zeros((n, 0), dtype=np.int64)
    items = items.drop_duplicates(C.ITEM_ID, keep="last")
    rows = item_vocab.to_idx(items[C.ITEM_ID].astype(str).to_numpy(dtype=object))
    words = items[name].astype("string").str.lower().str.findall(r"[a-z]{2,}").explode().dropna()
    if not len(words):
        return np.zeros((n, 0), dtype=np.int64)
    unique = pd.unique(words.to_numpy(dtype=object))
    hashed = dict(zip(unique, (zlib.crc32(w.encode()) % buckets + 1 for w in unique)))
    frame = pd.DataFrame({"row": rows[items.index.get_indexer(words.index)], "token": words.map(hashed).to_numpy()})
    frame = frame[frame["row"] > 0]
    frame["slot"] = frame.groupby("row").cumcount()
    frame = frame[frame["slot"] < max_tokens]
    out = np.zeros((n, int(frame["slot"].max()) + 1 if len(frame) else 0), dtype=np.int64)
    out[frame["row"].to_numpy(), frame["slot"].to_numpy()] = frame["token"].to_numpy()
    return out
