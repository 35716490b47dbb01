"""Recommendations from a loaded solution version: histories in, ranked item ids and scores out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from personalize_torch.data import constants as C
from personalize_torch.data.batching import SequenceBatch, history_items, sequence_batch
from personalize_torch.data.metadata_features import build_user_features, encode_metadata_rows
from personalize_torch.data.schema import parse_schema
from personalize_torch.errors import InputError
from personalize_torch.filters import Catalogue, Filter
from personalize_torch.metrics.functional import mask_scores
from personalize_torch.serving.inference.backfill import item_popularity
from personalize_torch.serving.inference.exploration import (
    check_exploration_settings,
    exploration_distribution,
    explore,
    item_ages_days,
)
from personalize_torch.serving.inference.filter_catalogue import build_catalogue
from personalize_torch.serving.inference.item_metadata import ItemMetadata
from personalize_torch.serving.inference.personalized_ranking import padded_lists, ranked_lists
from personalize_torch.serving.inference.promotions import Promotion
from personalize_torch.serving.inference.slate import compose_slates
from personalize_torch.serving.inference.state_scoring import CANDIDATE_MIN_ITEMS, catalogue_scorer
from personalize_torch.serving.inference.user_states import StoredUserStates, UserStateCache
from personalize_torch.solution_version import SolutionVersion, load_solution_version

MAX_RESULTS = 500
FILTER_MASK_CACHE_SIZE = 256   # masks of filters that read only Items, per (filter, filterValues)


@dataclass
class RecentEvents:
    """One user's events since the solution was trained (PutEvents), oldest first: they follow the
    user's stored history as model input and are left out of the recommendations like history items.
    Events whose item the solution does not know, or that the solution's event selection (eventType,
    eventValueThreshold) would not have trained on, are ignored."""

    item_ids: Sequence[str | None]
    timestamps: Sequence[float]  # epoch seconds
    event_types: Sequence[str | None] | None = None
    event_values: Sequence[float | None] | None = None
    contexts: Sequence[Mapping[str, str] | None] | None = None  # contextual fields by schema name (DEVICE)


@dataclass
class RequestOptions:
    """What a request can ask besides who it is for: Personalize's filterArn / filterValues, context,
    the campaign's exploration settings (explorationWeight, explorationItemAgeCutOff in days), and the
    users' streamed events (one `RecentEvents` for all rows, or one per row, None = none)."""

    filter: Filter | None = None
    filter_values: Mapping[str, str] | Sequence[Mapping[str, str] | None] | None = None
    context: Mapping[str, str] | Sequence[Mapping[str, str] | None] | None = None
    exploration_weight: float = 0.0
    exploration_item_age_cut_off: float = 30.0
    events: RecentEvents | Sequence[RecentEvents | None] | None = None
    # Promotion (inference/promotions.py) and the campaign's popular back-fill of short lists (inference/backfill.py)
    promotion: Promotion | None = None
    backfill_popular: bool = False
    # Users metadata of users the solution does not know ({FIELD: value}, e.g. PutUsers' properties through
    # `event_properties.property_fields`; one for all rows or one per row, None = none): replaces the Users
    # dataset's row of that user, for recipes that read Users metadata (`Predictor.user_metadata_inputs`)
    user_metadata: Mapping[str, object] | Sequence[Mapping[str, object] | None] | None = None

    def __post_init__(self) -> None:
        check_exploration_settings(self.exploration_weight, self.exploration_item_age_cut_off)


@dataclass
class RecommendedItem:
    item_id: str
    score: float | None  # None: no score for the user (a popular back-fill item)
    promotion_name: str | None = None  # the promotion that placed the item
    reason: tuple[str, ...] | None = None  # ("Promoted item",) / ("Popular item",), as Personalize's reason


