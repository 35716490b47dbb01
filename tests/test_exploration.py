"""Exploration mixes in items with little data, within the age cut-off, by the requested weight."""

import math

import numpy as np
import pytest
import torch

from personalize_torch.serving.exploration import explore, exploration_distribution, item_ages_days


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
