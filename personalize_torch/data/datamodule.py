"""LightningDataModule: the loaders of prepared data, shaped by what the recipe declares it needs.

    InteractionsDataModule(data, recipe.loader_needs(), batch_size=256)

`LoaderNeeds` is the recipe's side of the contract: how many recent events it reads, how long a training
window is, which training users to keep, and (when the recipe sets one) its training batch size. The data
module reads it once, when built; nothing is pushed into it afterwards.

Evaluation ranks the whole catalogue for each evaluated user. On a large catalogue two settings keep
that bounded: `validation_users` (validation ranks for a seeded sample of users; `auto` samples only when
the catalogue is so large that ranking it for every user would cost more than VALIDATION_BUDGET scores) and
the evaluation batch, cut so that one batch's scores stay within EVAL_BATCH_SCORES floats. The test set is
every user unless `test_users` asks for a sample.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler

from personalize_torch.data.batching import (
    EpochSetter,
    EvalCollate,
    LengthBuckets,
    WindowCollate,
    training_windows,
    window_lengths,
)
from personalize_torch.data.prepared import PreparedData
from personalize_torch.errors import InputError

VALIDATION_BUDGET = 10**10     # scores (users x items) a validation pass ranks with validation_users=auto
MIN_VALIDATION_USERS = 1000
EVAL_BATCH_SCORES = 2**26      # floats in one evaluation batch's (users x items) scores: 256 MB


def validation_sample_size(n_users: int, n_items: int, validation_users: int | str | None,
                           setting: str = "data.validation_users") -> int:
    """How many of `n_users` evaluated users to rank: all (None), a given number, or `auto` (all unless
    n_users x n_items exceeds VALIDATION_BUDGET, then as many as fit, at least MIN_VALIDATION_USERS)."""
    if validation_users is None:
        return n_users
    if validation_users == "auto":
        return min(n_users, max(MIN_VALIDATION_USERS, VALIDATION_BUDGET // max(n_items, 1)))
    try:
        wanted = int(validation_users)
    except (TypeError, ValueError):
        wanted = 0
    if wanted < 1:
        raise InputError(f"expected a positive number of users, auto or null, got {validation_users!r}",
                         column=setting)
    return min(n_users, wanted)


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """`size` of the rows 0..n-1, a seeded sample in row order (all of them when size >= n)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


class FirstBatches:
    """The first `n` batches of a batch sampler each epoch (passing `set_epoch` on)."""

    def __init__(self, batches, n: int):
        self.batches, self.n = batches, n
        self.sampler = EpochSetter(self)   # Lightning's set_epoch reaches `set_epoch` below through it

    def set_epoch(self, epoch: int) -> None:
        if isinstance(self.batches, LengthBuckets):
            self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.n)


