"""Hold-out splits for evaluation, both rank against the whole catalogue.

* `personalize_holdout`: Amazon Personalize's own. A random 10% of users (with 2+ events) are held
  out; for each, the oldest 90% of the history is the model's input and the newest 10% (at least one
  event) are the targets. The other 90% of users are the training data. Held-out users' input events
  are given to the model only at evaluation, as their history.
* `user_segmentation`: Personalize's split for USER_SEGMENTATION recipes (Item-Affinity,
  Item-Attribute-Affinity): every user with 2+ events keeps the oldest 80% of the history for training and
  the newest 20% (at least one event) as targets; every user is evaluated.
* `leave_one_out`: for every user with 3+ events the last event is the test target, the one before the
  validation target; the rest is training data (users with fewer events are all training data).

Targets are distinct items the user had not interacted with in the history (those are excluded from
ranking, so they could never be hit); users left with no target are not evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from personalize_torch.data.sequences import UserSequences
from personalize_torch.errors import InputError


@dataclass
class EvalSet:
    history: UserSequences      # one row per evaluated user: the model's input (and items to exclude)
    target_offsets: np.ndarray  # (n_users + 1,)
    target_items: np.ndarray    # (n_targets,)

    def __len__(self) -> int:
        return len(self.history)

    def targets_of(self, row: int) -> np.ndarray:
        return self.target_items[self.target_offsets[row]:self.target_offsets[row + 1]]


@dataclass
class Split:
    kind: str
    train: UserSequences
    val: EvalSet
    test: EvalSet | None = None


def make_eval_set(history: UserSequences, target_user_idx: np.ndarray, target_items: np.ndarray) -> EvalSet:
    """Pair histories with targets (events of the same users, any order); drop repeats and seen items."""
    # history.user_idx is sorted (UserSequences are built from events sorted by user).
    rows = np.searchsorted(history.user_idx, target_user_idx)
    rows = np.minimum(rows, max(len(history) - 1, 0))
    if len(history):
        keep = history.user_idx[rows] == target_user_idx
    else:
        keep = np.zeros(len(target_user_idx), dtype=bool)
    rows, items = rows[keep], target_items[keep]
    # Drop duplicates and items already in the user's history: sort the history's (row, item) keys before
    # the targets' (a stable sort keeps that order among equal keys), so a key whose first occurrence is a
    # target is a target the history lacks.
    width = int(max(history.item_idx.max(initial=0), items.max(initial=0))) + 1
    seen_keys = np.repeat(np.arange(len(history)), history.lengths) * width + history.item_idx
    keys = np.concatenate([seen_keys, rows * width + items])
    is_target = np.arange(len(keys)) >= len(seen_keys)
    order = np.argsort(keys, kind="stable")
    keys, is_target = keys[order], is_target[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    keys = keys[first & is_target]
    rows, items = keys // width, keys % width
    evaluated = rows[np.r_[True, rows[1:] != rows[:-1]]] if len(rows) else rows
    hist = history.select_users(evaluated)
    new_row = np.searchsorted(evaluated, rows)
    counts = np.bincount(new_row, minlength=len(evaluated))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return EvalSet(hist, offsets, items.astype(np.int64))


def leave_one_out(seqs: UserSequences) -> Split:
    pos = seqs.position_from_end()
    long_enough = np.repeat(seqs.lengths >= 3, seqs.lengths)
    owner = np.repeat(seqs.user_idx, seqs.lengths)
    train = seqs.select_events(~long_enough | (pos >= 2))
    val_target = long_enough & (pos == 1)
    test_target = long_enough & (pos == 0)
    val = make_eval_set(seqs.select_events(long_enough & (pos >= 2)), owner[val_target], seqs.item_idx[val_target])
    test = make_eval_set(seqs.select_events(long_enough & (pos >= 1)), owner[test_target], seqs.item_idx[test_target])
    return Split("leave_one_out", train, val, test)


def personalize_holdout(seqs: UserSequences, holdout_fraction: float = 0.1, target_fraction: float = 0.1,
                        seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(seqs.lengths >= 2)
    n_holdout = max(1, int(round(holdout_fraction * len(eligible))))
    held = np.zeros(len(seqs), dtype=bool)
    held[rng.choice(eligible, size=n_holdout, replace=False)] = True
    n_targets = np.maximum(1, np.floor(seqs.lengths * target_fraction)).astype(np.int64)
    pos = seqs.position_from_end()
    held_event = np.repeat(held, seqs.lengths)
    is_target = held_event & (pos < np.repeat(n_targets, seqs.lengths))
    owner = np.repeat(seqs.user_idx, seqs.lengths)
    train = seqs.select_events(~held_event)
    val = make_eval_set(seqs.select_events(held_event & ~is_target), owner[is_target], seqs.item_idx[is_target])
    return Split("personalize", train, val, None)


def user_segmentation_holdout(seqs: UserSequences, target_fraction: float = 0.2) -> Split:
    n_targets = np.maximum(1, np.floor(seqs.lengths * target_fraction)).astype(np.int64)
    pos = seqs.position_from_end()
    eligible = np.repeat(seqs.lengths >= 2, seqs.lengths)
    is_target = eligible & (pos < np.repeat(n_targets, seqs.lengths))
    owner = np.repeat(seqs.user_idx, seqs.lengths)
    train = seqs.select_events(~is_target)
    val = make_eval_set(train, owner[is_target], seqs.item_idx[is_target])
    return Split("user_segmentation", train, val, None)


SPLITS = ("personalize", "leave_one_out", "user_segmentation")


def make_split(seqs: UserSequences, kind: str, seed: int = 0) -> Split:
    if kind == "leave_one_out":
        return leave_one_out(seqs)
    if kind == "personalize":
        return personalize_holdout(seqs, seed=seed)
    if kind == "user_segmentation":
        return user_segmentation_holdout(seqs)
    raise InputError(f"unknown split {kind!r}; expected one of {', '.join(SPLITS)}", column="data.split")
