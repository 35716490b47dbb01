"""Exploration mixes in items with little data, within the age cut-off, by the requested weight."""

import math

import numpy as np
import pytest
import torch

from personalize_torch.data.ragged import Ragged
from personalize_torch.data.sequences import UserSequences
from personalize_torch.serving.inference.exploration import explore, exploration_distribution, item_ages_days


def test_item_ages_prefer_creation_time_and_fall_back_to_first_interaction():
    now = 10 * 86_400.0
    ages = item_ages_days(np.array([np.nan, 9 * 86_400.0, np.nan]), np.array([0.0, 0.0, np.inf]), now)
    assert ages.tolist() == [10.0, 1.0, math.inf]


def test_exploration_favours_rare_items_inside_the_cutoff():
    counts = torch.tensor([0.0, 100.0, 0.0, 3.0, 0.0])
    ages = torch.tensor([0.0, 1.0, 1.0, 1.0, 50.0])
    p = exploration_distribution(counts, ages, age_cutoff_days=30)
    # padding and the 50-day-old item get nothing; weights 1/101, 1/1, 1/4 normalised
    expected = torch.tensor([0.0, 1 / 101, 1.0, 1 / 4, 0.0])
    assert torch.allclose(p, expected / expected.sum())


def test_explore_weight_zero_keeps_scores_and_one_follows_exploration():
    scores = torch.tensor([[-math.inf, 0.7, 0.2, 0.1, 0.0]])
    p = torch.tensor([0.0, 0.0, 0.0, 0.2, 0.8])
    assert torch.equal(explore(scores, p, 0.0), scores)
    mixed = explore(scores, p, 0.5)
    assert mixed[0, 0] == -math.inf
    assert mixed[0, 1:].tolist() == pytest.approx([0.35, 0.1, 0.15, 0.4])
    assert explore(scores, p, 1.0)[0, 1:].argmax().item() == 3  # item 4


def test_skips_count_items_shown_and_not_chosen():
    # two users, three events; slates: [1 2 3] chose 1, [2 3] chose 3, no slate, chose 4
    seqs = UserSequences.from_sorted_events(np.array([1, 1, 2]), np.array([1, 3, 4]), np.array([1, 2, 3]),
                                            Ragged(np.array([0, 3, 5, 5]), np.array([1, 2, 3, 2, 3])))
    assert seqs.shown_not_chosen(6).tolist() == [0, 0, 2, 1, 0, 0]
    assert UserSequences.from_sorted_events(np.array([1]), np.array([1]), np.array([1])).shown_not_chosen(3).tolist() \
        == [0, 0, 0]


def test_one_impression_over_several_rows_counts_once():
    """MIND gives a row per click of an impression (same time), the demo a purchase row repeating its click's
    item and slate: such consecutive rows of a user are one impression, and every item chosen in it is chosen."""
    s = [1, 2, 3]
    # user 1: [1 2 3] at t=10 with clicks on 1 and 2; an event without a slate; [1 2 3] again at t=30 choosing 3,
    # then a purchase of 3 with the same slate at t=35. User 2: [1 2 3] at t=10 choosing 1.
    events = [(1, 10, 1, s), (1, 10, 2, s), (1, 20, 4, []), (1, 30, 3, s), (1, 35, 3, s), (2, 10, 1, s)]
    users, times, items, slates = zip(*events)
    offsets = np.r_[0, np.cumsum([len(x) for x in slates])]
    seqs = UserSequences.from_sorted_events(np.array(users), np.array(items), np.array(times),
                                            Ragged(offsets, np.concatenate([np.array(x, dtype=np.int64) for x in slates])))
    # skipped: impression 1 -> 3; impression 2 -> 1, 2; user 2 -> 2, 3
    assert seqs.shown_not_chosen(5).tolist() == [0, 1, 2, 2, 0]
    assert seqs.times_shown(5).tolist() == [0, 3, 3, 3, 0]               # three impressions, six rows with slates


def test_items_often_shown_and_not_chosen_are_explored_less():
    # items 1 and 2 were each chosen once; item 2 was also shown and passed over in 20 slates that chose 3
    items = np.r_[[1, 2], np.full(20, 3)]
    slates = Ragged(np.r_[[0, 0], np.arange(0, 41, 2)], np.tile([2, 3, 3, 2], 10))   # 20 distinct impressions
    seqs = UserSequences.from_sorted_events(np.ones(22, dtype=np.int64), items, np.arange(22), slates)
    counts = torch.from_numpy((np.bincount(seqs.item_idx, minlength=4) + seqs.shown_not_chosen(4)).astype(np.float32))
    p = exploration_distribution(counts, torch.zeros(4), age_cutoff_days=30)
    assert counts.tolist()[1:3] == [1.0, 21.0] and p[1] > 10 * p[2]


@pytest.mark.parametrize("weight, cut_off, field", [(2.0, 30.0, "explorationWeight"), (-0.1, 30.0, "explorationWeight"),
                                                    (0.3, 0.0, "explorationItemAgeCutOff")])
def test_exploration_settings_out_of_personalizes_range_are_named(weight, cut_off, field):
    from personalize_torch.errors import InputError
    from personalize_torch.serving.campaigns import CampaignSettings
    from personalize_torch.serving.inference.predictor import RequestOptions

    for settings in (RequestOptions, CampaignSettings):
        with pytest.raises(InputError) as err:
            settings(exploration_weight=weight, exploration_item_age_cut_off=cut_off)
        assert err.value.column == field
    RequestOptions(exploration_weight=1.0, exploration_item_age_cut_off=0.5)   # the edges Personalize allows
