"""DataDescription: everything a recipe may take from a dataset group, in one declared object.

A recipe is built from it by one classmethod, `Recipe.from_data(data, **hyperparameters)`: sizes (items,
users, contextual fields), vocabularies (event types), the Items / Users metadata as model inputs, each
item's activity and creation time, and how dense the data is. It is built once from the prepared data
(`PreparedData.describe()`), and its sizes are saved in a solution version's solution.json
(`sizes()`), so what a model was built from can be read back. Statistics counted from the training split
(popularity, co-occurrence, time range) are not here: a recipe counts them in its `count_statistics(split)`
hook, which training calls once before fitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from personalize_torch.data.metadata_features import MetadataFeatures, no_features


@dataclass(frozen=True)
class DataDescription:
    n_items: int                                 # item index space, padding (index 0) included
    n_users: int = 1                             # user index space, padding included
    context_cardinalities: tuple[int, ...] = ()  # each contextual field's index space, padding included
    event_type_names: tuple[str, ...] = ()       # EVENT_TYPE of index 1, 2, ... (empty without the column)
    median_history_length: float = 0.0          # median training events per user
    item_features: MetadataFeatures | None = None   # (n_items, ...) Items metadata; None: no fields
    user_features: MetadataFeatures | None = None   # (n_users, ...) Users metadata; None: no fields
    item_text_tokens: np.ndarray | None = None      # (n_items, L) hashed words of the textual field
    item_interaction_counts: np.ndarray | None = None   # (n_items,) selected events per item (all splits)
    item_creation_timestamps: np.ndarray | None = None  # (n_items,) CREATION_TIMESTAMP, NaN unknown
    fingerprint: str = ""                        # hash of the events and catalogue (PreparedData.fingerprint)
    split: str = ""                              # the hold-out split's kind

    def __post_init__(self) -> None:   # absent arrays become their empty form, so recipes read them as is
        if self.item_features is None:
            object.__setattr__(self, "item_features", no_features(self.n_items))
        if self.user_features is None:
            object.__setattr__(self, "user_features", no_features(self.n_users))
        if self.item_text_tokens is None:
            object.__setattr__(self, "item_text_tokens", np.zeros((self.n_items, 0), dtype=np.int64))
        if self.item_interaction_counts is None:
            object.__setattr__(self, "item_interaction_counts", np.zeros(self.n_items, dtype=np.int64))
        if self.item_creation_timestamps is None:
            object.__setattr__(self, "item_creation_timestamps", np.full(self.n_items, np.nan))
        object.__setattr__(self, "context_cardinalities", tuple(int(c) for c in self.context_cardinalities))
        object.__setattr__(self, "event_type_names", tuple(str(t) for t in self.event_type_names))

    def sizes(self) -> dict:
        """The primitive part (JSON), saved in solution.json."""
        return {"n_items": self.n_items, "n_users": self.n_users,
                "context_cardinalities": list(self.context_cardinalities),
                "event_type_names": list(self.event_type_names),
                "median_history_length": self.median_history_length,
                **self.item_features.sizes("item"), **self.user_features.sizes("user"),
                "item_text_slots": int(self.item_text_tokens.shape[1]),
                "fingerprint": self.fingerprint, "split": self.split}


# The names of `DataDescription.sizes()`: recipes' constructor arguments with these names come from the data,
# never from a user's hyperparameters.
SIZE_NAMES = frozenset(DataDescription(n_items=1).sizes())