def streamed_interactions(user_ids: Sequence[str], events: RecentEvents | Sequence[RecentEvents | None]
                          ) -> pd.DataFrame:
    """USER_ID, ITEM_ID, EVENT_TYPE, TIMESTAMP rows of each user's streamed events (for filters)."""
    per_row = [events] * len(user_ids) if isinstance(events, RecentEvents) else list(events)
    rows = [(u, i, (e.event_types[k] if e.event_types is not None else None), int(e.timestamps[k]))
            for u, e in zip(user_ids, per_row) if e is not None
            for k, i in enumerate(e.item_ids) if i is not None]
    return pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.TIMESTAMP])


def append_events(inputs: SequenceBatch, items: torch.Tensor, timestamps: torch.Tensor,
                  context: torch.Tensor | None = None, max_len: int | None = None) -> SequenceBatch:
    """`inputs` (left-padded histories, (B, T)) followed by further events `items` / `timestamps` (B, E)
    (0 = no event, anywhere in a row) and their `context` (B, E, F): newest last, left-padded again and
    cut to the last `max_len` events. Vectorized: a stable sort moves the padding of each row to the front."""
    B = inputs.items.shape[0]
    all_items = torch.cat([inputs.items, items.to(inputs.items)], 1)                      # (B, T + E)
    order = torch.argsort((all_items > 0).to(torch.int8), dim=1, stable=True)            # padding first
    all_items = all_items.gather(1, order)
    all_times = torch.cat([inputs.timestamps, timestamps.to(inputs.timestamps)], 1).gather(1, order)
    width = int((all_items > 0).sum(1).max()) if B else 0
    if max_len is not None:
        width = min(width, max_len)
    start = all_items.shape[1] - width

    def merged(history: torch.Tensor | None, extra: torch.Tensor | None) -> torch.Tensor | None:
        """Per-event (B, ., D) tensors merged the same way; a side without one gets zeros."""
        if history is None and extra is None:
            return None
        D = (history if history is not None else extra).shape[2]
        history = history if history is not None else torch.zeros(B, inputs.items.shape[1], D, dtype=extra.dtype)
        extra = extra if extra is not None else torch.zeros(B, items.shape[1], D, dtype=history.dtype)
        both = torch.cat([history, extra.to(history)], 1)
        return both.gather(1, order.unsqueeze(2).expand(-1, -1, D))[:, start:]

    return SequenceBatch(inputs.user_idx, all_items[:, start:], all_times[:, start:],
                         merged(inputs.impressions, None), merged(inputs.context, context), inputs.next_context)


