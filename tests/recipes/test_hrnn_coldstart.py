"""HRNN-Coldstart: which items are cold (hand-computed), the errors that name what to change, and that only
cold items are scored and served. (Learning on a newest-items split: `bench/hrnn_meta.py coldstart`.)"""

import numpy as np
import pytest
import torch

from personalize_torch.data import constants as C
from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.cold_items import DAY, cold_item_mask, cold_reference_time, hold_out_newest_items
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.prepared import PreparedData
from personalize_torch.data.sources import demo_dataset_group
from personalize_torch.errors import InputError
from personalize_torch.recipes.hrnn_coldstart import HRNNColdstart

T = 1_700_000_000.0


def test_cold_items_by_interactions_and_age():
    #                  pad   a     b     c     d           e       f
    counts = np.array([0,    3,    20,   0,    15,         16,     0])
    created = np.array([np.nan, T, T, T - 6 * DAY, T - 5 * DAY, T - DAY, np.nan])
    ref = cold_reference_time(created, "latestItem", now=T + 100 * DAY)
    assert ref == T
    # a: new and rare; b: too many events; c: 6 days old; d: exactly 5 days and 15 events (both limits
    # inclusive); e: 16 events; f: unknown age -> counts as created now; padding never.
    assert cold_item_mask(counts, created, 15, 5.0, ref).tolist() == [False, True, False, False, True, False, True]
    # currentTime: ages from `now`; 10 days later only f (age unknown) is still new.
    now_ref = cold_reference_time(created, "currentTime", now=T + 10 * DAY)
    assert cold_item_mask(counts, created, 15, 5.0, now_ref).tolist() == [False] * 6 + [True]
    # UPDATE leaves new rows at 0 (no events, no time): they are cold.
    assert cold_item_mask(np.array([0, 0]), np.array([0.0, 0.0]), 15, 5.0, T).tolist() == [False, True]


def test_hold_out_newest_items_gives_them_no_training_events():
    group = demo_dataset_group(n_users=200, n_items=80, seed=3)
    train, later, newest = hold_out_newest_items(group.interactions, group.items, 8)
    created = group.items.set_index(C.ITEM_ID)[C.CREATION_TIMESTAMP]
    assert len(newest) == 8 and created[newest].min() >= created.drop(newest).max()
    assert not train[C.ITEM_ID].isin(newest).any() and later[C.ITEM_ID].isin(newest).any()
    assert len(train) + len(later) == len(group.interactions)
    assert train[C.TIMESTAMP].max() < later[C.TIMESTAMP].min()


@pytest.fixture(scope="module")
def data():
    return PreparedData(demo_dataset_group(n_users=200, n_items=80, seed=3), split="leave_one_out")


def test_only_cold_items_are_scored(data):
    recipe = HRNNColdstart.from_data(data.describe(), hidden_dimension=16).eval()
    cold = recipe.cold_items()
    expected = cold_item_mask(data.item_interaction_counts, data.item_creation_timestamps, 15, 5.0,
                              np.nanmax(data.item_creation_timestamps))
    assert cold.numpy().tolist() == expected.tolist() and 0 < cold.sum() < 10
    batch = SequenceBatch(torch.tensor([1, 0]), torch.tensor([[3, 4], [0, 0]]), torch.tensor([[0, 60], [0, 0]]))
    with torch.no_grad():
        scores = recipe.score(batch)
    assert torch.isfinite(scores[:, cold]).all() and (scores[:, ~cold] == float("-inf")).all()
    # A wider window makes more items cold (and recommendable).
    wider = HRNNColdstart.from_data(data.describe(), hidden_dimension=16, cold_start_max_duration=30.0)
    assert wider.cold_items().sum() > cold.sum() and (wider.cold_items() | ~cold).all()


def test_errors_name_what_to_change(data, caplog):
    with pytest.raises(InputError, match="cold_start_max_duration.*no cold items"):
        HRNNColdstart.from_data(data.describe(), cold_start_relative_from="currentTime")   # demo data is from 2023
    with pytest.raises(InputError, match="cold_start_relative_from"):
        HRNNColdstart(n_items=10, item_value_slots=1, item_value_vocab_size=3, cold_start_relative_from="now")
    with pytest.raises(InputError, match="data.items.*categorical Items metadata"):
        HRNNColdstart(n_items=10)
    no_items = DatasetGroup(data.group.interactions, None, data.group.users,
                            {k: v for k, v in data.group.schemas.items() if k != C.ITEMS}, name="no-items")
    plain = PreparedData(no_items, split="leave_one_out")
    with pytest.raises(InputError, match="data.items"):
        HRNNColdstart.from_data(plain.describe())
    recipe = HRNNColdstart(n_items=data.n_items, item_value_slots=2, item_value_vocab_size=9)
    with pytest.raises(InputError, match="CREATION_TIMESTAMP"):
        recipe.set_item_activity(torch.zeros(data.n_items), torch.full((data.n_items,), float("nan")))
    # Most of the catalogue cold: a warning that says which knob narrows it.
    with caplog.at_level("WARNING"):
        HRNNColdstart.from_data(data.describe(), cold_start_max_interactions=10_000, cold_start_max_duration=10_000.0)
    assert "most of the catalogue" in caplog.text and "cold_start_max_duration" in caplog.text
