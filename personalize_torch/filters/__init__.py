"""Amazon Personalize filter expressions: parsed once into a tree, evaluated as boolean masks.

Public API::

    Filter.parse(expression) -> Filter            FilterError (an InputError) with the character position
    Filter.validate(catalogue)                     unknown field -> FilterError naming the fields that exist
    Filter.item_mask(catalogue, user_rows, filter_values=None, current_items=None, device=None)
        -> torch.BoolTensor (n_items,) for one user row, (B, n_items) for a sequence; column 0 (padding) False
    Filter.user_mask(catalogue, filter_values=None, user_rows=None, device=None)
        -> torch.BoolTensor (n_users,) for UserID filters (user segment jobs)
    Filter.target ("ItemID" / "UserID"), .parameters, .datasets, .uses_current_item, str(filter)
    Catalogue.build(item_ids, items=None, users=None, interactions=None, user_ids=None,
                    textual_fields=(), max_interactions_per_event_type=100) -> Catalogue
    Catalogue.user_rows(user_ids) -> rows (-1 unknown), Catalogue.item_index(item_ids) -> indices (0 unknown)
    parse_filter_values(filterValues) -> {name: (Literal, ...)}

Example (the demo data set; items' GENRES are `|` multi-values, interactions have click / purchase)::

    from personalize_torch.data.synthetic import generate_demo_data
    from personalize_torch.filters import Catalogue, Filter

    demo = generate_demo_data(n_users=200, n_items=100)
    catalogue = Catalogue.build(demo.items["ITEM_ID"], items=demo.items, users=demo.users,
                                interactions=demo.interactions, textual_fields=["DESCRIPTION"])
    f = Filter.parse('INCLUDE ItemID WHERE Items.GENRES IN ($GENRE) | '
                     'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    rows = catalogue.user_rows(["u1", "u2"])
    allowed = f.item_mask(catalogue, rows, {"GENRE": '"Comedy","Drama"'})    # (2, n_items) bool
    # with a recipe's scores (2, n_items) over the same item indices, before top-k:
    # scores = scores.masked_fill(~allowed.to(scores.device), float("-inf"))

Wiring notes: build the Catalogue once per solution / dataset group with the same item vocabulary as
the model's scores (`Catalogue.build(solution.item_vocab, ...)`) and user ids that `user_rows` can map;
apply the mask to the (B, n_items) scores before `ranked_items`. `filter_values` may be a sequence of B
maps (per-line `filterValues` of a batch job). `filter.item_mask` raises FilterError for a missing
INCLUDE parameter; a missing EXCLUDE parameter makes that part not apply. Interactions filters see only
what the catalogue was built with: rebuild it (or build a small one for the request's users) to include
streamed events.

Grammar, checks and semantics: see `parser` and `evaluate`.
"""

from personalize_torch.filters.catalogue import MAX_INTERACTIONS_PER_EVENT_TYPE, Catalogue
from personalize_torch.filters.errors import FilterError
from personalize_torch.filters.filter import Filter
from personalize_torch.filters.parser import MAX_EXPRESSION_LENGTH
from personalize_torch.filters.values import parse_filter_values

__all__ = [
    "Catalogue",
    "Filter",
    "FilterError",
    "MAX_EXPRESSION_LENGTH",
    "MAX_INTERACTIONS_PER_EVENT_TYPE",
    "parse_filter_values",
]
