"""Trending-Now: hand-computed growth, Personalize's frequencies, and a planted surge found end to end."""

import numpy as np
import pandas as pd
import pytest
import torch

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.errors import InputError
from personalize_torch.recipes.trending_now import TrendingNow, parse_duration
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.training import train
from tests.conftest import compose_train_config

DAY = 86400


@pytest.mark.parametrize("text,seconds", [("30 minutes", 1800), ("30 mins", 1800), ("1 hour", 3600),
                                          ("3 hours", 10800), ("1 day", DAY), ("2 weeks", 14 * DAY),
                                          (900, 900), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "1 fortnight", "-1 day", "0 hours"])
def test_bad_duration_names_the_parameter(bad):
    with pytest.raises(InputError, match="trend_discovery_frequency"):
        TrendingNow(n_items=5, trend_discovery_frequency=bad)


def fitted(events: list[tuple[int, float]], **hp) -> TrendingNow:
    """One user per event is enough: the recipe counts events, not users."""
    items = torch.tensor([[i] for i, _ in events])
    times = torch.tensor([[t] for _, t in events], dtype=torch.long)
    recipe = TrendingNow(n_items=6, trend_discovery_frequency="1 day", **hp)
    recipe.on_train_epoch_start()
    recipe.accumulate(SequenceBatch(torch.arange(len(events)), items, times))
    recipe.finalize()
    return recipe


def test_growth_between_the_last_two_intervals():
    end = 10 * DAY
    events = ([(1, end - 5 * DAY)] * 50 +                                  # old favourite, quiet lately
              [(2, end - 1.5 * DAY)] * 2 + [(2, end - 0.5 * DAY)] * 8 +     # 2 -> 8: growth 6 / 7
              [(3, end - 1.5 * DAY)] * 20 + [(3, end - 0.5 * DAY)] * 30 +   # 20 -> 30: growth 10 / 25
              [(4, end - 0.5 * DAY)] * 1 +                                  # 0 -> 1: below min_trend_interactions
              [(5, end - 1.5 * DAY)] * 5 + [(5, end)] * 5)                  # flat: not trending
    recipe = fitted(events, trend_smoothing=5.0, min_trend_interactions=2)
    assert recipe.growth.tolist() == pytest.approx([0, 0, 6 / 7, 10 / 25, 0, 0])
    assert recipe.trending_items().tolist() == [2, 3]
    ranking = torch.argsort(recipe.score(SequenceBatch(torch.zeros(1), torch.zeros(1, 1, dtype=torch.long),
                                                       torch.zeros(1, 1)))[0], descending=True, stable=True)
    # trending first, then by popularity over all training events: 1 (50), 5 (10), 4 (1)
    assert ranking.tolist()[:5] == [2, 3, 1, 5, 4]


def test_no_recent_interactions_means_popular_items_only():
    end = 10 * DAY
    recipe = fitted([(1, end)] * 3 + [(2, end)] * 5, trend_relative_from="currentTime")  # data years old
    assert recipe.trending_items().tolist() == []
    assert torch.argsort(recipe.trend_scores, descending=True)[:2].tolist() == [2, 1]


def test_planted_surge_is_recommended_first(tmp_path):
    """Steady traffic over 60 days; item s1 appears only in the last day. Trending-Now puts it first,
    Popularity-Count does not; the server path (Predictor) returns it too."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(80):
        for _ in range(20):
            rows.append((f"u{u}", f"i{rng.integers(0, 30)}", int(rng.integers(0, 60 * DAY))))
    for u in range(0, 80, 4):
        rows.append((f"u{u}", "s1", 60 * DAY + int(rng.integers(0, DAY))))
    path = tmp_path / "interactions.csv"
    pd.DataFrame(rows, columns=["USER_ID", "ITEM_ID", "TIMESTAMP"]).to_csv(path, index=False)
    firsts = {}
    for recipe in ("trending_now", "popularity_count"):
        cfg = compose_train_config([f"recipe={recipe}", f"data.interactions={path}", "logger=none"],
                                   tmp_path / recipe)
        result = train(cfg)
        (items,) = Predictor.from_dir(result["solution"]).recommend(["new-user"], 5)
        firsts[recipe] = items[0].item_id
    assert firsts["trending_now"] == "s1"
    assert firsts["popularity_count"] != "s1"
