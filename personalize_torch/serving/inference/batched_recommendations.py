"""GetRecommendations requests that arrive together, computed in shared model calls (see `micro_batching`).

Requests share a call when they ask the same predictor for the same kind of list (a user's, or items related
to an item), the same numResults, filter and campaign settings; each row keeps its own user, item,
filterValues, context, streamed events and Users metadata. A request with a promotion (its own filter
values) is computed alone.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace

from personalize_torch.serving.inference.micro_batching import MicroBatcher
from personalize_torch.serving.inference.predictor import Predictor, RecommendedItem, RequestOptions


def submit_recommendations(batcher: MicroBatcher, predictor: Predictor, user_id: str | None, item_id: str | None,
                           num_results: int, options: RequestOptions) -> Future[list[RecommendedItem]]:
    """One request's items, computed on the batcher's thread: items related to `item_id` when it is given
    (leaving out `user_id`'s items when that is given too), else `user_id`'s recommendations."""
    related = item_id is not None
    key = (id(predictor), related, num_results, id(options.filter), options.exploration_weight,
           options.exploration_item_age_cut_off, options.backfill_popular) if options.promotion is None else object()
    row = (user_id, item_id, options.filter_values, options.context, options.events, options.user_metadata)
    return batcher.submit_future(key, row, lambda rows: _run_rows(predictor, related, num_results, options, rows))


def _run_rows(predictor: Predictor, related: bool, num_results: int, options: RequestOptions,
              rows: list[tuple]) -> list[list[RecommendedItem]]:
    users, items, values, contexts, events, user_metadata = (list(c) for c in zip(*rows))
    batch_options = replace(options, filter_values=values, context=contexts, events=events,
                            user_metadata=user_metadata)
    if related:   # related items; a userId as well leaves out that user's items
        return predictor.recommend_related(items, num_results, users, options=batch_options)
    return predictor.recommend(users, num_results, options=batch_options)
