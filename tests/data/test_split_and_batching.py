"""Sequences, hold-out splits and padded batches on tiny hand-made data."""

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.batching import eval_batch, history_items, sequence_batch
from personalize_torch.data.sequences import encode_interactions
from personalize_torch.data.split import leave_one_out, personalize_holdout
from personalize_torch.data.vocab import Vocab


def tiny_interactions() -> pd.DataFrame:
    # user a: x(1) y(2) z(3) w(4); user b: y(5) x(6) z(7); user c: w(8) only. Rows shuffled on purpose.
    rows = [("a", "z", 3), ("b", "x", 6), ("a", "x", 1), ("c", "w", 8), ("a", "w", 4), ("b", "y", 5),
            ("a", "y", 2), ("b", "z", 7)]
    return pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.TIMESTAMP])


def encoded():
    df = tiny_interactions()
    items = Vocab.sorted_from(df[C.ITEM_ID])   # w=1 x=2 y=3 z=4
    users = Vocab.sorted_from(df[C.USER_ID])   # a=1 b=2 c=3
    return encode_interactions(df, users, items), items, users


def test_vocab_roundtrip_and_unknown_ids():
    v = Vocab.sorted_from(["b", "a", "c", "a"])
    assert v.to_idx(["a", "c", "zz"]).tolist() == [1, 3, 0]
    assert v.to_id([2]).tolist() == ["b"]
    assert v.extended(["d", "a"]).to_idx(["a", "d"]).tolist() == [1, 4]


def test_sequences_are_chronological_per_user():
    seqs, items, _ = encoded()
    assert seqs.user_idx.tolist() == [1, 2, 3]
    assert items.to_id(seqs.items_of(0)).tolist() == ["x", "y", "z", "w"]
    assert items.to_id(seqs.items_of(1)).tolist() == ["y", "x", "z"]
    assert seqs.timestamps_of(1).tolist() == [5, 6, 7]


def test_leave_one_out_targets_last_and_second_last():
    seqs, items, _ = encoded()
    split = leave_one_out(seqs)
    # a: train x y, val target z, test target w; b: train y, val x, test z; c (1 event): train only.
    assert [items.to_id(split.train.items_of(r)).tolist() for r in range(len(split.train))] == \
        [["x", "y"], ["y"], ["w"]]
    assert items.to_id(split.val.target_items).tolist() == ["z", "x"]
    assert items.to_id(split.test.target_items).tolist() == ["w", "z"]
    assert items.to_id(split.test.history.items_of(0)).tolist() == ["x", "y", "z"]


def test_personalize_holdout_keeps_oldest_90_percent_as_input():
    rng = np.random.default_rng(0)
    n_users, per_user = 200, 20
    df = pd.DataFrame({
        C.USER_ID: np.repeat([f"u{i}" for i in range(n_users)], per_user),
        C.ITEM_ID: [f"i{j}" for j in rng.permutation(per_user * n_users) % 500],
        C.TIMESTAMP: np.tile(np.arange(per_user), n_users),
    })
    seqs = encode_interactions(df, Vocab.sorted_from(df[C.USER_ID]), Vocab.sorted_from(df[C.ITEM_ID]))
    split = personalize_holdout(seqs, seed=1)
    assert len(split.train) == 180 and len(split.val) <= 20
    assert set(split.train.user_idx).isdisjoint(split.val.history.user_idx)
    for row in range(len(split.val)):
        hist_t = split.val.history.timestamps_of(row)
        assert hist_t.tolist() == list(range(18))                 # oldest 90% as input
        assert 1 <= len(split.val.targets_of(row)) <= 2           # newest 10% (2 events) as targets
        assert not set(split.val.targets_of(row)) & set(split.val.history.items_of(row))


def test_batches_pad_histories_left_and_targets_right():
    seqs, items, _ = encoded()
    batch = sequence_batch(seqs, np.array([0, 1, -1]), max_len=3)
    assert items.to_id(batch.items[0].numpy()).tolist() == ["y", "z", "w"]   # last 3 of a
    assert batch.items[1].tolist()[0] > 0 and batch.items[2].tolist() == [0, 0, 0]  # unknown user: empty
    assert batch.mask.sum(1).tolist() == [3, 3, 0]
    assert history_items(seqs, np.array([1, -1])).tolist() == [[3, 2, 4], [0, 0, 0]]
    split = leave_one_out(seqs)
    eb = eval_batch(split.test, np.array([0, 1]), max_len=2)
    assert eb.inputs.items.tolist() == [[3, 4], [3, 2]]
    assert eb.exclude.tolist() == [[2, 3, 4], [3, 2, 0]]
    assert eb.targets.tolist() == [[1], [4]]


def test_training_windows_cover_every_transition_once():
    from personalize_torch.data.batching import training_windows, window_batch

    seqs, items, _ = encoded()   # a: x y z w (4 events), b: y x z (3), c: w (1)
    rows, ends = training_windows(seqs, np.arange(3), window=3)
    batch = window_batch(seqs, rows, ends, max_len=3)
    windows = [items.to_id(r[r > 0].numpy()).tolist() for r in batch.items]
    # a -> [y z w] and [x y] (sharing y); b -> [y x z]; c -> [w] (no transition, kept as is)
    assert windows == [["y", "z", "w"], ["x", "y"], ["y", "x", "z"], ["w"]]
    transitions = sum(len(w) - 1 for w in windows)
    assert transitions == (4 - 1) + (3 - 1) + 0
    whole_rows, whole_ends = training_windows(seqs, np.arange(3), window=None)
    assert whole_ends.tolist() == seqs.offsets[1:].tolist()


