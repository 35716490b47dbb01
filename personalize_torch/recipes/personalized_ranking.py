"""Personalized-Ranking (aws-personalized-ranking): User-Personalization's transformer, used to re-rank a
list of items the caller gives (`inputList` / a batch line's `itemList`) for one user.

The model, its hyperparameters (`hidden_dimension`, `bptt`, `recency_mask`, the history-length
percentiles, the loss choice, context and item metadata) and its training are User-Personalization's:
a next-item model over the whole catalogue is what ranks any given list, and training on the whole
catalogue keeps each list's scores comparable with the catalogue-wide ones (validation and test still
rank the whole catalogue, so the metrics are the usual ones). What differs is how it is served:
`Predictor.rank` (serving/inference/personalized_ranking.py) orders the given list by the model's scores,
as a softmax over the list's known items, and puts items the solution does not know last, without a
score. The recipe is a name of its own so a solution version says what it was trained for, as in
Personalize.
"""

from __future__ import annotations

from personalize_torch.recipes.user_personalization import UserPersonalization


class PersonalizedRanking(UserPersonalization):
    recipe_name = "personalized_ranking"
