"""Mini-batches: small dataclasses of tensors, built from CSR sequences without per-event loops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from personalize_torch.data.sequences import UserSequences
from personalize_torch.data.split import EvalSet


@dataclass
class SequenceBatch:
    """Users' recent events, oldest to newest, left-padded with item index 0."""

    user_idx: Tensor    # (B,)
    items: Tensor       # (B, T)
    timestamps: Tensor  # (B, T)
    impressions: Tensor | None = None  # (B, T, S) slate shown at each event, right-padded with 0
    context: Tensor | None = None      # (B, T, F) contextual field values of each event (0 = none)
    next_context: Tensor | None = None  # (B, F) the context of the event to predict (a request's `context`)
    event_types: Tensor | None = None  # (B, T) EVENT_TYPE index of each event (0 = none), training batches only
    # (B,) bool: the window begins at the user's first event (training batches; recipes that read Users
    # metadata also predict that first event from the metadata alone, as for a user with no history)
    starts_history: Tensor | None = None
    # The Users metadata of rows whose user the solution does not know (user_idx 0), encoded as the recipe's
    # table (data/metadata_features.py encode_metadata_rows): (B, S) value indices, (B, K) numbers; rows of
    # known users read the recipe's own table. None: no such metadata (scoring only).
    user_values: Tensor | None = None
    user_numeric: Tensor | None = None

    @property
    def mask(self) -> Tensor:
        return self.items > 0  # (B, T)

    def to(self, device) -> SequenceBatch:
        return SequenceBatch(*(t.to(device) if t is not None else None for t in
                               (self.user_idx, self.items, self.timestamps, self.impressions, self.context,
                                self.next_context, self.event_types, self.starts_history, self.user_values,
                                self.user_numeric)))


@dataclass
class EvalBatch:
    inputs: SequenceBatch
    exclude: Tensor  # (B, E) every item of the history, right-padded with 0: never recommended
    targets: Tensor  # (B, M) held-out items, right-padded with 0


def _gather_padded(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int, left: bool) -> np.ndarray:
    """Rows values[starts[b]: starts[b] + lengths[b]] into a (B, width) array padded with 0."""
    B = len(starts)
    out = np.zeros((B, width), dtype=values.dtype)
    if B == 0 or width == 0:
        return out
    col = np.arange(width)
    offset = (width - lengths)[:, None] if left else np.zeros((B, 1), dtype=np.int64)
    k = col[None, :] - offset  # position inside the row
    valid = (k >= 0) & (k < lengths[:, None])
    out[valid] = values[(starts[:, None] + k)[valid]]
    return out


def sequence_batch(seqs: UserSequences, rows: np.ndarray, max_len: int | None = None) -> SequenceBatch:
    """The last `max_len` events (all when None) of the given user rows; row -1 gives an empty history."""
    rows = np.asarray(rows, dtype=np.int64)
    known = rows >= 0
    safe = np.where(known, rows, 0)
    lengths = np.where(known, seqs.lengths[safe] if len(seqs) else 0, 0)
    if max_len is not None:
        lengths = np.minimum(lengths, max_len)
    starts = np.where(known, seqs.offsets[safe + 1] - lengths if len(seqs) else 0, 0)
    width = int(lengths.max(initial=0))
    items = _gather_padded(seqs.item_idx, starts, lengths, width, left=True)
    times = _gather_padded(seqs.timestamp, starts, lengths, width, left=True)
    user_idx = np.where(known, seqs.user_idx[safe] if len(seqs) else 0, 0)
    _, context, _ = _event_extras(seqs, starts, lengths, width, with_event_types=False,
                                  with_impressions=False) if len(seqs) else (None, None, None)
    return SequenceBatch(torch.from_numpy(user_idx), torch.from_numpy(items), torch.from_numpy(times), None, context)