def test_impressions_follow_their_events_through_sorting_splitting_and_batching():
    from personalize_torch.data.batching import training_windows, window_batch

    df = tiny_interactions()
    slate_of = {("a", "x"): "", ("a", "y"): "z|y", ("a", "z"): "z|w", ("a", "w"): "w|x|y",
                ("b", "y"): "y", ("b", "x"): "x|y|unknown", ("b", "z"): "z", ("c", "w"): "w"}
    df[C.IMPRESSION] = [slate_of[(u, i)] for u, i in zip(df[C.USER_ID], df[C.ITEM_ID])]
    items = Vocab.sorted_from(df[C.ITEM_ID])
    seqs = encode_interactions(df, Vocab.sorted_from(df[C.USER_ID]), items)
    slates = [items.to_id(seqs.impressions.row(e)).tolist() if len(seqs.impressions.row(e)) else []
              for e in range(len(seqs.item_idx))]
    # a: x("") y(z|y) z(z|w) w(w|x|y); b: y(y) x(x|y|unknown -> unknown dropped) z(z); c: w(w)
    assert slates == [[], ["z", "y"], ["z", "w"], ["w", "x", "y"], ["y"], ["x", "y"], ["z"], ["w"]]
    train = leave_one_out(seqs).train   # a: x y; b: y; c: w
    rows, ends = training_windows(train, np.arange(len(train)), window=None)
    batch = window_batch(train, rows, ends, None)
    assert batch.impressions.shape == (3, 2, 2)
    assert batch.impressions[0].tolist() == [[0, 0], [4, 3]]     # a: x has no slate, y shown with z
    assert batch.impressions[1].tolist() == [[0, 0], [3, 0]]     # b (left-padded): y


def test_context_columns_are_encoded_per_event_and_batched():
    from personalize_torch.data.batching import training_windows, window_batch
    from personalize_torch.data.sequences import build_context_vocabs, context_fields

    df = tiny_interactions()
    df["DEVICE"] = ["mobile" if u == "a" and i in ("x", "y") else "desktop" for u, i in zip(df[C.USER_ID], df[C.ITEM_ID])]
    df.loc[df[C.USER_ID] == "c", "DEVICE"] = None
    assert context_fields(df) == ["DEVICE"]
    vocabs = build_context_vocabs(df, ["DEVICE"])                    # desktop=1 mobile=2
    seqs = encode_interactions(df, Vocab.sorted_from(df[C.USER_ID]), Vocab.sorted_from(df[C.ITEM_ID]), vocabs)
    assert seqs.context[:, 0].tolist() == [2, 2, 1, 1, 1, 1, 1, 0]  # a: x y z w, b: y x z, c: w (missing)
    rows, ends = training_windows(seqs, np.arange(3), window=3)
    batch = window_batch(seqs, rows, ends, 3)
    assert batch.context[..., 0].tolist() == [[2, 1, 1], [0, 2, 2], [1, 1, 1], [0, 0, 0]]
    latest = sequence_batch(seqs, np.array([0, -1]), max_len=2)
    assert latest.context[..., 0].tolist() == [[1, 1], [0, 0]]


def test_length_buckets_cover_every_window_once_with_similar_lengths_per_batch():
    import torch

    from personalize_torch.data.batching import LengthBuckets

    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.geometric(0.2, 1000) + 1, 51)
    sampler = LengthBuckets(lengths, batch_size=64)
    torch.manual_seed(0)
    epochs = [list(sampler) for _ in range(2)]
    for batches in epochs:
        assert len(batches) == len(sampler) == 16               # as many steps as 64-window batches
        assert sorted(i for b in batches for i in b) == list(range(1000))
        events = [lengths[b].sum() for b in batches]
        assert max(events) < 1.5 * lengths.sum() / 16            # about equal events per step ...
        padded = sum(len(b) * lengths[b].max() for b in batches)
        assert padded < 1.25 * lengths.sum()                     # ... and little padding (random: ~4x)
    assert epochs[0] != epochs[1]                                # a new order each epoch


def test_lightning_gives_distributed_length_buckets_a_new_order_every_epoch():
    """With several processes the order comes from (seed, epoch): Lightning's own set_epoch call at each
    epoch's start (on a DataLoader's sampler and batch_sampler.sampler) must reach the batch sampler, or
    every epoch repeats the first one's batches."""
    from lightning_fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    from personalize_torch.data.batching import LengthBuckets
    from personalize_torch.data.datamodule import FirstBatches

    lengths = np.minimum(np.random.default_rng(0).geometric(0.2, 400) + 1, 51)
    for make in (lambda: LengthBuckets(lengths, 32, rank=1, world_size=2, seed=3),
                 lambda: FirstBatches(LengthBuckets(lengths, 32, rank=1, world_size=2, seed=3), 5)):
        loader = DataLoader(range(len(lengths)), batch_sampler=make(), collate_fn=lambda b: b)
        orders = []
        for epoch in range(3):
            _set_sampler_epoch(loader, epoch)
            orders.append(list(loader.batch_sampler))
        assert orders[0] != orders[1] and orders[1] != orders[2]
        _set_sampler_epoch(loader, 1)
        assert list(loader.batch_sampler) == orders[1]          # the same epoch, the same order (resume)
