"""Filter expressions (personalize_torch.filters): parsing, errors, parameters and masks.

Masks are checked by hand on tiny catalogues, and against a plain per-user, per-item reference evaluator
(written here, independent of the vectorized one) on seeded random catalogues and expressions.
"""

from __future__ import annotations

import math
import random
import time

import numpy as np
import pandas as pd
import pytest
import torch

from personalize_torch.errors import InputError
from personalize_torch.filters import Catalogue, Filter, FilterError, parse_filter_values
from personalize_torch.filters.nodes import (
    And,
    Condition,
    CurrentItemField,
    Expression,
    FieldRef,
    Literal,
    Or,
    Param,
    Wildcard,
    iter_conditions,
)

# Every example we could reconstruct from Personalize's documentation (item recommendations, user
# segments, combined expressions, guidelines), plus the issue's.
DOCUMENTED_EXAMPLES = [
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)',
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
    'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
    'EXCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)',
    'INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE',
    'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("shoe") AND Items.CATEGORY_L2 NOT IN ("boot")',
    'INCLUDE ItemID WHERE Items.PRICE <= $PRICE',
    'INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP < $DATE',
    'INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)',
    'INCLUDE ItemID WHERE Items.PRICE > CurrentItem.PRICE AND Items.CREATION_TIMESTAMP > $DATE',
    'EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE) IF CurrentUser.AGE = $AGE',
    'INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("favorite")',
    'INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | '
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
    'INCLUDE UserID WHERE Users.MEMBERSHIP_STATUS IN ($MEMBERSHIP)',
    'EXCLUDE UserID WHERE Users.AGE < $AGE',
    'INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("click", "rating")',
    'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)',
    'INCLUDE ItemID WHERE Items.PRICE <= $PRICE | EXCLUDE ItemID WHERE Items.GENRE IN ("horror")',
    'EXCLUDE ItemID WHERE Items.GENRE IN ("Action") IF CurrentUser.AGE > 18',
    'INCLUDE ItemID WHERE Items.CATEGORY IN ("shoes") AND Items.PRICE < 100',
    'INCLUDE UserID WHERE Users.MEMBERSHIP IN ("gold")',
    'INCLUDE ItemID WHERE Items.VALUE > ($VALUE)',
    'INCLUDE ItemID WHERE Items.MEMBERSHIP_LEVEL IN ("Premium") IF CurrentUser.MEMBERSHIP = $PREMIUM',
    'EXCLUDE ItemID WHERE Items.VALUE < $VALUE IF CurrentUser.AGE < $AGE AND CurrentUser.STATUS = "new"',
    'INCLUDE ItemID WHERE Items.STATUS = "True" AND Items.IN_STOCK != 0',
]


@pytest.mark.parametrize("text", DOCUMENTED_EXAMPLES)
def test_documented_examples_parse_and_round_trip(text):
    f = Filter.parse(text)
    assert f.text == text
    again = Filter.parse(str(f))
    assert again.expressions == f.expressions  # positions are not compared
    assert str(again) == str(f)


def test_tree_shape():
    f = Filter.parse('INCLUDE ItemID WHERE Items.PRICE <= $PRICE | '
                     'EXCLUDE ItemID WHERE Items.GENRE IN ("horror", 5) IF CurrentUser.AGE > 18')
    inc, exc = f.expressions
    assert inc == Expression("INCLUDE", "ItemID", Condition(FieldRef("Items", "PRICE"), "<=", (Param("PRICE"),)))
    assert exc == Expression(
        "EXCLUDE", "ItemID",
        Condition(FieldRef("Items", "GENRE"), "IN", (Literal.string("horror"), Literal.number("5"))),
        (Condition(FieldRef("CurrentUser", "AGE"), ">", (Literal.number("18"),)),),
    )
    assert f.target == "ItemID" and f.parameters == ["PRICE"]
    assert f.datasets == {"Items", "CurrentUser"} and f.uses_current_user and not f.uses_current_item
    # positions are 1-based characters
    assert inc.where.field.pos == 22 and exc.pos == 46 and exc.if_conditions[0].values[0].pos == 117


def test_and_binds_tighter_than_or():
    f = Filter.parse('INCLUDE ItemID WHERE Items.A IN ("a") OR Items.B IN ("b") AND Items.C IN ("c") OR Items.D = 1')
    where = f.expressions[0].where
    assert isinstance(where, Or) and len(where.operands) == 3
    assert isinstance(where.operands[1], And)
    assert [c.field.name for c in iter_conditions(where)] == ["A", "B", "C", "D"]


def test_lenient_spelling():
    canonical = Filter.parse('INCLUDE ItemID WHERE Items.GENRE NOT IN ("a", "b") AND Items.PRICE != 3 '
                             'IF CurrentUser.AGE >= 18')
    for text in [
        'include itemid where items.GENRE not in ("a","b") and ITEMS.PRICE <> 3 if currentuser.AGE >= 18',
        'INCLUDE ItemID\n  WHERE Items.GENRE NOT_IN ( "a" ,\t"b" )\n  AND Items.PRICE != (3)\n  IF CurrentUser.AGE>=18',
    ]:
        assert Filter.parse(text).expressions == canonical.expressions
    star = Filter.parse("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)").expressions[0].where
    assert star.values == (Wildcard(),)
    assert Filter.parse('INCLUDE ItemID WHERE Items.X IN ("say \\"hi\\"", "a|b")').expressions[0].where.values == (
        Literal.string('say "hi"'), Literal.string("a|b"))
    cur = Filter.parse("INCLUDE ItemID WHERE Items.GENRE IN (CurrentItem.GENRE, \"x\")").expressions[0].where
    assert cur.values == (CurrentItemField("GENRE"), Literal.string("x"))