def history_items(seqs: UserSequences, rows: np.ndarray) -> Tensor:
    """Every item of each user row (B, E), right-padded with 0; row -1 gives an empty row."""
    rows = np.asarray(rows, dtype=np.int64)
    known = rows >= 0
    safe = np.where(known, rows, 0)
    lengths = np.where(known, seqs.lengths[safe] if len(seqs) else 0, 0)
    starts = np.where(known, seqs.offsets[safe] if len(seqs) else 0, 0)
    return torch.from_numpy(_gather_padded(seqs.item_idx, starts, lengths, int(lengths.max(initial=0)), left=False))


def eval_batch(eval_set: EvalSet, rows: np.ndarray, max_len: int | None = None) -> EvalBatch:
    rows = np.asarray(rows, dtype=np.int64)
    hist = eval_set.history
    t_lengths = np.diff(eval_set.target_offsets)[rows]
    targets = _gather_padded(eval_set.target_items, eval_set.target_offsets[rows], t_lengths,
                             int(t_lengths.max(initial=0)), left=False)
    return EvalBatch(sequence_batch(hist, rows, max_len), history_items(hist, rows), torch.from_numpy(targets))


def training_windows(seqs: UserSequences, rows: np.ndarray, window: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Cut each user's history into windows of `window` events, newest first, consecutive windows
    sharing one event (so every next-event transition is in exactly one window); windows of fewer than
    2 events are dropped. Returns (row, end) pairs, `end` an exclusive offset into the flat arrays.
    `window=None`: one window per user, the whole history."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = seqs.lengths[rows]
    if window is None:
        return rows, seqs.offsets[rows + 1]
    step = max(window - 1, 1)
    n_windows = np.maximum(1, np.ceil((lengths - 1) / step).astype(np.int64))  # windows per user
    row_of = np.repeat(rows, n_windows)
    k = np.arange(n_windows.sum()) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    ends = seqs.offsets[row_of + 1] - k * step
    return row_of, ends


def window_batch(seqs: UserSequences, rows: np.ndarray, ends: np.ndarray, max_len: int | None) -> SequenceBatch:
    """Events [max(user start, end - max_len), end) of each (row, end) pair, left-padded."""
    starts = seqs.offsets[rows]
    if max_len is not None:
        starts = np.maximum(starts, ends - max_len)
    lengths = ends - starts
    width = int(lengths.max(initial=0))
    items = _gather_padded(seqs.item_idx, starts, lengths, width, left=True)
    times = _gather_padded(seqs.timestamp, starts, lengths, width, left=True)
    impressions, context, event_types = _event_extras(seqs, starts, lengths, width)
    return SequenceBatch(torch.from_numpy(seqs.user_idx[rows]), torch.from_numpy(items), torch.from_numpy(times),
                         impressions, context, None, event_types, torch.from_numpy(starts == seqs.offsets[rows]))


def _event_extras(seqs: UserSequences, starts: np.ndarray, lengths: np.ndarray, width: int,
                  with_event_types: bool = True, with_impressions: bool = True
                  ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Impression slates (B, T, S), context (B, T, F) and event types (B, T) of left-padded event windows,
    when the data has them (slates and event types only when asked: training reads them, scoring does not)."""
    event_types = None
    if with_event_types and seqs.event_type is not None:
        event_types = torch.from_numpy(_gather_padded(seqs.event_type.astype(np.int64), starts, lengths, width,
                                                      left=True))
    slates = seqs.impressions if with_impressions else None
    if slates is None and seqs.context is None:
        return None, None, event_types
    event = _gather_padded(np.arange(1, len(seqs.item_idx) + 1), starts, lengths, width, left=True) - 1  # -1: pad
    impressions = torch.from_numpy(slates.padded(event)) if slates is not None else None
    context = None
    if seqs.context is not None:
        values = seqs.context[np.maximum(event, 0)]                                   # (B, T, F)
        context = torch.from_numpy(np.where((event >= 0)[..., None], values, 0))
    return impressions, context, event_types


class EpochSetter:
    """A batch sampler's `sampler` attribute that passes `set_epoch` on to the batch sampler: at the start of
    every epoch Lightning calls `set_epoch` on a DataLoader's `sampler` and on its `batch_sampler.sampler`,
    never on the batch sampler itself (lightning_fabric.utilities.data._set_sampler_epoch)."""

    def __init__(self, batch_sampler):
        self.batch_sampler = batch_sampler

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)


class LengthBuckets:
    """Batch sampler over training windows that puts windows of similar length together.

    Short-history data is mostly padding when random windows share a batch: on Amazon Beauty (median
    history 4 events, bptt 50) a shuffled batch is as wide as its longest window and 85% of the input
    positions are padding, which the transformer and attention still compute. Here each epoch sorts the
    windows by length (ties in random order), cuts the sorted list into `n_batches` runs holding about
    the same number of events (so each step predicts about as many events as a random batch of
    `batch_size` windows would), and yields the runs in random order. The cut points depend only on
    the lengths, so every epoch has the same number of batches.

    Distributed training (`world_size` > 1, Lightning's DDP): every process draws the same epoch order
    from (`seed`, epoch) and takes every `world_size`-th batch from position `rank`, the same number of
    batches each (a remainder of fewer than `world_size` batches is left out of that epoch), so the
    processes step together and together see each window at most once per epoch. Lightning calls
    `set_epoch` at the start of every epoch, through `sampler` (see `EpochSetter`).
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.rank, self.world_size, self.seed, self.epoch = rank, world_size, seed, 0
        self.lengths = np.asarray(lengths, dtype=np.int64)
        n = len(self.lengths)
        n_batches = max(1, -(-n // max(batch_size, 1)))
        cum = np.cumsum(np.sort(self.lengths))
        total = int(cum[-1]) if n else 0
        cuts = np.searchsorted(cum, total * np.arange(1, n_batches) / n_batches, side="right")
        self.bounds = np.unique(np.concatenate([[0], cuts, [n]])) if n else np.array([0])
        self.sampler = EpochSetter(self)

    @property
    def n_batches(self) -> int:
        return len(self.bounds) - 1

    def __len__(self) -> int:
        return self.n_batches // self.world_size if self.world_size > 1 else self.n_batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        if self.world_size > 1:   # the same order in every process
            rng = np.random.default_rng([self.seed, self.epoch])
        else:                     # follows torch's seed (seed_everything)
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        order = np.lexsort((rng.random(len(self.lengths)), self.lengths))   # by length, ties shuffled
        batches = rng.permutation(self.n_batches)
        if self.world_size > 1:
            batches = batches[self.rank::self.world_size][:len(self)]
        for b in batches:
            yield order[self.bounds[b]:self.bounds[b + 1]].tolist()


def window_lengths(seqs: UserSequences, rows: np.ndarray, ends: np.ndarray, max_len: int | None) -> np.ndarray:
    """Number of events in each (row, end) training window."""
    starts = seqs.offsets[rows]
    lengths = ends - starts
    return np.minimum(lengths, max_len) if max_len is not None else lengths


class WindowCollate:
    """Collate function of a DataLoader over indices into (row, end) training windows."""

    def __init__(self, seqs: UserSequences, rows: np.ndarray, ends: np.ndarray, max_len: int | None):
        self.seqs, self.rows, self.ends, self.max_len = seqs, rows, ends, max_len

    def __call__(self, picks: list[int]) -> SequenceBatch:
        picks = np.asarray(picks)
        return window_batch(self.seqs, self.rows[picks], self.ends[picks], self.max_len)


class EvalCollate:
    def __init__(self, eval_set: EvalSet, max_len: int | None):
        self.eval_set, self.max_len = eval_set, max_len

    def __call__(self, rows: list[int]) -> EvalBatch:
        return eval_batch(self.eval_set, np.asarray(rows), self.max_len)