def fewest_batches(n: int) -> int:
    """The smallest `n` over the training processes (each holding its own share of the users, they must
    take as many steps as each other)."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return n
    count = torch.tensor([n], dtype=torch.int64)
    torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.MIN)
    return int(count.item())


@dataclass(frozen=True)
class LoaderNeeds:
    input_length: int | None = None    # recent events the model reads per user (None: the whole history)
    train_length: int | None = None    # events a training window holds (None: the whole history)
    # drop training users whose history length is outside these percentiles (None: keep all)
    train_user_length_percentiles: tuple[float, float] | None = None
    batch_size: int | None = None      # training windows per batch (None: the data module's batch_size)


class InteractionsDataModule(pl.LightningDataModule):
    def __init__(self, data: PreparedData, needs: LoaderNeeds = LoaderNeeds(), batch_size: int = 256,
                 eval_batch_size: int = 256, seed: int = 0, length_buckets: bool = True,
                 validation_users: int | str | None = "auto", test_users: int | None = None):
        super().__init__()
        self.data = data
        self.needs = needs
        self.batch_size = needs.batch_size or batch_size
        self.eval_batch_size = max(1, min(eval_batch_size, EVAL_BATCH_SCORES // max(data.n_items, 1)))
        val, test = data.split.val, data.split.test
        self.validation_rows = sample_rows(len(val), validation_sample_size(len(val), data.n_items, validation_users),
                                           seed)
        # the data is one share of the users, read by this process alone (torchrun on a dataset group)
        self.holds_a_share = data.group.share is not None
        self.test_rows = None if test is None or test_users is None else sample_rows(
            len(test), validation_sample_size(len(test), data.n_items, test_users, "data.test_users"), seed)
        self.seed = seed
        self.length_buckets = length_buckets  # batch windows / users of similar length (see LengthBuckets)

    def train_rows(self) -> np.ndarray:
        """Training users (rows of split.train), trimmed by history-length percentiles when asked."""
        lengths = self.data.split.train.lengths
        percentiles = self.needs.train_user_length_percentiles
        if percentiles is None or not len(lengths):
            return np.arange(len(lengths))
        low, high = np.quantile(lengths, percentiles)
        rows = np.flatnonzero((lengths >= low) & (lengths <= high))
        if not len(rows):
            raise InputError(f"min/max_user_history_length_percentile {percentiles} leave no "
                             "training users", column="max_user_history_length_percentile")
        return rows

    def train_dataloader(self) -> DataLoader:
        """Every training user's history cut into windows of `train_length` events, shuffled; with
        `length_buckets`, windows of similar length share a batch (batching.LengthBuckets). With several
        processes a process's batch is its share of the batch size, so a step sees as many windows, and an
        epoch has as many steps, as with one process; when each process holds its own share of the users,
        every process takes as many batches as the one with fewest."""
        train, window = self.data.split.train, self.needs.train_length
        rows, ends = training_windows(train, self.train_rows(), window)
        collate = WindowCollate(train, rows, ends, window)
        rank, world = self._process()
        batch_size = -(-self.batch_size // world)
        if self.holds_a_share:
            if self.length_buckets:
                batches = LengthBuckets(window_lengths(train, rows, ends, window), batch_size, seed=self.seed + rank)
            else:
                batches = BatchSampler(RandomSampler(range(len(rows)), generator=torch.Generator().manual_seed(
                    self.seed + rank)), batch_size, drop_last=False)
            return DataLoader(range(len(rows)), batch_sampler=FirstBatches(batches, fewest_batches(len(batches))),
                              collate_fn=collate)
        if self.length_buckets:
            lengths = window_lengths(train, rows, ends, window)
            return DataLoader(range(len(rows)), batch_sampler=LengthBuckets(lengths, batch_size, rank, world,
                                                                           self.seed), collate_fn=collate)
        if world > 1:
            sampler = DistributedSampler(range(len(rows)), num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
            return DataLoader(range(len(rows)), batch_size=batch_size, sampler=sampler, collate_fn=collate)
        return DataLoader(range(len(rows)), batch_size=self.batch_size, shuffle=True, collate_fn=collate)

    def _process(self) -> tuple[int, int]:
        """(rank, world size) of this training process: (0, 1) unless Lightning runs several (DDP). The
        training batches and the evaluated users are sharded here (the trainer runs with
        use_distributed_sampler=False); the metrics' sums are added up across processes (RankingMetrics)."""
        if self.trainer is None:
            return 0, 1
        return int(self.trainer.global_rank), int(self.trainer.world_size)

    def eval_loader(self, eval_set, users: np.ndarray | None = None) -> DataLoader:
        """The users `users` of `eval_set` (all by default), in order of history length when `length_buckets`
        (metrics are sums over users, so the order changes nothing but the padding: a batch is as wide as
        its longest history)."""
        users = np.arange(len(eval_set)) if users is None else np.asarray(users)
        if not self.holds_a_share:
            rank, world = self._process()
            users = users[rank::world]                # each process evaluates its share of the users
        max_len = self.needs.input_length
        if self.length_buckets:
            lengths = eval_set.history.lengths[users]
            users = users[np.argsort(np.minimum(lengths, max_len or np.iinfo(np.int64).max), kind="stable")]
        return DataLoader(users.tolist(), batch_size=self.eval_batch_size, collate_fn=EvalCollate(eval_set, max_len))

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader(self.data.split.val, self.validation_rows)

    def test_dataloader(self) -> DataLoader:
        split = self.data.split
        if split.test is None:
            return self.eval_loader(split.val)
        return self.eval_loader(split.test, self.test_rows)
