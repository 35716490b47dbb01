"""Promotions, popular back-fill and item metadata as pure functions, on hand-made scores and tables."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from personalize_torch.data.sequences import UserSequences
from personalize_torch.errors import InputError
from personalize_torch.filters import Filter
from personalize_torch.serving.inference.backfill import POPULAR_ITEM, item_popularity, popular_fill
from personalize_torch.serving.inference.item_metadata import ItemMetadata
from personalize_torch.serving.inference.promotions import (PROMOTED_ITEM, Promotion, interleave, promoted_positions,
                                                  promoted_slots)
from personalize_torch.serving.inference.slate import compose_slates, mask_out

NEG = -math.inf
ANY = Filter.parse('INCLUDE ItemID WHERE Items.GENRES IN ("x")')  # the filter object itself is not evaluated here


def mask(n: int, items) -> torch.Tensor:
    out = torch.zeros(1, n, dtype=torch.bool)
    out[0, list(items)] = True
    return out


def ids(slate):
    return [s.idx for s in slate]


def test_promoted_slots_round_up():
    assert promoted_slots(10, 1) == 1
    assert promoted_slots(10, 25) == 3
    assert promoted_slots(25, 100) == 25
    assert promoted_slots(3, 50) == 2
    assert promoted_slots(0, 50) == 0


def test_interleave_keeps_each_group_in_order():
    assert interleave(["a", "b"], ["x", "y", "z"], np.array([0, 3])) == ["a", "x", "y", "b", "z"]
    assert interleave([], ["x"], np.zeros(0, np.int64)) == ["x"]
    assert interleave(["a"], [], np.array([0])) == ["a"]


def test_promoted_positions_are_uniform():
    rng = np.random.default_rng(0)
    counts = np.zeros(10)
    for _ in range(4000):
        pos = promoted_positions(3, 10, rng)
        assert len(set(pos)) == 3 and list(pos) == sorted(pos)
        counts[pos] += 1
    # each place is promoted 3/10 of the time: 1200 expected, sd ~29
    assert np.all(np.abs(counts - 1200) < 150), counts


def test_promotion_takes_top_scored_items_of_its_filter_and_request_filter_only_applies_to_the_rest():
    #                      0    1    2    3    4    5    6    7
    scores = torch.tensor([[NEG, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]])
    promo = Promotion("new", 50, ANY, seed=3)
    slates = compose_slates(scores, 4, allowed=mask(8, [1, 2, 3, 4, 6]), promotion=promo,
                            promotion_allowed=mask(8, [2, 5, 7]))
    (slate,) = slates
    promoted = [s for s in slate if s.promotion_name == "new"]
    others = [s for s in slate if s.promotion_name is None]
    assert ids(promoted) == [2, 5]            # the promotion's best two; 5 is outside the request filter
    assert ids(others) == [1, 3]              # the request filter's best, without the promoted item 2
    assert all(s.reason == (PROMOTED_ITEM,) for s in promoted) and all(s.reason is None for s in others)
    assert [s.score for s in promoted] == pytest.approx([0.8, 0.5])
    assert len(slate) == 4 and len(set(ids(slate))) == 4
    # the same seed places them the same way; the positions are the seed's draw
    again = compose_slates(scores, 4, allowed=mask(8, [1, 2, 3, 4, 6]), promotion=promo,
                           promotion_allowed=mask(8, [2, 5, 7]))[0]
    assert ids(again) == ids(slate)
    expected = promoted_positions(2, 4, np.random.default_rng(3))
    assert [i for i, s in enumerate(slate) if s.promotion_name] == list(expected)


def test_promotion_with_too_few_items_promotes_what_there_is_and_never_seen_items():
    scores = torch.tensor([[NEG, 0.9, 0.8, NEG, 0.6, 0.5]])       # item 3 is excluded (seen)
    promo = Promotion("p", 60, ANY, seed=0)                        # ceil(5 * 0.6) = 3 slots
    (slate,) = compose_slates(scores, 5, promotion=promo, promotion_allowed=mask(6, [3, 4]))
    assert ids([s for s in slate if s.promotion_name]) == [4]
    assert ids([s for s in slate if not s.promotion_name]) == [1, 2, 5]   # fills the promotion's empty places


def test_no_promotion_no_backfill_is_the_filtered_top_k():
    scores = torch.tensor([[NEG, 0.1, 0.5, 0.3, 0.2], [NEG, 0.4, 0.3, 0.2, 0.1]])
    allowed = torch.tensor([[False, True, False, True, True], [False, True, True, True, True]])
    slates = compose_slates(scores, 2, allowed=allowed)
    assert [ids(s) for s in slates] == [[3, 4], [1, 2]]
    short = compose_slates(scores, 4, allowed=allowed)
    assert [ids(s) for s in short] == [[3, 4, 1], [1, 2, 3, 4]]


def test_backfill_adds_popular_items_that_pass_the_filter():
    #                      0    1    2    3    4    5    6
    scores = torch.tensor([[NEG, 0.9, NEG, NEG, NEG, 0.4, 0.2]])   # 2, 3, 4 seen
    popularity = torch.tensor([0.0, 7.0, 1.0, 9.0, 3.0, 8.0, 8.0])
    allowed = mask(7, [1, 2, 3, 4])
    (plain,) = compose_slates(scores, 4, allowed=allowed)
    assert ids(plain) == [1]
    (filled,) = compose_slates(scores, 4, allowed=allowed, popularity=popularity)
    assert ids(filled) == [1, 3, 4, 2]                                 # 3, 4, 2 by popularity; 5, 6 fail the filter
    assert filled[0].score == pytest.approx(0.9) and filled[0].reason is None
    assert all(s.score is None and s.reason == (POPULAR_ITEM,) for s in filled[1:])
    (two,) = compose_slates(scores, 2, allowed=allowed, popularity=popularity)
    assert ids(two) == [1, 3]
    # the request's own item (related items) is never back-filled
    (related,) = compose_slates(scores, 4, allowed=allowed, popularity=popularity, current_items=np.array([3]))
    assert ids(related) == [1, 4, 2]
    # a full list is left alone
    (full,) = compose_slates(torch.tensor([[NEG, 0.9, 0.8, 0.7]]), 2, popularity=torch.ones(4))
    assert ids(full) == [1, 2] and all(s.reason is None for s in full)


def test_backfill_with_a_promotion_fills_only_the_rest():
    scores = torch.tensor([[NEG, 0.9, 0.8, NEG, NEG, 0.1]])
    promo = Promotion("p", 40, ANY, seed=1)                               # 2 of 5
    popularity = torch.tensor([0.0, 1.0, 1.0, 5.0, 4.0, 1.0])
    (slate,) = compose_slates(scores, 5, allowed=mask(6, [1, 2, 3, 4]), promotion=promo,
                              promotion_allowed=mask(6, [2, 5]), popularity=popularity)
    assert ids([s for s in slate if s.promotion_name]) == [2, 5]
    assert ids([s for s in slate if not s.promotion_name]) == [1, 3, 4]
    assert len(set(ids(slate))) == 5


def test_popular_fill_marks_short_rows():
    got = popular_fill(torch.tensor([0.0, 2.0, 1.0, 3.0]),
                       torch.tensor([[False, True, True, False], [False, False, False, False]]), 3)
    assert got.tolist() == [[1, 2, -1], [-1, -1, -1]]


def test_item_popularity_counts_distinct_users():
    # user rows: [1, 1, 2], [2, 3], [] ; item 1 twice by the first user counts once
    h = UserSequences(user_idx=np.array([1, 2, 3]), offsets=np.array([0, 3, 5, 5]),
                      item_idx=np.array([1, 1, 2, 2, 3]), timestamp=np.arange(5))
    assert item_popularity(h, 5).tolist() == [0, 1, 2, 1, 0]


def test_item_metadata_values_and_errors():
    items = pd.DataFrame({"ITEM_ID": ["a", "b", "c"], "GENRES": ["Comedy|Drama", None, "Horror"],
                          "PRICE": [9.5, 12.0, np.nan], "YEAR": [1999, 2001, 2020]})
    meta = ItemMetadata(items)
    columns = meta.check({"ITEMS": ["GENRES", "PRICE", "YEAR", "GENRES"]})
    assert columns == ["GENRES", "PRICE", "YEAR"]
    assert meta.lookup([1, 2, 3], columns) == [{"GENRES": "Comedy|Drama", "PRICE": "9.5", "YEAR": "1999"},
                                               {"PRICE": "12", "YEAR": "2001"},
                                               {"GENRES": "Horror", "YEAR": "2020"}]
    assert meta.check(None) == [] and meta.check({}) == []
    with pytest.raises(InputError, match="unknown column 'COLOUR'.*GENRES, PRICE, YEAR"):
        meta.check({"ITEMS": ["COLOUR"]})
    with pytest.raises(InputError, match="unknown dataset 'USERS'.*ITEMS"):
        meta.check({"USERS": ["AGE"]})
    with pytest.raises(InputError, match="at most 10"):
        meta.check({"ITEMS": [f"C{i}" for i in range(11)]})


def test_promotion_percentage_is_checked():
    with pytest.raises(ValueError, match="percentPromotedItems"):
        Promotion("p", 0, ANY)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_mask_out_equals_masked_fill(dtype):
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 257, generator=g).to(dtype)
    scores[0, :4] = NEG
    scores[1, 5] = math.inf
    allowed = torch.rand(3, 257, generator=g) < 0.4
    got = mask_out(scores, allowed)
    assert got.dtype == dtype and torch.equal(got, scores.masked_fill(~allowed, NEG))
    assert torch.equal(scores[0, :4], torch.full((4,), NEG, dtype=dtype))  # the input is left as it was
