"""Item-Affinity and Item-Attribute-Affinity (aws-item-affinity, aws-item-attribute-affinity): user segments.

Both are USER_SEGMENTATION recipes: a batch segment job asks, for an item (`{"itemId": "105"}`) or for
items with given attributes (`{"itemAttributes": "ITEMS.GENRES = \\"Comedy\\""}`), which users are most
likely to interact with it, in descending probability (`personalize_torch.serving.jobs.user_segments`).

The model is User-Personalization's transformer, trained the same way (same hyperparameters, item
metadata, context), so P(item | user) is its softmax over the catalogue given the user's recent events.
A segment asks who will interact with an item over a coming period, not whose NEXT event it is, so users
are ranked by their expected number of interactions with it: P(item | user) times the user's activity
(the number of events in the user's history, a proxy for how many events the user will have). Ranking by
P(item | user) alone favours users with few, predictable events (bench/RESULTS.md, "Item-Affinity"). For an
attribute query the probability is the mass of the items that have those attributes. Users who already
interacted with the item are left out of its segment (and those items out of an attribute's mass) unless the
job asks to include them.

Evaluation uses Personalize's split for these recipes (`user_segmentation`: each user's newest 20% of
events held out, when data.split is left null) and reports, besides the usual ranking metrics,
`hits_at_1_percent` and `recall_at_1_percent` (metrics/user_segments.py) with the random baseline.
"""

from __future__ import annotations

from torch import Tensor

from personalize_torch.data.batching import EvalBatch
from personalize_torch.data.split import Split
from personalize_torch.metrics.ranking_metrics import RankingMetrics
from personalize_torch.metrics.user_segments import UserSegmentMetrics
from personalize_torch.recipes.user_personalization import UserPersonalization


def expected_interactions(probabilities: Tensor, n_events: Tensor) -> Tensor:
    """(B, N) expected interactions: P(item | user) (B, N) times each user's number of events (B,)."""
    return probabilities * n_events.to(probabilities).clamp(min=1).unsqueeze(1)


class ItemAffinity(UserPersonalization):
    recipe_name = "item_affinity"
    recipe_type = "USER_SEGMENTATION"
    default_split = "user_segmentation"

    # (No __init__ of its own: the hyperparameters are User-Personalization's, saved from its signature.)
    _segment_metrics: dict[str, UserSegmentMetrics] | None = None
    _evaluated: dict[str, int] | None = None   # users evaluated per stage, from the split

    def count_statistics(self, split: Split) -> None:
        super().count_statistics(split)
        self._evaluated = {"val": len(split.val), "test": len(split.test if split.test is not None else split.val)}

    def _segments(self, stage: str) -> UserSegmentMetrics:
        if self._segment_metrics is None:
            self._segment_metrics = {s: UserSegmentMetrics(self.n_items) for s in ("val", "test")}
        return self._segment_metrics[stage]

    def _evaluated_users(self, stage: str) -> int:
        """How many users the stage evaluates (the segment size is 1% of them); 0: counted as they come."""
        return (self._evaluated or {}).get(stage, 0)

    def on_validation_epoch_start(self) -> None:
        self._segments("val").reset(self._evaluated_users("val"))

    def on_test_epoch_start(self) -> None:
        self._segments("test").reset(self._evaluated_users("test"))

    def _evaluate(self, batch: EvalBatch, metrics: RankingMetrics) -> None:
        scores = self.evaluation_scores(batch)
        metrics.update(scores, batch.targets)
        segment_scores = expected_interactions(scores, (batch.exclude > 0).sum(1))   # history length
        self._segments("val" if metrics is self.val_metrics else "test").update(segment_scores,
                                                                                batch.inputs.user_idx, batch.targets)

    def _log_metrics(self, stage: str, metrics: RankingMetrics) -> None:
        self.log_dict({f"{stage}/{k}": v for k, v in self._segments(stage).compute().items()}, prog_bar=False,
                      sync_dist=True)
        super()._log_metrics(stage, metrics)


class ItemAttributeAffinity(ItemAffinity):
    recipe_name = "item_attribute_affinity"
