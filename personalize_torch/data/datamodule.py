"""LightningDataModule: a dataset group -> selected events -> vocabularies -> split -> loaders."""

from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np
import pandas as pd
import pytorch_lightning as pl
from torch.utils.data import DataLoader, DistributedSampler

from personalize_torch.data import constants as C
from personalize_torch.data.batching import (EvalCollate, LengthBuckets, WindowCollate, training_windows,
                                             window_lengths)
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.event_selection import select_events
from personalize_torch.data.item_features import ItemFeatures, build_item_features, build_user_features
from personalize_torch.data.minimum_data import check_minimum_data
from personalize_torch.data.sequences import (UserSequences, build_context_vocabs, context_fields,
                                              encode_interactions)
from personalize_torch.data.split import Split, make_split
from personalize_torch.data.text_features import build_text_tokens
from personalize_torch.data.vocab import Vocab
from personalize_torch.errors import InputError


class InteractionsDataModule(pl.LightningDataModule):
    def __init__(self, group: DatasetGroup, split: str = "personalize", event_type: str | None = None,
                 event_value_threshold: float | None = None, batch_size: int = 256, eval_batch_size: int = 256,
                 max_len: int | None = None, seed: int = 0, check_minimum: bool = True, length_buckets: bool = True,
                 event_parameters: list[dict] | None = None):
        super().__init__()
        self.group = group
        self.split_kind = split
        self.event_type = event_type
        self.event_value_threshold = event_value_threshold
        self.event_parameters = event_parameters  # eventsConfig: [{event_type, event_value_threshold}]
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.max_len = max_len  # how many recent events a model reads; set from the recipe
        self.train_max_len = max_len  # how many recent events a training example holds
        self.train_length_percentiles: tuple[float, float] | None = None  # drop training users outside these
        self.seed = seed
        self.check_minimum = check_minimum
        self.length_buckets = length_buckets  # batch windows / users of similar length (see LengthBuckets)
        self.split: Split | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.split is not None:
            return
        source = self.group.source
        self.interactions = select_events(self.group.interactions, self.event_type, self.event_value_threshold,
                                          source=source, event_parameters=self.event_parameters)
        if self.check_minimum:
            check_minimum_data(self.interactions, source=source)
        self.item_vocab = Vocab(self.group.catalogue_item_ids())
        self.user_vocab = Vocab.sorted_from(self.interactions[C.USER_ID])
        fields = context_fields(self.interactions, self.group.schemas.get(C.INTERACTIONS))
        self.context_vocabs = build_context_vocabs(self.interactions, fields)
        self.event_type_vocab = (Vocab.sorted_from(self.interactions[C.EVENT_TYPE].dropna().astype(str))
                                 if C.EVENT_TYPE in self.interactions.columns else None)
        self.sequences: UserSequences = encode_interactions(self.interactions, self.user_vocab, self.item_vocab,
                                                            self.context_vocabs, self.event_type_vocab)
        self.split = make_split(self.sequences, self.split_kind, seed=self.seed)

    @property
    def n_items(self) -> int:
        """Size of the item index space, padding included."""
        return self.item_vocab.size_with_padding

    @cached_property
    def item_features(self) -> ItemFeatures:
        """The Items metadata as model inputs, aligned with the item vocabulary."""
        return build_item_features(self.group.items, self.group.schemas.get(C.ITEMS), self.item_vocab)

    @cached_property
    def user_features(self) -> ItemFeatures:
        """The Users metadata as model inputs, aligned with the user vocabulary (HRNN-Meta reads it)."""
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
    def context_cardinalities(self) -> list[int]:
        """Size of each contextual field's index space (padding / unknown = 0 included), in field order."""
        return [v.size_with_padding for v in self.context_vocabs.values()]

    @property
    def median_history_length(self) -> float:
        """Median number of training events per user (how dense the data is; 0 without users)."""
        lengths = self.split.train.lengths
        return float(np.median(lengths)) if len(lengths) else 0.0

    @property
    def n_users(self) -> int:
        return self.user_vocab.size_with_padding

    def fingerprint(self) -> str:
        """A hash of exactly the events trained and evaluated on, and the catalogue."""
        h = hashlib.sha256()
        for arr in (self.sequences.user_idx, self.sequences.offsets, self.sequences.item_idx, self.sequences.timestamp):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\n".join(map(str, self.item_vocab.ids)).encode())
        return h.hexdigest()[:16]

    def configure_for(self, recipe) -> None:
        """Take the recipe's input length, training window, history-length trims and, when it sets one,
        its training batch size."""
        if getattr(recipe, "train_batch_size", None):
            self.batch_size = int(recipe.train_batch_size)
        self.max_len = recipe.input_length
        self.train_max_len = recipe.train_length
        self.train_length_percentiles = recipe.train_user_length_percentiles

    def train_rows(self) -> np.ndarray:
        """Training users (rows of split.train), trimmed by history-length percentiles when asked."""
        lengths = self.split.train.lengths
        if self.train_length_percentiles is None or not len(lengths):
            return np.arange(len(lengths))
        low, high = np.quantile(lengths, self.train_length_percentiles)
        rows = np.flatnonzero((lengths >= low) & (lengths <= high))
        if not len(rows):
            raise InputError(f"min/max_user_history_length_percentile {self.train_length_percentiles} leave no "
                             "training users", column="max_user_history_length_percentile")
        return rows

    def train_dataloader(self) -> DataLoader:
        """Every training user's history cut into windows of `train_max_len` events, shuffled; with
        `length_buckets`, windows of similar length share a batch (batching.LengthBuckets)."""
        rows, ends = training_windows(self.split.train, self.train_rows(), self.train_max_len)
        collate = WindowCollate(self.split.train, rows, ends, self.train_max_len)
        rank, world = self._process()
        if self.length_buckets:
            lengths = window_lengths(self.split.train, rows, ends, self.train_max_len)
            return DataLoader(range(len(rows)), batch_sampler=LengthBuckets(lengths, self.batch_size, rank, world,
                                                                           self.seed), collate_fn=collate)
        if world > 1:
            sampler = DistributedSampler(range(len(rows)), num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
            return DataLoader(range(len(rows)), batch_size=self.batch_size, sampler=sampler, collate_fn=collate)
        return DataLoader(range(len(rows)), batch_size=self.batch_size, shuffle=True, collate_fn=collate)

    def _process(self) -> tuple[int, int]:
        """(rank, world size) of this training process: (0, 1) unless Lightning runs several (DDP). The
        training batches are sharded here (the trainer runs with use_distributed_sampler=False); every
        process evaluates all users, so the metrics need no gathering."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _eval_loader(self, eval_set) -> DataLoader:
        """Users in order of history length when `length_buckets` (metrics are sums over users, so the
        order changes nothing but the padding: a batch is as wide as its longest history)."""
        users = np.arange(len(eval_set))
        if self.length_buckets:
            users = np.argsort(np.minimum(eval_set.history.lengths, self.max_len or np.iinfo(np.int64).max),
                               kind="stable")
        return DataLoader(users.tolist(), batch_size=self.eval_batch_size, collate_fn=EvalCollate(eval_set, self.max_len))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split.val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split.test if self.split.test is not None else self.split.val)
