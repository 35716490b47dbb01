"""Trending-Now (aws-trending-now): the items whose interactions grow fastest, the same list for everyone.

Fitted in one pass over the training events (count-based, like Popularity-Count). With W =
`trend_discovery_frequency` and t_end = the newest training event:

    c1(i) = interactions with i in (t_end - W, t_end]          (the latest interval)
    c0(i) = interactions with i in (t_end - 2W, t_end - W]     (the interval before)
    growth(i) = (c1(i) - c0(i)) / (c0(i) + trend_smoothing)

t_end is the clock time of training instead with `trend_relative_from: currentTime` (for data that is
still flowing in; evaluate with the default `latestInteraction`, since a hold-out split is in the past).
An item is trending when growth(i) > 0 and c1(i) >= `min_trend_interactions`; trending items come first,
by growth (ties by c1, then item index). Every other item follows by popularity over the whole training
data, so a short trending list is filled up with popular items. `trend_smoothing` keeps an item that went
from 0 to 1 interaction from outranking one that went from 20 to 60. As in Personalize, when the last two
intervals hold no interactions at all, the list is the popular items only.

`trend_discovery_frequency` takes Personalize's values ("30 minutes", "1 hour", "3 hours", "1 day") and
any "<number> <minutes|hours|days|weeks>" or a number of seconds, for data whose pace differs.

Scores: a trending item scores 1 + growth / (1 + growth) (in (1, 2)); any other item its share of
training events (at most 1). Items of the user's own history are left out as for every recipe.
"""

from __future__ import annotations

import re
import time

import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.errors import InputError
from personalize_torch.recipes.base import Recipe
from personalize_torch.recipes.hyperparameters import check_range

_UNITS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hr": 3600, "hour": 3600,
          "d": 86400, "day": 86400, "w": 604800, "week": 604800}


def parse_duration(text: str | int | float, name: str = "trend_discovery_frequency") -> float:
    """Seconds in "30 minutes", "1 hour", "3 hours", "1 day", "2 weeks", or a plain number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
        unit = match.group(2).lower() if match else ""
        unit = unit[:-1] if unit.endswith("s") and unit[:-1] in _UNITS else unit
        unit = {"mins": "min", "hrs": "hr"}.get(unit, unit)
        if not match or (unit and unit not in _UNITS):
            raise InputError(f"expected a duration such as '30 minutes', '1 hour', '3 hours' or '1 day', got {text!r}",
                             column=name)
        seconds = float(match.group(1)) * _UNITS.get(unit, 1)
    if seconds <= 0:
        raise InputError(f"must be a positive duration, got {text!r}", column=name)
    return seconds


class TrendingNow(Recipe):
    recipe_name = "trending_now"
    count_based = True

    def __init__(self, n_items: int, trend_discovery_frequency: str = "1 day", trend_smoothing: float = 5.0,
                 min_trend_interactions: int = 2, trend_relative_from: str = "latestInteraction"):
        super().__init__(n_items)
        self._save_hyperparameters(locals())
        hp = self.hparams
        self.window_seconds = parse_duration(hp.trend_discovery_frequency)
        check_range("trend_smoothing", hp.trend_smoothing, 1e-6, 1e9)
        check_range("min_trend_interactions", hp.min_trend_interactions, 1, 2**31)
        if hp.trend_relative_from not in ("latestInteraction", "currentTime"):
            raise InputError(f"expected latestInteraction or currentTime, got {hp.trend_relative_from!r}",
                             column="trend_relative_from")
        self.register_buffer("trend_scores", torch.zeros(n_items))   # the served ranking, see the docstring
        self.register_buffer("growth", torch.zeros(n_items))
        self.register_buffer("event_counts", torch.zeros(n_items))   # all training events per item
        self.register_buffer("end_time", torch.zeros((), dtype=torch.float64))
        self._events: list[tuple[Tensor, Tensor]] = []

    @property
    def input_length(self) -> int:
        return 1  # the ranking ignores the history; it only needs the history's items to leave them out

    @property
    def train_length(self) -> None:
        return None

    def on_train_epoch_start(self) -> None:
        self._events = []

    def accumulate(self, batch: SequenceBatch) -> None:
        present = batch.items > 0
        self._events.append((batch.items[present].cpu(), batch.timestamps[present].cpu()))

    def finalize(self) -> None:
        if not self._events:
            return
        items = torch.cat([i for i, _ in self._events])
        times = torch.cat([t for _, t in self._events]).double()
        self._events = []
        n = self.n_items
        counts = torch.bincount(items, minlength=n).float()
        end = float(times.max()) if len(times) else 0.0
        if self.hparams.trend_relative_from == "currentTime":
            end = max(end, time.time())
        w = self.window_seconds
        latest = torch.bincount(items[times > end - w], minlength=n).float()
        before = torch.bincount(items[(times > end - 2 * w) & (times <= end - w)], minlength=n).float()
        growth = (latest - before) / (before + self.hparams.trend_smoothing)
        trending = (growth > 0) & (latest >= self.hparams.min_trend_interactions)
        trending[0] = False
        share = counts / counts.sum().clamp(min=1)
        # Ties among trending items go to the one with more recent interactions: a tiny tie-breaker.
        lift = growth / (1 + growth) + latest / (latest.max().clamp(min=1) * 1e6)
        scores = torch.where(trending, 1.0 + lift.clamp(max=1 - 1e-7), share)
        self.trend_scores.copy_(scores.to(self.trend_scores))
        self.growth.copy_(torch.where(trending, growth, torch.zeros_like(growth)).to(self.growth))
        self.event_counts.copy_(counts.to(self.event_counts))
        self.end_time.fill_(end)

    def on_train_epoch_end(self) -> None:
        self.finalize()

    def on_validation_epoch_start(self) -> None:
        if self._events:
            self.finalize()

    def trending_items(self) -> Tensor:
        """Indices of the trending items, best first (empty when nothing is trending)."""
        idx = torch.nonzero(self.growth > 0).view(-1)
        return idx[torch.argsort(self.trend_scores[idx], descending=True, stable=True)]

    def score(self, inputs: SequenceBatch) -> Tensor:
        return self.trend_scores.expand(inputs.items.shape[0], -1)