class Predictor:
    """Recommendations from one solution version.

    Users' model states (recipes that split their scoring, e.g. User-Personalization; inference/user_states.py):
    the solution version's stored states when it has them (memory-mapped, whatever `cache_user_states`);
    with `cache_user_states`, also a table in memory, filled as users are asked for (from the stored states,
    or computed), which `load_warm` fills ahead. User-Personalization is scored with its item table computed
    once, and from CANDIDATE_MIN_ITEMS items ranked by `CatalogueScorer.top_k` (inference/state_scoring.py):
    the same answers in fewer passes over the (B, n_items) scores; `first_pass` says whether its first pass over
    the catalogue may use the item table rounded to bfloat16 ("auto": where the CPU multiplies bfloat16
    natively; "bfloat16"; "float32"): the same items in the same order either way."""

    def __init__(self, solution: SolutionVersion, device: str = "cpu", cache_user_states: bool = False,
                 first_pass: str = "auto"):
        self.solution = solution
        self.device = torch.device(device)
        self.recipe = solution.recipe.to(self.device)
        self.first_pass = first_pass
        self.scorer = catalogue_scorer(self.recipe, first_pass)
        compute = self.scorer.user_state if self.scorer is not None else self.recipe.user_state
        self.user_states = UserStateCache.for_recipe(self.recipe, solution.histories, self.device, compute,
                                                     solution.user_states) if cache_user_states else None
        self.stored_states = StoredUserStates(solution.user_states, compute, self.device) \
            if solution.user_states is not None else None
        self._filter_masks: dict[tuple[str, str], torch.Tensor] = {}

    @classmethod
    def from_dir(cls, path: str | Path, device: str = "cpu", cache_user_states: bool = False,
                 first_pass: str = "auto") -> Predictor:
        return cls(load_solution_version(path, map_location=device), device, cache_user_states, first_pass)

    @classmethod
    def load_warm(cls, path: str | Path, device: str = "cpu", cache_user_states: bool = False,
                  first_pass: str = "auto") -> Predictor:
        """A predictor ready to swap into a running server: its filter catalogue built, its users' states
        in memory (with `cache_user_states`: copied from the stored states, or computed for a solution version
        without them) and one scoring pass done, so no first request pays for them."""
        predictor = cls.from_dir(path, device, cache_user_states, first_pass)
        predictor.catalogue
        if predictor.user_states is not None:
            predictor.user_states.warm()
        predictor.recommend([None], 1)
        return predictor

    def _history_rows(self, user_ids: Sequence[str | None]) -> np.ndarray:
        ids = [u if u is not None else "" for u in user_ids]
        return self.solution.history_rows(ids) if ids else np.zeros(0, dtype=np.int64)

    @cached_property
    def catalogue(self) -> Catalogue:
        """The filter catalogue (items, users, interactions), built on first use."""
        return build_catalogue(self.solution)

    @cached_property
    def _popularity(self) -> torch.Tensor:
        """(n_items,) distinct training users per item: the order of popular back-fill."""
        n = self.solution.item_vocab.size_with_padding
        return torch.from_numpy(item_popularity(self.solution.histories, n))

    @cached_property
    def item_metadata(self) -> ItemMetadata:
        """The Items table's values as text, for `metadataColumns`."""
        return ItemMetadata(self.solution.items)

    @cached_property
    def _exploration(self) -> tuple[torch.Tensor, torch.Tensor]:
        """What is known of each item (interactions plus impressions that did not choose it) and its age in
        days, for exploration."""
        h, items = self.solution.histories, self.solution.items
        n = self.solution.item_vocab.size_with_padding
        counts = (np.bincount(h.item_idx, minlength=n) + h.shown_not_chosen(n)).astype(np.float32)
        first_seen = np.full(n, np.inf)
        np.minimum.at(first_seen, h.item_idx, h.timestamp.astype(float))
        creation = None
        if C.CREATION_TIMESTAMP in items.columns:
            creation = np.concatenate([[np.nan], items[C.CREATION_TIMESTAMP].to_numpy(dtype=float, na_value=np.nan)])
        now = float(h.timestamp.max()) if len(h.timestamp) else 0.0
        return torch.from_numpy(counts), torch.from_numpy(item_ages_days(creation, first_seen, now).astype(np.float32))

    def context_indices(self, contexts: Sequence[Mapping[str, str] | None]) -> torch.Tensor | None:
        """(B, F) indices of each request's context values; None when the solution has no context fields."""
        vocabs = self.solution.context_vocabs or {}
        if not vocabs:
            return None
        out = np.zeros((len(contexts), len(vocabs)), dtype=np.int64)
        for b, context in enumerate(contexts):
            for name, value in (context or {}).items():
                if name not in vocabs:
                    raise InputError(f"unknown context field {name!r}; this solution's context fields: "
                                     f"{', '.join(vocabs)}", column="context")
                out[b, list(vocabs).index(name)] = vocabs[name].to_idx([str(value)])[0]
        return torch.from_numpy(out)

    def encode_events(self, events: Sequence[RecentEvents | None]
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Item indices and timestamps (B, E) of each row's events (0 = none: padding, an unknown item or
        an event the solution's event selection leaves out), and their context indices (B, E, F) when
        the solution has contextual fields (None otherwise)."""
        B = len(events)
        lengths = np.array([len(e.item_ids) if e is not None else 0 for e in events], dtype=np.int64)
        E, total = int(lengths.max(initial=0)), int(lengths.sum())
        present = [e for e in events if e is not None and len(e.item_ids)]
        row = np.repeat(np.arange(B), lengths)
        col = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)

        def flat(name: str, missing) -> np.ndarray:
            return np.array([v for e in present for v in (getattr(e, name) if getattr(e, name) is not None
                                                          else [missing] * len(e.item_ids))], dtype=object)

        ids = flat("item_ids", None)
        idx = self.solution.item_vocab.to_idx(np.where(pd.isna(ids), "", ids).astype(object)) if total else \
            np.zeros(0, dtype=np.int64)
        selection = self.solution.info.get("data") or {}
        if selection.get("event_type") is not None:
            idx = np.where(flat("event_types", None) == selection["event_type"], idx, 0)
        if selection.get("event_value_threshold") is not None:
            values = pd.to_numeric(pd.Series(flat("event_values", None)), errors="coerce").to_numpy(dtype=float)
            idx = np.where(values >= float(selection["event_value_threshold"]), idx, 0)
        items = np.zeros((B, E), dtype=np.int64)
        items[row, col] = idx
        times = np.zeros((B, E), dtype=np.int64)
        times[row, col] = np.asarray(flat("timestamps", 0), dtype=float).astype(np.int64)
        context = None
        vocabs = self.solution.context_vocabs or {}
        if vocabs:
            context = np.zeros((B, E, len(vocabs)), dtype=np.int64)
            contexts = flat("contexts", None)
            for f, (name, vocab) in enumerate(vocabs.items()):
                values = np.array([str(c[name]) if c and c.get(name) is not None else "" for c in contexts],
                                  dtype=object)
                context[row, col, f] = vocab.to_idx(values) if total else 0
            context = torch.from_numpy(context)
        return torch.from_numpy(items), torch.from_numpy(times), context

    @staticmethod
    def _event_lists(options: RequestOptions | None, B: int) -> list[RecentEvents | None] | None:
        """Each row's streamed events (`options.events`), None when the request has none."""
        events = options.events if options is not None else None
        if events is None:
            return None
        events = [events] * B if isinstance(events, RecentEvents) else list(events)
        if len(events) != B:
            raise ValueError(f"{len(events)} event lists for {B} rows")
        return events

    def _has_streamed(self, options: RequestOptions | None, B: int) -> np.ndarray:
        """(B,) bool: rows with streamed events."""
        events = self._event_lists(options, B) or [None] * B
        return np.array([e is not None and len(e.item_ids) > 0 for e in events], dtype=bool)

    def _streamed(self, options: RequestOptions | None, B: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
        """`encode_events` of the request's streamed events, None when there are none."""
        if not self._has_streamed(options, B).any():
            return None
        return self.encode_events(self._event_lists(options, B))

    def recommend(self, user_ids: Sequence[str | None], num_results: int = 25, exclude_seen: bool = True,
                  options: RequestOptions | None = None) -> list[list[RecommendedItem]]:
        """Top `num_results` items for each user; unknown (or None) users get the cold-start ranking.
        `options.events` (streamed events) extend each user's stored history, newest last."""
        inputs, rows, streamed_items = self._user_inputs(user_ids, options)
        exclude = history_items(self.solution.histories, rows) if exclude_seen else None
        if exclude is not None and streamed_items is not None:
            exclude = torch.cat([exclude, streamed_items], 1)
        # the rows whose input is the stored history alone: their model state can be kept (user_states)
        state_rows = np.where(self._has_streamed(options, len(rows)), -1, rows)
        return self._top(inputs, exclude, num_results, options, user_ids, state_rows=state_rows)

    def rank(self, user_ids: Sequence[str | None], item_lists: Sequence[Sequence[str]],
             options: RequestOptions | None = None) -> list[list[RecommendedItem]]:
        """Each user's `item_lists` row re-ordered by the model (Personalize's GetPersonalizedRanking), as
        `personalized_ranking` describes: known items best first with softmax scores, then unknown items
        (score None) in input order; filtered-out items left out."""
        if len(user_ids) != len(item_lists):
            raise ValueError(f"{len(user_ids)} users for {len(item_lists)} item lists")
        options = options or RequestOptions()
        ids, filled = padded_lists(item_lists)
        B, L = ids.shape
        if B == 0:
            return []
        idx = self.solution.item_vocab.to_idx(ids.reshape(-1)).reshape(B, L) if L else np.zeros((B, 0), np.int64)
        inputs, _, _ = self._user_inputs(user_ids, options)
        ranked = ranked_lists(ids, filled, idx, self._scores(inputs, options), self._allowed(options, user_ids, B))
        return [[RecommendedItem(item_id, score) for item_id, score in row] for row in ranked]

    def _user_inputs(self, user_ids: Sequence[str | None], options: RequestOptions | None
                     ) -> tuple[SequenceBatch, np.ndarray, torch.Tensor | None]:
        """Each user's model input: the stored history followed by the request's streamed events
        (`options.events`), newest last; also the users' history rows and the streamed item indices
        (B, E) (None when there are none)."""
        rows = self._history_rows(user_ids)
        inputs = sequence_batch(self.solution.histories, rows, self.recipe.input_length)
        streamed = self._streamed(options, len(rows))
        if streamed is not None:
            items, times, context = streamed
            inputs = append_events(inputs, items, times, context, self.recipe.input_length)
        inputs = self.user_metadata_inputs(inputs, user_ids, options)
        return inputs, rows, streamed[0] if streamed is not None else None

    def reads_user_metadata_of(self, user_id: str | None) -> bool:
        """Whether a request for `user_id` would read their Users metadata (`RequestOptions.user_metadata`): the
        recipe reads Users metadata and the solution does not know the user. A server looks up PutUsers'
        properties only then."""
        return (user_id is not None and self.recipe.user_metadata_shape is not None
                and bool(self._history_rows([user_id])[0] < 0))

    def user_metadata_inputs(self, inputs: SequenceBatch, user_ids: Sequence[str | None],
                             options: RequestOptions | None = None) -> SequenceBatch:
        """`inputs` with the Users metadata of the rows whose user the solution does not know (user index 0),
        for a recipe that reads Users metadata (`recipe.user_metadata_shape`): the request's
        `options.user_metadata` for the row when given (PutUsers' properties), else the user's row of the
        Users dataset the solution was trained with; encoded with the solution's value vocabulary (values it
        never saw are unknown). Unchanged for other recipes and when every user is known."""
        shape = self.recipe.user_metadata_shape
        unknown = inputs.user_idx.cpu().numpy() == 0
        if shape is None or not unknown.any():
            return inputs
        frame = self._unknown_users_metadata(list(user_ids), unknown, options)
        if frame is None:
            return inputs
        values, numbers = encode_metadata_rows(frame, self._user_metadata_description, *shape)
        inputs.user_values, inputs.user_numeric = torch.from_numpy(values), torch.from_numpy(numbers)
        return inputs

    def _unknown_users_metadata(self, user_ids: list[str | None], unknown: np.ndarray,
                                options: RequestOptions | None) -> pd.DataFrame | None:
        """One row per request row (index 0..B-1) of metadata fields: the `unknown` rows' metadata, the other
        rows empty; None when no unknown row has any."""
        B = len(user_ids)
        frame, found = pd.DataFrame(index=pd.RangeIndex(B)), np.zeros(B, dtype=bool)
        users = self._users_by_id
        if users is not None:
            table, index = users
            positions = np.full(B, -1, dtype=np.int64)
            asked = np.nonzero(unknown & np.array([u is not None for u in user_ids], dtype=bool))[0]
            positions[asked] = index.get_indexer([str(user_ids[b]) for b in asked])
            found = positions >= 0
            if found.any():
                frame = table.iloc[positions[found]].set_axis(np.nonzero(found)[0]).reindex(pd.RangeIndex(B))
        given = options.user_metadata if options is not None else None
        if given is not None:
            per_row = [given] * B if isinstance(given, Mapping) else list(given)
            if len(per_row) != B:
                raise ValueError(f"{len(per_row)} user metadata rows for {B} rows")
            sent = [b for b in range(B) if unknown[b] and per_row[b]]
            if sent:   # PutUsers replaces a user's properties: the sent row replaces the dataset's
                rows = pd.DataFrame([{str(k): v for k, v in per_row[b].items()} for b in sent], index=sent)
                frame = frame.drop(index=sent).astype(object)
                frame = pd.concat([frame, rows.astype(object)]).sort_index()
                found[sent] = True
        return frame if found.any() else None

    @cached_property
    def _users_by_id(self) -> tuple[pd.DataFrame, pd.Index] | None:
        """The Users dataset the solution was trained with (metadata columns only) and its USER_ID index;
        None without one."""
        users = self.solution.users
        if users is None or not len(users) or C.USER_ID not in users.columns:
            return None
        users = users.drop_duplicates(C.USER_ID, keep="last").reset_index(drop=True)
        return users.drop(columns=[C.USER_ID]), pd.Index(users[C.USER_ID].astype(str))

    @cached_property
    def _user_metadata_description(self) -> dict:
        """The solution's Users metadata encoding (`MetadataFeatures.describe()`, kept in solution.json); for a
        solution version saved without it, rebuilt from its Users dataset the way training built it."""
        described = self.solution.info.get("user_features")
        if described is not None:
            return described
        schema = (self.solution.info.get("schemas") or {}).get(C.USERS)
        if schema is not None:
            schema = parse_schema(schema, C.USERS, str(self.solution.path / "solution.json"))
        return build_user_features(self.solution.users, schema, self.solution.user_vocab).describe()

    def recommend_related(self, item_ids: Sequence[str], num_results: int = 25,
                          user_ids: Sequence[str | None] | None = None, exclude_seen: bool = True,
                          options: RequestOptions | None = None) -> list[list[RecommendedItem]]:
        """Top `num_results` items related to each item (Personalize's RELATED_ITEMS input, `itemId`).

        The recipe scores a history made of just this one item: for SIMS, the item's neighbours; for
        recipes that are not item-based, what they predict after that single event (User-Personalization:
        the next item; Popularity-Count: the popular items). An item the solution does not know is an
        empty history, so it gets the cold-start ranking (popular items). The item itself is never
        recommended; with `user_ids` (None = no user), each user's own items (stored, and streamed in
        `options.events`) are left out too unless `exclude_seen` is False.
        """
        idx = torch.from_numpy(self.solution.item_vocab.to_idx(list(item_ids))).view(-1, 1)  # (B, 1), 0 = unknown
        zeros = torch.zeros(idx.shape[0], dtype=torch.long)
        inputs = SequenceBatch(zeros, idx, torch.zeros_like(idx))
        exclude = idx
        if user_ids is not None and exclude_seen:
            exclude = torch.cat([idx, history_items(self.solution.histories, self._history_rows(user_ids))], 1)
            streamed = self._streamed(options, len(idx))
            if streamed is not None:
                exclude = torch.cat([exclude, streamed[0]], 1)
        return self._top(inputs, exclude, num_results, options, user_ids, current_items=idx.view(-1).numpy())

    def _top(self, inputs: SequenceBatch, exclude: torch.Tensor | None, num_results: int,
             options: RequestOptions | None = None, user_ids: Sequence[str | None] | None = None,
             current_items: Sequence[str] | None = None, state_rows: np.ndarray | None = None
             ) -> list[list[RecommendedItem]]:
        """Score `inputs`, apply context / exploration / filter, leave out `exclude` (B, E) and padding,
        and return the top items of each row. `state_rows`: see `_scores`."""
        options = options or RequestOptions()
        B = inputs.items.shape[0]
        if self._ranks_candidates(options):
            return self._top_candidates(inputs, exclude, num_results, options, user_ids, current_items, state_rows)
        scores = mask_scores(self._scores(inputs, options, state_rows),
                             exclude.to(self.device) if exclude is not None else None)
        if options.exploration_weight > 0:
            counts, ages = self._exploration
            p = exploration_distribution(counts, ages, options.exploration_item_age_cut_off).to(self.device)
            scores = explore(scores, p, options.exploration_weight)
        allowed = self._allowed(options, user_ids, B, current_items)
        k = min(max(int(num_results), 0), MAX_RESULTS, scores.shape[1])
        promotion, promoted = options.promotion, None
        if promotion is not None:  # its own filter and values; the request's filter does not apply to it
            rows = self.catalogue.user_rows([u if u is not None else "" for u in (user_ids or [None] * B)])
            promoted = promotion.filter.item_mask(self.catalogue, list(rows), promotion.filter_values,
                                                  current_items=current_items).view(B, -1).to(self.device)
        slates = compose_slates(scores, k, allowed.to(self.device) if allowed is not None else None,
                                promotion, promoted, self._popularity if options.backfill_popular else None,
                                current_items)
        out = []
        for slate in slates:
            ids = self.solution.item_vocab.to_id(np.asarray([s.idx for s in slate], dtype=np.int64))
            out.append([RecommendedItem(str(i), s.score, s.promotion_name, s.reason) for i, s in zip(ids, slate)])
        return out

    def _ranks_candidates(self, options: RequestOptions) -> bool:
        """Whether a request is ranked by `CatalogueScorer.top_k` (large catalogues; not with exploration,
        a promotion or popular back-fill, which `compose_slates` and `explore` handle on the dense scores)."""
        return (self.scorer is not None and self.scorer.n_items >= CANDIDATE_MIN_ITEMS
                and options.exploration_weight <= 0 and options.promotion is None and not options.backfill_popular)

    def _top_candidates(self, inputs: SequenceBatch, exclude: torch.Tensor | None, num_results: int,
                        options: RequestOptions, user_ids: Sequence[str | None] | None,
                        current_items: Sequence | None, state_rows: np.ndarray | None) -> list[list[RecommendedItem]]:
        """`_top` of a large catalogue (`CatalogueScorer.top_k`: what the dense path gives, the filter's mask
        and the exclusions applied in place, the top k by `top_items`); item ids looked up for the k items only."""
        B = inputs.items.shape[0]
        k = min(max(int(num_results), 0), MAX_RESULTS, self.scorer.n_items)
        allowed = self._allowed(options, user_ids, B, current_items)
        with torch.no_grad():
            inputs = self._with_request_context(inputs, options).to(self.device)
            top, values = self.scorer.top_k(self._states(inputs, state_rows), inputs, k,
                                            exclude.to(self.device) if exclude is not None else None,
                                            allowed.to(self.device) if allowed is not None else None)
        top, values = top.cpu().numpy(), values.cpu().numpy()
        found = np.isfinite(values)
        ids = self.solution.item_vocab.to_id(top[found]) if found.any() else np.zeros(0, dtype=object)
        out, start = [], 0
        for b in range(B):
            n = int(found[b].sum())
            out.append([RecommendedItem(str(i), float(v)) for i, v in zip(ids[start:start + n], values[b][found[b]])])
            start += n
        return out

    def _with_request_context(self, inputs: SequenceBatch, options: RequestOptions) -> SequenceBatch:
        """`inputs` with the request's context (`options.context`) as the context of the event being
        predicted."""
        if options.context is not None:
            B = inputs.items.shape[0]
            contexts = [options.context] * B if isinstance(options.context, Mapping) else list(options.context)
            if any(c is not None for c in contexts):
                next_context = self.context_indices(contexts)
                if next_context is not None and inputs.context is not None and inputs.context.shape[1]:
                    # rows without a context (batch lines that give none) keep the user's latest, as a
                    # request without `context` does
                    given = torch.tensor([c is not None for c in contexts]).view(-1, 1)
                    next_context = torch.where(given, next_context, inputs.context[:, -1].to(next_context))
                inputs.next_context = next_context
        return inputs

    def _states(self, inputs: SequenceBatch, state_rows: np.ndarray | None) -> torch.Tensor | None:
        """(B, C) the users' model states (kept ones where `state_rows` allows), None when the recipe does
        not split its scoring. `inputs` on the device."""
        if self.recipe.user_state_dimension is None:
            return None
        if state_rows is not None and self.user_states is not None:
            return self.user_states.states(inputs, state_rows)
        if state_rows is not None and self.stored_states is not None:
            return self.stored_states.states(inputs, state_rows)
        if self.scorer is not None:
            return self.scorer.user_state(inputs)
        return None

    def _scores(self, inputs: SequenceBatch, options: RequestOptions, state_rows: np.ndarray | None = None
                ) -> torch.Tensor:
        """The recipe's scores (B, n_items) of `inputs`, with the request's context (`options.context`)
        as the context of the event being predicted. `state_rows`: each row's user row in the histories when
        its input is that user's stored history alone, else -1; those rows' model states are the kept ones
        (stored, or cached between calls)."""
        inputs = self._with_request_context(inputs, options)
        with torch.no_grad():
            inputs = inputs.to(self.device)
            states = self._states(inputs, state_rows)
            if states is None:
                return self.recipe.score(inputs)
            if self.scorer is not None:
                return self.scorer.score_state(states, inputs)
            return self.recipe.score_state(states, inputs)

    @cached_property
    def use_case_filter(self) -> Filter | None:
        """The filter a domain use case always applies (solution.json's use_case.filter), e.g. "recommended
        for you" never recommends purchased items; None for plain recipes."""
        expression = (self.solution.info.get("use_case") or {}).get("filter")
        return Filter.parse(expression) if expression else None

    def _allowed(self, options: RequestOptions, user_ids: Sequence[str | None] | None, B: int,
                 current_items: Sequence | None = None) -> torch.Tensor | None:
        """(B, n_items) bool: the items the request's filter and the use case's filter let through; None
        when there is neither."""
        filters = [(f, v) for f, v in ((self.use_case_filter, None), (options.filter, options.filter_values))
                   if f is not None]
        if not filters:
            return None
        ids = [u if u is not None else "" for u in (user_ids if user_ids is not None else [None] * B)]
        catalogue, rows = self.catalogue, self.catalogue.user_rows(ids)
        if options.events is not None and any("Interactions" in f.datasets for f, _ in filters):
            streamed = streamed_interactions(ids, options.events)
            if len(streamed):  # Interactions conditions see events streamed since training too
                catalogue, rows = self.catalogue.with_recent_events(ids, streamed), np.arange(B)
        allowed = None
        for f, values in filters:
            mask = self._items_filter_mask(f, values, B)
            if mask is None:
                mask = f.item_mask(catalogue, list(rows), values, current_items=current_items).view(B, -1)
            allowed = mask if allowed is None else allowed & mask
        return allowed

    def _items_filter_mask(self, f: Filter, values, B: int) -> torch.Tensor | None:
        """(B, n_items) mask (one row, expanded) of a filter that reads only Items, with the same filterValues
        for every row: the same for every user, so kept per (filter, values) instead of evaluated per
        request; None for other filters."""
        if f.datasets != {"Items"}:
            return None
        per_row = [values] * B if values is None or isinstance(values, Mapping) else list(values)
        keys = {json.dumps(v, sort_keys=True, default=str) for v in per_row}
        if len(keys) != 1:
            return None
        key = (str(f), keys.pop())
        mask = self._filter_masks.get(key)
        if mask is None:
            if len(self._filter_masks) >= FILTER_MASK_CACHE_SIZE:
                self._filter_masks.clear()
            mask = f.item_mask(self.catalogue, -1, per_row[0] if per_row else None)
            self._filter_masks[key] = mask
        return mask.expand(B, -1)