@pytest.mark.parametrize("text, position, message", [
    ('INCLUDE ItemID WHERE Items.GENRE LIKE ("x")', 34, 'expected IN, NOT IN, =, !=, <, <=, > or >=, got "LIKE"'),
    ('INCLUDE ItemID WHERE Items.GENRE IN "x"', 37, 'expected "(" after IN, got "\\"x\\""'),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("x"', 41, 'expected "," or ")", got end of expression'),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("x",)', 42, 'expected a value: "text", a number or $PARAMETER, got ")"'),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("x) | EXCLUDE', 38, "unterminated string"),
    ("INCLUDE ItemID WHERE Items.GENRE IN ('x')", 38, "unexpected character \"'\" (string values take double quotes)"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("x") AND', 46,
     "expected Dataset.FIELD (Items, Interactions or Users), got end"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("x") Items.PRICE < 3', 43, 'expected AND, OR, IF, "|" or end of expression'),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("x") |', 44, "expected INCLUDE or EXCLUDE, got end of expression"),
    ('KEEP ItemID WHERE Items.GENRE IN ("x")', 1, 'expected INCLUDE or EXCLUDE, got "KEEP"'),
    ('INCLUDE Items WHERE Items.GENRE IN ("x")', 9, 'expected ItemID or UserID, got "Items"'),
    ('INCLUDE ItemID Items.GENRE IN ("x")', 16, 'expected WHERE, got "Items"'),
    ('INCLUDE ItemID WHERE Products.GENRE IN ("x")', 22,
     'unknown dataset "Products"; the datasets are Items, Interactions and Users'),
    ('INCLUDE ItemID WHERE GENRE IN ("x")', 22, "expected Dataset.FIELD"),
    ('INCLUDE ItemID WHERE Items.GENRE IN ("x") AND Interactions.EVENT_TYPE IN ("click")', 47,
     "conditions joined by AND / OR must use one dataset: Items.GENRE, then Interactions.EVENT_TYPE"),
    ('INCLUDE ItemID WHERE Interactions.DEVICE IN ("mobile")', 35, "filters interactions by EVENT_TYPE only"),
    ('INCLUDE ItemID WHERE Interactions.EVENT_TYPE = "click"', 46, "EVENT_TYPE takes IN or NOT IN, not ="),
    ('INCLUDE ItemID WHERE Items.GENRE IN (*)', 38, "* (any value) is only allowed in Interactions.EVENT_TYPE"),
    ('INCLUDE ItemID WHERE Items.GENRE NOT IN ($G)', 42, "parameters can't be used with NOT IN"),
    ('INCLUDE ItemID WHERE Items.PRICE < "cheap"', 36, "< compares numbers; expected a number or $PARAMETER"),
    ('INCLUDE ItemID WHERE Items.PRICE < (1, 2)', 38, '(< compares with one value)'),
    ('INCLUDE ItemID WHERE Items.PRICE < $', 36, 'expected a parameter name after "$"'),
    ('INCLUDE ItemID WHERE CurrentUser.AGE > 3', 22, "CurrentUser conditions go after IF"),
    ('INCLUDE ItemID WHERE Items.A = 1 IF Users.AGE > 3', 37, 'expected CurrentUser.FIELD, got "Users"'),
    ('INCLUDE ItemID WHERE Items.A = 1 IF CurrentUser.AGE > 3 OR CurrentUser.B = 1', 57,
     "(IF conditions are joined with AND)"),
    ('INCLUDE UserID WHERE Items.GENRE IN ("x")', 22, "UserID expressions filter users by Users or Interactions"),
    ('INCLUDE UserID WHERE Users.A IN ("x") IF CurrentUser.B = 1', 39, "only allowed in ItemID expressions"),
    ('INCLUDE UserID WHERE Users.A IN (CurrentItem.B)', 34, "CurrentItem values are only allowed in Items"),
    ('INCLUDE ItemID WHERE Items.A IN ("x") | EXCLUDE UserID WHERE Users.A IN ("x")', 41,
     "must filter the same thing: ItemID, then UserID"),
    ('INCLUDE ActionID WHERE Actions.VALUE > 3', 9, "(action recommendations are not supported)"),
    ('', 1, "the filter expression is empty"),
])
def test_syntax_errors_say_where_and_what(text, position, message):
    with pytest.raises(FilterError) as info:
        Filter.parse(text)
    err = info.value
    assert isinstance(err, InputError)
    assert err.position == position
    assert str(err).startswith(f"at character {position}: ")
    assert message in str(err)


def test_expression_length_limit():
    base = 'INCLUDE ItemID WHERE Items.GENRE IN ("x"'
    pad = ', "y"' * ((2500 - len(base) - 1) // 5)
    ok = base + pad + " " * (2500 - len(base) - len(pad) - 1) + ")"
    assert len(ok) == 2500
    Filter.parse(ok)
    with pytest.raises(FilterError, match="at most 2500 characters, this one has 2501"):
        Filter.parse(ok + " ")


# ---------------------------------------------------------------- a tiny hand-checked catalogue

ITEMS = pd.DataFrame({
    "ITEM_ID": ["i1", "i2", "i3", "i4", "i5", "i6"],
    "GENRE": ["Comedy", "Drama|Comedy", "Horror", None, "Action|Horror", "drama"],
    "PRICE": [10.0, 25.0, 5.0, np.nan, 100.0, 25.0],
    "CATEGORY": ["shoes", "shoes", "hats", "shoes", "", "hats"],
    "DESCRIPTION": ["a", "b", "c", "d", "e", "f"],
    "ON_SALE": [True, False, True, False, True, False],
})
USERS = pd.DataFrame({
    "USER_ID": ["u1", "u2", "u4"],
    "MEMBERSHIP": ["gold", "free", "silver|gold"],
    "AGE": ["30", "15", "x"],  # a string field that reads as numbers
})
INTERACTIONS = pd.DataFrame({
    "USER_ID": ["u1", "u1", "u1", "u2", "u2", "u3"],
    "ITEM_ID": ["i1", "i2", "i3", "i4", "i1", "i6"],
    "TIMESTAMP": [1, 2, 3, 1, 2, 5],
    "EVENT_TYPE": ["click", "purchase", "Click", "view", "PURCHASE", "click"],
})


@pytest.fixture(scope="module")
def tiny():
    return Catalogue.build(["i1", "i2", "i3", "i4", "i5", "i6"], items=ITEMS, users=USERS,
                           interactions=INTERACTIONS, textual_fields=["DESCRIPTION"])


def allowed(f: str, cat, users, values=None, **kw) -> list[set[str]] | set[str]:
    """Allowed item ids per user id (a set for one user, a list of sets for a list)."""
    rows = cat.user_rows(users if isinstance(users, list) else [users])
    mask = Filter.parse(f).item_mask(cat, rows, values, **kw)
    assert mask.dtype == torch.bool and mask.shape == (len(rows), cat.n_items)
    assert not mask[:, 0].any()
    out = [{cat.item_ids[i - 1] for i in np.flatnonzero(m.numpy())} for m in mask]
    return out if isinstance(users, list) else out[0]


ALL = {"i1", "i2", "i3", "i4", "i5", "i6"}


def test_catalogue_layout(tiny):
    assert tiny.n_items == 7 and list(tiny.user_ids) == ["u1", "u2", "u4", "u3"]
    assert list(tiny.user_rows(["u3", "nobody", None])) == [3, -1, -1]
    assert list(tiny.item_index(["i6", "zz"])) == [6, 0]
    assert tiny.events.event_types == ("click", "purchase", "view")  # lower-cased


def test_single_row_gives_one_dimensional_mask(tiny):
    f = Filter.parse('EXCLUDE ItemID WHERE Items.GENRE IN ("Comedy")')
    m = f.item_mask(tiny, int(tiny.user_rows(["u1"])[0]))
    assert m.shape == (7,) and m.tolist() == [False, False, False, True, True, True, True]


def test_interaction_filters_and_case_insensitive_event_types(tiny):
    assert allowed('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")', tiny, ["u1", "u2", "u3", "zz"]) == [
        ALL - {"i2"}, ALL - {"i1"}, ALL, ALL]
    assert allowed('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("CLICK")', tiny, ["u1", "u2", "zz"]) == [
        {"i1", "i3"}, set(), set()]
    for star in ('("*")', "(*)"):
        assert allowed(f"EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN {star}", tiny, "u1") == {"i4", "i5", "i6"}
    assert allowed('INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("click")', tiny, "u1") == {"i2"}
    assert allowed('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($E)', tiny, "u2", {"E": '"View","other"'}) == (
        ALL - {"i4"})


def test_item_metadata_filters(tiny):
    u = "u1"
    # multi-value categoricals match when any value matches; matching is exact (case-sensitive)
    assert allowed('INCLUDE ItemID WHERE Items.GENRE IN ("Comedy")', tiny, u) == {"i1", "i2"}
    assert allowed('INCLUDE ItemID WHERE Items.GENRE IN ("Drama", "Horror")', tiny, u) == {"i2", "i3", "i5"}
    assert allowed('INCLUDE ItemID WHERE Items.GENRE = "Horror"', tiny, u) == {"i3", "i5"}
    # NOT IN / != are the complement of IN / =: items without a value match them
    assert allowed('INCLUDE ItemID WHERE Items.GENRE NOT IN ("Comedy", "Horror")', tiny, u) == {"i4", "i6"}
    assert allowed('INCLUDE ItemID WHERE Items.GENRE != "Comedy"', tiny, u) == {"i3", "i4", "i5", "i6"}
    # numeric comparisons: a missing value never compares
    assert allowed("INCLUDE ItemID WHERE Items.PRICE < 25", tiny, u) == {"i1", "i3"}
    assert allowed("INCLUDE ItemID WHERE Items.PRICE <= 25", tiny, u) == {"i1", "i2", "i3", "i6"}
    assert allowed("INCLUDE ItemID WHERE Items.PRICE >= 25.0", tiny, u) == {"i2", "i5", "i6"}
    assert allowed("INCLUDE ItemID WHERE Items.PRICE > 1e1", tiny, u) == {"i2", "i5", "i6"}
    assert allowed("INCLUDE ItemID WHERE Items.PRICE = 25", tiny, u) == {"i2", "i6"}
    assert allowed("INCLUDE ItemID WHERE Items.PRICE IN (5, 100)", tiny, u) == {"i3", "i5"}
    assert allowed("INCLUDE ItemID WHERE Items.PRICE != 25", tiny, u) == {"i1", "i3", "i4", "i5"}
    assert allowed('INCLUDE ItemID WHERE Items.PRICE < "11"', tiny, u) == {"i1", "i3"}
    # AND / OR, AND first
    assert allowed('INCLUDE ItemID WHERE Items.CATEGORY IN ("shoes") AND Items.PRICE < 100', tiny, u) == {"i1", "i2"}
    assert allowed('INCLUDE ItemID WHERE Items.CATEGORY IN ("hats") OR Items.PRICE > 50 AND Items.GENRE IN ("Horror")',
                   tiny, u) == {"i3", "i5", "i6"}
    assert allowed('EXCLUDE ItemID WHERE Items.CATEGORY IN ("shoes") AND Items.GENRE NOT IN ("Comedy")', tiny, u) == (
        ALL - {"i4"})


def test_combining_expressions(tiny):
    shoes = 'INCLUDE ItemID WHERE Items.CATEGORY IN ("shoes")'
    cheap = "INCLUDE ItemID WHERE Items.PRICE < 10"
    purchased = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    horror = 'EXCLUDE ItemID WHERE Items.GENRE IN ("Horror")'
    assert allowed(f"{shoes} | {cheap}", tiny, "u1") == {"i1", "i2", "i3", "i4"}
    assert allowed(f"{shoes} | {purchased}", tiny, "u1") == {"i1", "i4"}
    assert allowed(f"{purchased} | {shoes}", tiny, "u1") == {"i1", "i4"}  # order does not matter
    assert allowed(f"{purchased} | {horror}", tiny, "u1") == {"i1", "i4", "i6"}
    assert allowed(f"{shoes} | {cheap} | {purchased} | {horror}", tiny, "u1") == {"i1", "i4"}


def test_if_current_user_and_users_conditions(tiny):
    f = 'EXCLUDE ItemID WHERE Items.GENRE IN ("Horror") IF CurrentUser.AGE < 18'
    assert allowed(f, tiny, ["u1", "u2", "u4", "u3", "zz"]) == [ALL, ALL - {"i3", "i5"}, ALL, ALL, ALL]
    f = 'INCLUDE ItemID WHERE Items.PRICE > 20 IF CurrentUser.MEMBERSHIP IN ("gold") AND CurrentUser.AGE >= 30'
    assert allowed(f, tiny, ["u1", "u2", "u4"]) == [{"i2", "i5", "i6"}, ALL, ALL]  # the IF is false: no INCLUDE
    f = 'INCLUDE ItemID WHERE Items.CATEGORY IN ("hats") IF CurrentUser.MEMBERSHIP = $M'
    assert allowed(f, tiny, ["u1", "u2", "u4"], {"M": '"gold"'}) == [{"i3", "i6"}, ALL, {"i3", "i6"}]
    # a Users condition in an ItemID expression reads the current user, for every item at once
    f = 'INCLUDE ItemID WHERE Users.MEMBERSHIP IN ("gold") | INCLUDE ItemID WHERE Items.PRICE < 6'
    assert allowed(f, tiny, ["u1", "u2", "zz"]) == [ALL, {"i3"}, {"i3"}]


def test_current_item(tiny):
    f = "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE"
    cur = tiny.item_index(["i2", "i5", "i4"])
    assert allowed(f, tiny, ["u1", "u1", "u1"], current_items=cur) == [{"i1"}, {"i3"}, set()]
    f = "EXCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE"
    assert allowed(f, tiny, "u1", current_items=tiny.item_index(["i1"])) == {"i3", "i4", "i5", "i6"}
    with pytest.raises(FilterError, match="give the request's item"):
        allowed(f, tiny, "u1")


def test_user_segment_filters(tiny):
    def users(f, values=None):
        mask = Filter.parse(f).user_mask(tiny, values)
        assert mask.shape == (tiny.n_users,) and mask.dtype == torch.bool
        return {tiny.user_ids[i] for i in np.flatnonzero(mask.numpy())}

    assert users('INCLUDE UserID WHERE Users.MEMBERSHIP IN ("gold")') == {"u1", "u4"}
    assert users("EXCLUDE UserID WHERE Users.AGE < $AGE", {"AGE": "20"}) == {"u1", "u4", "u3"}
    assert users('INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("click", "rating")') == {"u1", "u3"}
    assert users("EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)", {"EVENT_TYPE": '"purchase"'}) == {
        "u4", "u3"}
    assert users("EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)") == {"u1", "u2", "u4", "u3"}
    assert users('INCLUDE UserID WHERE Users.MEMBERSHIP IN ("gold") | EXCLUDE UserID WHERE Interactions.EVENT_TYPE '
                 'IN ("purchase")') == {"u4"}
    rows = tiny.user_rows(["u2", "zz"])
    free = Filter.parse('INCLUDE UserID WHERE Users.MEMBERSHIP IN ("free")')
    assert free.user_mask(tiny, user_rows=rows).tolist() == [True, False]
    with pytest.raises(FilterError, match="use item_mask"):
        Filter.parse('INCLUDE ItemID WHERE Items.GENRE IN ("x")').user_mask(tiny)
    with pytest.raises(FilterError, match="use user_mask"):
        Filter.parse('INCLUDE UserID WHERE Users.MEMBERSHIP IN ("x")').item_mask(tiny, [0])


# ---------------------------------------------------------------- parameters

def test_filter_values_as_personalize_sends_them():
    assert parse_filter_values({"GENRE": '"comedy","drama"', "$PRICE": "10", "EMPTY": "", "NONE": None}) == {
        "GENRE": (Literal.string("comedy"), Literal.string("drama")), "PRICE": (Literal.number("10"),)}
    assert parse_filter_values({"G": ' "a b" , "c,d" ', "N": "-2.5", "Q": '"10"'}) == {
        "G": (Literal.string("a b"), Literal.string("c,d")), "N": (Literal.number("-2.5"),),
        "Q": (Literal.string("10"),)}
    # unquoted text, numbers and lists are accepted too
    assert parse_filter_values({"G": "comedy, drama", "N": 3, "L": ["x", 2]}) == {
        "G": (Literal.string("comedy"), Literal.string("drama")), "N": (Literal.number("3"),),
        "L": (Literal.string("x"), Literal.number("2"))}
    with pytest.raises(FilterError, match=r'filter value \$G: expected "," at character 5'):
        parse_filter_values({"G": '"a" "b"'})
    with pytest.raises(FilterError, match=r"filter value \$G: .*unterminated"):
        parse_filter_values({"G": '"a'})
    with pytest.raises(FilterError, match="must be a map"):
        parse_filter_values(["G"])


def test_missing_parameters(tiny):
    f = 'INCLUDE ItemID WHERE Items.PRICE <= $PRICE | EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE)'
    assert allowed(f, tiny, "u1", {"PRICE": "10", "GENRE": '"Comedy"'}) == {"i3"}
    assert allowed(f, tiny, "u1", {"PRICE": "10"}) == {"i1", "i3"}  # the EXCLUDE part is skipped
    assert allowed(f, tiny, "u1", {"PRICE": "10", "GENRE": ""}) == {"i1", "i3"}  # empty = missing
    with pytest.raises(FilterError, match=r"at character 37: filter value \$PRICE is required by an INCLUDE") as info:
        allowed(f, tiny, "u1", {"GENRE": '"Comedy"'})
    assert isinstance(info.value, InputError)
    with pytest.raises(FilterError, match=r"\$PRICE is required"):  # names are case-sensitive
        allowed(f, tiny, "u1", {"price": "10"})
    # an IF parameter counts too
    f = 'EXCLUDE ItemID WHERE Items.GENRE IN ("Horror") IF CurrentUser.AGE < $AGE'
    assert allowed(f, tiny, "u2") == ALL
    assert allowed(f, tiny, "u2", {"AGE": "18"}) == ALL - {"i3", "i5"}
    with pytest.raises(FilterError, match=r"filter value \$PRICE: <= compares with one number, got 2 values"):
        allowed("INCLUDE ItemID WHERE Items.PRICE <= $PRICE", tiny, "u1", {"PRICE": "1, 2"})
    with pytest.raises(FilterError, match=r'filter value \$PRICE: <= compares numbers, got "cheap"'):
        allowed("INCLUDE ItemID WHERE Items.PRICE <= $PRICE", tiny, "u1", {"PRICE": '"cheap"'})


def test_filter_values_per_row(tiny):
    f = Filter.parse("INCLUDE ItemID WHERE Items.GENRE IN ($G) | EXCLUDE ItemID WHERE Items.PRICE > $P")
    rows = tiny.user_rows(["u1", "u2", "u1"])
    mask = f.item_mask(tiny, rows, [{"G": '"Comedy"'}, {"G": '"Horror"', "P": "50"}, {"G": '"Comedy"', "P": "20"}])
    assert mask[0].tolist() == f.item_mask(tiny, rows[0], {"G": '"Comedy"'}).tolist()
    assert mask[1].tolist() == f.item_mask(tiny, rows[1], {"G": '"Horror"', "P": "50"}).tolist()
    assert np.flatnonzero(mask[2].numpy()).tolist() == [1]
    with pytest.raises(FilterError, match="2 maps for 3 user rows"):
        f.item_mask(tiny, rows, [{}, {}])


# ---------------------------------------------------------------- catalogue errors

def test_unknown_fields_name_the_fields_that_exist(tiny):
    with pytest.raises(FilterError) as info:
        allowed('INCLUDE ItemID WHERE Items.GENRES IN ("x")', tiny, "u1")
    assert str(info.value) == ('at character 28: Items has no field "GENRES"; its fields are ITEM_ID, GENRE, PRICE, '
                               'CATEGORY, DESCRIPTION, ON_SALE')
    with pytest.raises(FilterError, match='at character 58: Users has no field "AGES"; its fields are USER_ID, '
                                          'MEMBERSHIP, AGE'):
        allowed('INCLUDE ItemID WHERE Items.GENRE IN ("x") IF CurrentUser.AGES > 1', tiny, "u1")
    with pytest.raises(FilterError, match='Items has no field "COLOR"'):
        allowed("INCLUDE ItemID WHERE Items.PRICE < CurrentItem.COLOR", tiny, "u1", current_items=[1])
    with pytest.raises(FilterError, match="Items.DESCRIPTION is a textual field"):
        allowed('INCLUDE ItemID WHERE Items.DESCRIPTION IN ("a")', tiny, "u1")
    with pytest.raises(FilterError, match="Items.ON_SALE is a boolean field"):
        allowed('INCLUDE ItemID WHERE Items.ON_SALE IN ("True")', tiny, "u1")
    bare = Catalogue.build(["i1"])
    with pytest.raises(FilterError, match="the catalogue has no Items metadata"):
        Filter.parse('INCLUDE ItemID WHERE Items.GENRE IN ("x")').validate(bare)
    with pytest.raises(FilterError, match="the catalogue has no Interactions data"):
        Filter.parse('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("x")').validate(bare)


def test_items_aligned_by_position_or_id():
    by_id = Catalogue.build(["b", "a", "c"], items=pd.DataFrame({"ITEM_ID": ["a", "b", "x"], "G": ["1", "2", "3"]}))
    assert by_id.items["G"].tolist()[1:3] == ["2", "1"] and pd.isna(by_id.items["G"][3])
    by_pos = Catalogue.build(["b", "a"], items=pd.DataFrame({"G": ["2", "1"]}))
    with_pad = Catalogue.build(["b", "a"], items=pd.DataFrame({"G": [None, "2", "1"]}))
    f = Filter.parse('INCLUDE ItemID WHERE Items.G IN ("1")')
    for cat in (by_id, by_pos, with_pad):
        assert f.item_mask(cat, -1).tolist()[:3] == [False, False, True]


# ---------------------------------------------------------------- the 100-most-recent rule

def test_only_the_most_recent_interactions_per_event_type_count():
    n = 150
    item_ids = [f"i{k}" for k in range(n)]
    clicks = pd.DataFrame({"USER_ID": "u", "ITEM_ID": item_ids, "TIMESTAMP": np.arange(n), "EVENT_TYPE": "click"})
    # one old purchase: it counts, since the limit is per event type; shuffled rows: time decides
    buys = pd.DataFrame({"USER_ID": "u", "ITEM_ID": ["i0"], "TIMESTAMP": [-5], "EVENT_TYPE": ["Purchase"]})
    inter = pd.concat([clicks, buys]).sample(frac=1.0, random_state=0)
    cat = Catalogue.build(item_ids, interactions=inter)
    row = cat.user_rows(["u"])
    clicked = Filter.parse('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")').item_mask(cat, row)[0]
    assert np.flatnonzero(clicked.numpy()).tolist() == list(range(51, 151))  # items i50..i149 (index = k + 1)
    anything = Filter.parse('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")').item_mask(cat, row)[0]
    assert np.flatnonzero(anything.numpy()).tolist() == [1] + list(range(51, 151))
    small = Catalogue.build(item_ids, interactions=inter, max_interactions_per_event_type=3)
    assert np.flatnonzero(Filter.parse('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")').item_mask(
        small, row)[0].numpy()).tolist() == [148, 149, 150]


# ---------------------------------------------------------------- against a plain reference evaluator

def _tokens(cell) -> list[str]:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    return [t for t in str(cell).split("|") if t]


def _number(cell, numeric: bool) -> float:
    if numeric:
        return float("nan") if cell is None or pd.isna(cell) else float(cell)
    toks = _tokens(cell)
    try:
        return float(toks[0]) if len(toks) == 1 else float("nan")
    except ValueError:
        return float("nan")


def _as_float(text) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def ref_field(cell, numeric: bool, op: str, values: list) -> bool:
    if op in ("<", "<=", ">", ">="):
        x, v = _number(cell, numeric), float(values[0].value)
        return {"<": x < v, "<=": x <= v, ">": x > v, ">=": x >= v}[op]
    if numeric:
        x = _number(cell, True)
        hit = any(_as_float(v.value) == x for v in values if _as_float(v.value) is not None)
    else:
        toks = _tokens(cell)
        hit = any(v.text in toks for v in values) or any(
            v.is_number and _number(cell, False) == v.value for v in values)
    return hit if op in ("IN", "=") else not hit


class Reference:
    """Per user, per item, with Python loops: the semantics written out plainly."""

    def __init__(self, items: pd.DataFrame, users: pd.DataFrame, inter: pd.DataFrame, k: int):
        self.items = {r["ITEM_ID"]: r for r in items.to_dict("records")}
        self.item_order = list(items["ITEM_ID"])
        self.users = {r["USER_ID"]: r for r in users.to_dict("records")}
        self.numeric = {c: pd.api.types.is_numeric_dtype(items[c]) for c in items.columns}
        self.user_numeric = {c: pd.api.types.is_numeric_dtype(users[c]) for c in users.columns}
        self.recent: dict[str, list[tuple[str, str]]] = {}
        rows = list(inter.itertuples(index=False))
        for user in set(inter["USER_ID"]):
            mine = [(r.TIMESTAMP, i, r.ITEM_ID, r.EVENT_TYPE.lower()) for i, r in enumerate(rows) if r.USER_ID == user]
            kept = []
            for et in {m[3] for m in mine}:
                kept += sorted((m for m in mine if m[3] == et), reverse=True)[:k]
            self.recent[user] = [(m[2], m[3]) for m in kept]

    def cond(self, c: Condition, user: str, item: str, values: dict, current: str | None) -> bool:
        resolved = []
        for v in c.values:
            resolved.extend(values[v.name] if isinstance(v, Param) else [v])
        ds = c.field.dataset
        if ds == "Interactions":
            wild = any(isinstance(v, Wildcard) or v.text == "*" for v in resolved)
            wanted = {v.text.lower() for v in resolved if not isinstance(v, Wildcard)}
            for it, et in self.recent.get(user, []):
                match = wild or et in wanted
                if it == item and (match if c.op == "IN" else not match):
                    return True
            return False
        if ds in ("Users", "CurrentUser"):
            cell = self.users.get(user, {}).get(c.field.name)
            return ref_field(cell, self.user_numeric[c.field.name], c.op, resolved)
        cell = self.items[item][c.field.name]
        numeric = self.numeric[c.field.name]
        refs = [v for v in resolved if isinstance(v, CurrentItemField)]
        if not refs:
            return ref_field(cell, numeric, c.op, resolved)
        cur = self.items.get(current, {}).get(refs[0].name) if current else None
        if c.op in ("<", "<=", ">", ">="):
            x, y = _number(cell, numeric), _number(cur, self.numeric[refs[0].name])
            return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[c.op]
        if numeric or self.numeric[refs[0].name]:
            hit = _number(cell, numeric) == _number(cur, self.numeric[refs[0].name])
        else:
            hit = bool(set(_tokens(cell)) & set(_tokens(cur)))
        return hit if c.op in ("IN", "=") else not hit

    def tree(self, node, *args) -> bool:
        if isinstance(node, Condition):
            return self.cond(node, *args)
        results = [self.tree(o, *args) for o in node.operands]
        return all(results) if isinstance(node, And) else any(results)

    def item_mask(self, f: Filter, users: list[str], values: dict, current: list[str | None]) -> np.ndarray:
        out = np.zeros((len(users), len(self.item_order) + 1), dtype=bool)
        for b, user in enumerate(users):
            inc_any, has_inc, exc_any = set(), False, set()
            for e in f.expressions:
                if any(p not in values for p in e.parameters()):
                    if e.action == "INCLUDE":
                        raise FilterError("missing")
                    continue
                if not all(self.cond(c, user, None, values, None) for c in e.if_conditions):
                    continue
                hits = {i for i in self.item_order if self.tree(e.where, user, i, values, current[b])}
                if e.action == "INCLUDE":
                    inc_any |= hits
                    has_inc = True
                else:
                    exc_any |= hits
            ok = (inc_any if has_inc else set(self.item_order)) - exc_any
            for k, i in enumerate(self.item_order):
                out[b, k + 1] = i in ok
        return out


GENRES = ["Action", "Comedy", "Drama", "drama", "Horror"]
TYPES = ["click", "Click", "PURCHASE", "view"]


def _random_world(rng: random.Random):
    n_items, n_users = rng.randint(3, 12), rng.randint(2, 6)
    item_ids = [f"i{k}" for k in range(n_items)]
    items = pd.DataFrame({
        "ITEM_ID": item_ids,
        "GENRE": ["|".join(rng.sample(GENRES, rng.randint(0, 2))) or None for _ in item_ids],
        "PRICE": [rng.choice([1.0, 2.0, 5.0, 5.0, float("nan")]) for _ in item_ids],
        "SIZE": [rng.choice(["1", "2", "10", "x", "", "1|2"]) for _ in item_ids],
    })
    user_ids = [f"u{k}" for k in range(n_users)]
    users = pd.DataFrame({
        "USER_ID": user_ids,
        "TIER": [rng.choice(["gold", "free", "gold|vip", None]) for _ in user_ids],
        "AGE": [rng.choice([10, 20, 30, np.nan]) for _ in user_ids],
    })
    n_events = rng.randint(0, 40)
    inter = pd.DataFrame({
        "USER_ID": [rng.choice(user_ids + ["ghost"]) for _ in range(n_events)],
        "ITEM_ID": [rng.choice(item_ids) for _ in range(n_events)],
        "TIMESTAMP": [rng.randint(0, 8) for _ in range(n_events)],
        "EVENT_TYPE": [rng.choice(TYPES) for _ in range(n_events)],
    }, columns=["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
    return items, users, inter


def _random_value(rng, field: str) -> str:
    pools = {
        "GENRE": ['"Comedy"', '"drama"', '"Horror"', '"Nope"', "$G"],
        "SIZE": ['"1"', '"x"', "1", "2", "$S"],
        "PRICE": ["1", "2", "5", '"5"', "$P"],
        "TIER": ['"gold"', '"vip"', '"free"', "$T"],
        "AGE": ["20", "30", "$A"],
        "EVENT_TYPE": ['"click"', '"purchase"', '"VIEW"', '"other"', '"*"', "$E"],
    }
    return rng.choice(pools[field])


def _random_condition(rng, dataset: str, prefix: str) -> str:
    fields = {"Items": ["GENRE", "SIZE", "PRICE"], "Users": ["TIER", "AGE"], "Interactions": ["EVENT_TYPE"],
              "CurrentUser": ["TIER", "AGE"]}[dataset]
    field = rng.choice(fields)
    if dataset == "Items" and rng.random() < 0.15:
        if field == "PRICE":
            return f"{prefix}.PRICE {rng.choice(['<', '>=', '='])} CurrentItem.PRICE"
        return f"{prefix}.{field} {rng.choice(['IN', 'NOT IN'])} CurrentItem.{field}"
    ops = ["IN", "NOT IN"] if field == "EVENT_TYPE" else ["IN", "NOT IN", "=", "!=", "<", "<=", ">", ">="]
    op = rng.choice(ops)
    if op in ("IN", "NOT IN"):
        vals = [_random_value(rng, field) for _ in range(rng.randint(1, 3))]
        if op == "NOT IN":
            vals = [v for v in vals if not v.startswith("$")] or ['"zzz"']
        return f"{prefix}.{field} {op} ({', '.join(vals)})"
    if op in ("<", "<=", ">", ">="):
        value = rng.choice(["1", "2", "5", "20", "$P" if field in ("PRICE", "SIZE") else "$A"])
        return f"{prefix}.{field} {op} {value}"
    return f"{prefix}.{field} {op} {_random_value(rng, field)}"


def _random_filter(rng) -> str:
    parts = []
    for _ in range(rng.randint(1, 3)):
        dataset = rng.choice(["Items", "Items", "Interactions", "Users"])
        conds = [_random_condition(rng, dataset, dataset) for _ in range(rng.randint(1, 3))]
        where = conds[0]
        for c in conds[1:]:
            where += f" {rng.choice(['AND', 'OR'])} {c}"
        text = f"{rng.choice(['INCLUDE', 'EXCLUDE'])} ItemID WHERE {where}"
        if rng.random() < 0.3:
            text += " IF " + " AND ".join(_random_condition(rng, "CurrentUser", "CurrentUser")
                                          for _ in range(rng.randint(1, 2)))
        parts.append(text)
    return " | ".join(parts)


RANDOM_VALUES = {"G": ['"Comedy","Action"', '"drama"'], "S": ['"1"', "2"], "P": ["2", "5"], "T": ['"gold"'],
                 "A": ["20"], "E": ['"click"', '"purchase","view"', '"*"']}


def test_vectorized_evaluator_matches_reference_on_random_cases():
    rng = random.Random(1234)
    checked = errors = 0
    for _ in range(60):  # random catalogues ...
        items, users, inter = _random_world(rng)
        user_ids, item_ids = list(users["USER_ID"]), list(items["ITEM_ID"])
        k = rng.choice([1, 2, 100])
        cat = Catalogue.build(items["ITEM_ID"], items=items, users=users, interactions=inter,
                              max_interactions_per_event_type=k)
        ref = Reference(items, users, inter, k)
        for _ in range(8):  # ... and random filters, values, users and current items on each
            f = Filter.parse(_random_filter(rng))
            raw = {name: rng.choice(opts) for name, opts in RANDOM_VALUES.items() if rng.random() < 0.8}
            values = parse_filter_values(raw)
            batch = [rng.choice(user_ids + ["ghost", "stranger"]) for _ in range(rng.randint(1, 5))]
            current = [rng.choice(item_ids + [None]) for _ in batch]
            current_idx = cat.item_index([c or "" for c in current])
            try:
                expected = ref.item_mask(f, batch, values, current)
            except FilterError:
                with pytest.raises(FilterError, match="is required by an INCLUDE expression"):
                    f.item_mask(cat, cat.user_rows(batch), raw, current_items=current_idx)
                errors += 1
                continue
            got = f.item_mask(cat, cat.user_rows(batch), raw, current_items=current_idx)
            assert np.array_equal(got.numpy(), expected), (str(f), raw, batch, current)
            checked += 1
    assert checked > 350 and errors > 20


# ---------------------------------------------------------------- demo data and speed

def test_demo_data_example_from_the_package_docstring():
    from personalize_torch.data.synthetic import generate_demo_data

    demo = generate_demo_data(n_users=200, n_items=100)
    catalogue = Catalogue.build(demo.items["ITEM_ID"], items=demo.items, users=demo.users,
                                interactions=demo.interactions, textual_fields=["DESCRIPTION"])
    f = Filter.parse('INCLUDE ItemID WHERE Items.GENRES IN ($GENRE) | '
                     'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    users = ["u1", "u2"]
    allowed_mask = f.item_mask(catalogue, catalogue.user_rows(users), {"GENRE": '"Comedy","Drama"'})
    genres = demo.items.set_index("ITEM_ID")["GENRES"].str.split("|")
    for b, user in enumerate(users):
        bought = set(demo.interactions.query("USER_ID == @user and EVENT_TYPE == 'purchase'")["ITEM_ID"])
        expected = {i for i, g in genres.items() if {"Comedy", "Drama"} & set(g)} - bought
        got = {catalogue.item_ids[i - 1] for i in np.flatnonzero(allowed_mask[b].numpy())}
        assert got == expected and got
    segment = Filter.parse('INCLUDE UserID WHERE Users.MEMBERSHIP IN ("gold")').user_mask(catalogue)
    assert segment.sum().item() == (demo.users["MEMBERSHIP"] == "gold").sum()


def test_512_users_over_20000_items_well_under_a_second():
    rng = np.random.default_rng(0)
    n_items, n_users, n_events = 20_000, 2_000, 200_000
    genres = np.array(["Action", "Comedy", "Drama", "Horror", "SciFi", "Documentary"])
    first, second = rng.choice(genres, n_items), rng.choice(genres, n_items)
    items = pd.DataFrame({
        "ITEM_ID": np.char.add("i", np.arange(n_items).astype(str)),
        "GENRES": np.where(rng.random(n_items) < 0.4, np.char.add(np.char.add(first, "|"), second), first),
        "PRICE": rng.uniform(1, 100, n_items),
    })
    users = pd.DataFrame({"USER_ID": np.char.add("u", np.arange(n_users).astype(str)),
                          "MEMBERSHIP": rng.choice(["free", "gold"], n_users), "AGE": rng.integers(10, 80, n_users)})
    inter = pd.DataFrame({
        "USER_ID": np.char.add("u", rng.integers(0, n_users, n_events).astype(str)),
        "ITEM_ID": np.char.add("i", rng.integers(0, n_items, n_events).astype(str)),
        "TIMESTAMP": rng.integers(0, 10**6, n_events),
        "EVENT_TYPE": rng.choice(["click", "Purchase", "view"], n_events),
    })
    cat = Catalogue.build(items["ITEM_ID"], items=items, users=users, interactions=inter)
    f = Filter.parse('INCLUDE ItemID WHERE Items.GENRES IN ($GENRE) AND Items.PRICE <= $PRICE | '
                     'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click") | '
                     'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase") | '
                     'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror") IF CurrentUser.AGE < 18')
    rows = rng.integers(0, n_users, 512)
    values = {"GENRE": '"Comedy","Drama"', "PRICE": "50"}
    f.item_mask(cat, rows, values)  # warm the column caches
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        mask = f.item_mask(cat, rows, values)
        timings.append(time.perf_counter() - start)
    assert mask.shape == (512, 20_001)
    assert 0 < mask.sum() < mask.numel()
    print(f"item_mask, 512 users x 20,000 items: {min(timings) * 1e3:.0f} ms")
    assert min(timings) < 0.5, timings
