"""Loaders on a large catalogue: validation ranks a seeded sample of users, evaluation batches stay bounded,
and categorical ids encode exactly as string ids do."""

import numpy as np
import pandas as pd
import pytest

from personalize_torch.data import constants as C
from personalize_torch.data import datamodule
from personalize_torch.data.datamodule import InteractionsDataModule, validation_sample_size
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.prepared import PreparedData
from personalize_torch.errors import InputError


def _group(n_users=300, n_items=50, extra_items=0, categorical=False, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat([f"u{i:04d}" for i in range(n_users)], 6)
    items = [f"i{k:03d}" for k in rng.integers(0, n_items, len(users))]
    frame = pd.DataFrame({C.USER_ID: users, C.ITEM_ID: items,
                          C.TIMESTAMP: rng.integers(1_600_000_000, 1_600_100_000, len(users))})
    if categorical:
        frame = frame.astype({C.USER_ID: "category", C.ITEM_ID: "category"})
    catalogue = pd.DataFrame({C.ITEM_ID: [f"i{k:03d}" for k in range(n_items + extra_items)], "G": "x"})
    return DatasetGroup(frame, catalogue if extra_items else None)


def test_validation_sample_size():
    assert validation_sample_size(5000, 10_000, None) == 5000
    assert validation_sample_size(5000, 10_000, "auto") == 5000            # small catalogue: everyone
    assert validation_sample_size(10**6, 10**6, "auto") == 10_000          # 10^10 scores
    assert validation_sample_size(10**6, 10**9, "auto") == 1000            # never fewer than 1,000
    assert validation_sample_size(5000, 10, 200) == 200
    assert validation_sample_size(50, 10, 200) == 50
    for bad in (0, -3, "some"):
        with pytest.raises(InputError) as err:
            validation_sample_size(5000, 10, bad)
        assert err.value.column == "data.validation_users"


def test_validation_ranks_a_seeded_sample_and_test_every_user():
    data = PreparedData(_group(), split="leave_one_out")
    n_val = len(data.split.val)
    dm = InteractionsDataModule(data, validation_users=40, seed=3)
    assert len(dm.validation_rows) == 40 and len(set(dm.validation_rows.tolist())) == 40
    assert set(dm.val_dataloader().dataset) == set(dm.validation_rows.tolist())
    assert np.array_equal(dm.validation_rows, InteractionsDataModule(data, validation_users=40, seed=3).validation_rows)
    assert not np.array_equal(dm.validation_rows, InteractionsDataModule(data, validation_users=40, seed=4).validation_rows)
    assert len(dm.val_dataloader().dataset) == 40
    assert len(dm.test_dataloader().dataset) == len(data.split.test)
    assert len(InteractionsDataModule(data).val_dataloader().dataset) == n_val
    sampled_test = InteractionsDataModule(data, test_users=25, seed=3).test_dataloader().dataset
    assert len(sampled_test) == 25 and set(sampled_test) <= set(range(len(data.split.test)))


def test_evaluation_batches_shrink_with_the_catalogue(monkeypatch):
    monkeypatch.setattr(datamodule, "EVAL_BATCH_SCORES", 4000)
    data = PreparedData(_group(extra_items=950), split="leave_one_out")     # 1,000 items
    dm = InteractionsDataModule(data, eval_batch_size=256)
    assert dm.eval_batch_size == 3
    assert max(len(batch) for batch in dm.val_dataloader().batch_sampler) <= 3


def test_categorical_ids_prepare_exactly_as_strings():
    as_strings = PreparedData(_group(extra_items=20), split="leave_one_out")
    group = _group(extra_items=20, categorical=True)
    # categories in an order unlike the sorted one, as an import leaves them
    group.interactions[C.USER_ID] = group.interactions[C.USER_ID].cat.reorder_categories(
        group.interactions[C.USER_ID].cat.categories[::-1])
    as_codes = PreparedData(group, split="leave_one_out")
    assert as_codes.fingerprint == as_strings.fingerprint
    assert list(as_codes.user_vocab.ids) == list(as_strings.user_vocab.ids)
    assert np.array_equal(as_codes.split.test.target_items, as_strings.split.test.target_items)


def test_each_process_evaluates_its_share_of_the_users():
    from types import SimpleNamespace

    data = PreparedData(_group(), split="leave_one_out")
    shares = []
    for rank in range(3):
        dm = InteractionsDataModule(data, validation_users=100, seed=1)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=3)
        shares.append((list(dm.val_dataloader().dataset), list(dm.test_dataloader().dataset)))
    val = [u for share, _ in shares for u in share]
    test = [u for _, share in shares for u in share]
    assert sorted(val) == sorted(InteractionsDataModule(data, validation_users=100, seed=1).validation_rows.tolist())
    assert sorted(test) == list(range(len(data.split.test)))                # every user once, in one process
    assert max(len(s) for s, _ in shares) - min(len(s) for s, _ in shares) <= 1


def test_under_ddp_a_step_splits_the_batch_so_an_epoch_keeps_its_steps():
    from types import SimpleNamespace

    data = PreparedData(_group(), split="leave_one_out")
    single = InteractionsDataModule(data, batch_size=32, seed=1)
    steps = len(single.train_dataloader())
    for length_buckets in (True, False):
        sizes = []
        for rank in range(2):
            dm = InteractionsDataModule(data, batch_size=32, seed=1, length_buckets=length_buckets)
            dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
            loader = dm.train_dataloader()
            assert abs(len(loader) - steps) <= 1
            if not length_buckets:
                sizes += [batch.items.shape[0] for batch in loader]
        if not length_buckets:
            assert max(sizes) == 16                                      # each process: half of the batch
