"""PreparedData: a dataset group's selected events, encoded and split, ready for a recipe and its loaders.

    data = PreparedData(group, split="leave_one_out")
    recipe = UserPersonalization.from_data(data.describe(), hidden_dimension=64)
    loaders = InteractionsDataModule(data, recipe.loader_needs())

Events are selected (event type, value threshold, eventsConfig), checked against the minimum data,
encoded with vocabularies (items: the whole catalogue; users, contextual fields, event types: the
selected events) into per-user sequences, and split into training / validation / test. Everything is
computed once, here; `describe()` is what a recipe may read, the rest is for loaders and saving.
"""

from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.description import DataDescription
from personalize_torch.data.event_selection import select_events
from personalize_torch.data.metadata_features import MetadataFeatures, build_item_features, build_user_features
from personalize_torch.data.minimum_data import check_minimum_data
from personalize_torch.data.sequences import UserSequences, build_context_vocabs, context_fields, encode_interactions
from personalize_torch.data.split import Split, make_split
from personalize_torch.data.text_features import build_text_tokens
from personalize_torch.data.vocab import Vocab


class PreparedData:
    def __init__(self, group: DatasetGroup, split: str = "personalize", event_type: str | None = None,
                 event_value_threshold: float | None = None, seed: int = 0, check_minimum: bool = True,
                 event_parameters: list[dict] | None = None):
        self.group = group
        self.event_type = event_type
        self.event_value_threshold = event_value_threshold
        self.event_parameters = event_parameters  # eventsConfig: [{event_type, event_value_threshold}]
        source = group.source
        self.interactions = select_events(group.interactions, event_type, event_value_threshold, source=source,
                                          event_parameters=event_parameters)
        if check_minimum:
            check_minimum_data(self.interactions, source=source)
        self.item_vocab = Vocab(group.catalogue_item_ids())
        # a share of the group's users: every process numbers all of the group's users alike
        self.user_vocab = Vocab.sorted_from(group.all_user_ids if group.all_user_ids is not None
                                            else self.interactions[C.USER_ID])
        fields = context_fields(self.interactions, group.schemas.get(C.INTERACTIONS))
        self.context_vocabs = build_context_vocabs(self.interactions, fields)
        self.event_type_vocab = (Vocab.sorted_from(self.interactions[C.EVENT_TYPE])
                                 if C.EVENT_TYPE in self.interactions.columns else None)
        self.sequences: UserSequences = encode_interactions(self.interactions, self.user_vocab, self.item_vocab,
                                                            self.context_vocabs, self.event_type_vocab)
        self.split: Split = make_split(self.sequences, split, seed=seed)

    @property
    def n_items(self) -> int:
        """Size of the item index space, padding included."""
        return self.item_vocab.size_with_padding

    @property
    def n_users(self) -> int:
        return self.user_vocab.size_with_padding

    @cached_property
    def item_features(self) -> MetadataFeatures:
        """The Items metadata as model inputs, aligned with the item vocabulary."""
        return build_item_features(self.group.items, self.group.schemas.get(C.ITEMS), self.item_vocab)

    @cached_property
    def user_features(self) -> MetadataFeatures:
        """The Users metadata as model inputs, aligned with the user vocabulary."""
        return build_user_features(self.group.users, self.group.schemas.get(C.USERS), self.user_vocab)

    @cached_property
    def item_interaction_counts(self) -> np.ndarray:
        """(n_items,) how many selected events (all of them, held-out ones too) each item index has."""
        return np.bincount(self.sequences.item_idx, minlength=self.n_items)[:self.n_items]

    @cached_property
    def item_creation_timestamps(self) -> np.ndarray:
        """(n_items,) each item's CREATION_TIMESTAMP (epoch seconds) from the Items dataset, NaN if unknown."""
        out = np.full(self.n_items, np.nan)
        items = self.group.items
        if items is not None and C.CREATION_TIMESTAMP in items.columns:
            items = items.drop_duplicates(C.ITEM_ID, keep="last")
            rows = self.item_vocab.to_idx(items[C.ITEM_ID].astype(str).to_numpy(dtype=object))
            created = pd.to_numeric(items[C.CREATION_TIMESTAMP], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            out[rows[rows > 0]] = created[rows > 0]
        return out

    @cached_property
    def item_text_tokens(self) -> np.ndarray:
        """(n_items, L) hashed words of the Items textual field (L = 0 without one), see text_features."""
        return build_text_tokens(self.group.items, self.group.schemas.get(C.ITEMS), self.item_vocab)

    @property
    def median_history_length(self) -> float:
        """Median number of training events per user (how dense the data is; 0 without users)."""
        lengths = self.split.train.lengths
        return float(np.median(lengths)) if len(lengths) else 0.0

    @cached_property
    def fingerprint(self) -> str:
        """A hash of exactly the events trained and evaluated on, and the catalogue."""
        h = hashlib.sha256()
        for arr in (self.sequences.user_idx, self.sequences.offsets, self.sequences.item_idx, self.sequences.timestamp):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\n".join(map(str, self.item_vocab.ids)).encode())
        return h.hexdigest()[:16]

    @cached_property
    def _description(self) -> DataDescription:
        return DataDescription(
            n_items=self.n_items, n_users=self.n_users,
            context_cardinalities=tuple(v.size_with_padding for v in self.context_vocabs.values()),
            event_type_names=tuple(str(t) for t in self.event_type_vocab.ids) if self.event_type_vocab is not None else (),
            median_history_length=self.median_history_length, item_features=self.item_features,
            user_features=self.user_features, item_text_tokens=self.item_text_tokens,
            item_interaction_counts=self.item_interaction_counts,
            item_creation_timestamps=self.item_creation_timestamps, fingerprint=self.fingerprint,
            split=self.split.kind)

    def describe(self) -> DataDescription:
        """What a recipe may take from this data (`Recipe.from_data`); built once."""
        return self._description
